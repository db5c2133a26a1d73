/**
 * `raft-kvs demo --exit`: the walk-through `npm start` runs, end to end (child processes, a real leader kill).
 */
import { spawnSync } from 'node:child_process';
import { freePorts } from '@raft/testkit';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from './cli-process.js';

/** Finds `n` consecutive free ports (the demo uses base, base+1, ...). */
async function consecutiveFreePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [base] = await freePorts(1);
    if (base + n > 65535) continue;
    const { createServer } = await import('node:net');
    const ok = await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<boolean>((r) => {
            const s = createServer();
            s.once('error', () => r(false));
            s.listen(base + i, '127.0.0.1', () => s.close(() => r(true)));
          }),
      ),
    );
    if (ok.every(Boolean)) return base;
  }
  throw new Error('no consecutive free ports');
}

describe('raft-kvs demo', () => {
  it('forms a cluster, survives a leader kill, catches the restarted node up, and stops cleanly', async () => {
    const base = await consecutiveFreePorts(3);
    const r = await runCli(['demo', '--exit', '--base-port', String(base)], { timeoutMs: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain(`{"jsonrpc":"2.0","id":0,"result":{"members":["127.0.0.1:${base}"]}}`);
    expect(out).toContain('{"jsonrpc":"2.0","id":0,"result":123}');
    expect(out).toMatch(/New leader 127\.0\.0\.1:\d+ elected \d+ ms after the kill/);
    // After the failover the new leader still has the data written before it.
    const afterKill = out.slice(out.indexOf('New leader'));
    expect(afterKill).toContain('{"jsonrpc":"2.0","id":0,"result":123}');
    expect(out).toMatch(/Live dashboard: http:\/\/127\.0\.0\.1:\d+\/\?nodes=127\.0\.0\.1%3A\d+/);
    expect(out).toContain('Stopped every node.');
  }, 120_000);

  it("is what README's first command, npm start, runs", async () => {
    const base = await consecutiveFreePorts(3);
    const r = spawnSync('npm', ['start', '--', '--exit', '--base-port', String(base)], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 110_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/New leader 127\.0\.0\.1:\d+ elected/);
    expect(r.stdout).toContain('Stopped every node.');
  }, 120_000);

  it('refuses ports that are taken', async () => {
    const { createServer } = await import('node:net');
    const s = createServer();
    const port = await new Promise<number>((r) =>
      s.listen(0, '127.0.0.1', () => r((s.address() as import('node:net').AddressInfo).port)),
    );
    const r = await runCli(['demo', '--exit', '--base-port', String(port)]);
    await new Promise((res) => s.close(res));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/port \d+ is in use; choose other ports with --base-port/);
  });
});
