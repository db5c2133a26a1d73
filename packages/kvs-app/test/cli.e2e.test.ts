/**
 * End to end through the `raft-kvs` CLI: servers are child processes, every request goes through `raft-kvs call`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, waitFor } from '@raft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type ServeProcess, startServe } from './cli-process.js';

const FAST = ['--election-ms', '300', '--heartbeat-ms', '50'];

function result(stdout: string): unknown {
  const v = JSON.parse(stdout.trim()) as { result?: unknown; error?: unknown };
  if ('error' in v) throw new Error(`error response: ${stdout}`);
  return v.result;
}

describe('raft-kvs CLI, end to end', () => {
  let dir: string;
  let addrs: string[];
  const servers = new Map<string, ServeProcess>();
  const start = async (addr: string) => {
    servers.set(addr, await startServe(addr, ['--data', join(dir, addr.replace(':', '-')), ...FAST]));
  };
  const call = async (addr: string, method: string, params?: unknown) => {
    const r = await runCli(['call', addr, method, ...(params === undefined ? [] : [JSON.stringify(params)])]);
    return r;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raft-kvs-e2e-'));
    addrs = (await freePorts(3)).map((p) => `127.0.0.1:${p}`);
    await Promise.all(addrs.map(start));
  });

  afterAll(async () => {
    await Promise.all([...servers.values()].map((s) => s.stop('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  });

  it('forms a cluster, writes through one node and reads through another', async () => {
    const [a, b, c] = addrs;
    const created = await call(a, 'CreateCluster');
    expect(created.code).toBe(0);
    expect(result(created.stdout)).toEqual({ members: [a] });
    expect(result((await call(a, 'AddServer', { addr: b })).stdout)).toEqual({ members: [a, b] });
    expect(result((await call(a, 'AddServer', { addr: c })).stdout)).toEqual({ members: [a, b, c] });

    const put = await call(b, 'Apply', { kind: 'Command', input: { Put: ['foo', 123] } });
    expect(put.code).toBe(0);
    expect(put.stdout).toBe('{"jsonrpc":"2.0","id":0,"result":null}\n');
    const get = await call(c, 'Apply', { kind: 'Query', input: { Get: 'foo' } });
    expect(get.stdout).toBe('{"jsonrpc":"2.0","id":0,"result":123}\n');
    // raftpico's earlier object form works too.
    expect(result((await call(a, 'Apply', { kind: 'Command', input: { Put: { key: 'foo', value: 1 } } })).stdout)).toBe(
      123,
    );
  });

  it('pipes request lines from stdin and prints every response', async () => {
    // Pipelined requests are concurrent (JSON-RPC does not order them), so the read of k1 goes in a second call,
    // after the write's answer.
    const writes = [
      '{"jsonrpc":"2.0","id":1,"method":"Apply","params":{"kind":"Command","input":{"Put":["k1","v1"]}}}',
      '{"jsonrpc":"2.0","method":"GetServerState"}',
      '[{"jsonrpc":"2.0","id":2,"method":"Apply","params":{"kind":"Command","input":{"Put":["k2","v2"]}}},' +
        '{"jsonrpc":"2.0","id":3,"method":"NoSuchMethod"}]',
    ];
    const w = await runCli(['call', addrs[1]], { stdin: `${writes.join('\n')}\n` });
    expect(w.code).toBe(1); // one response (inside the batch) is an error
    const out = w.stdout.trim().split('\n');
    expect(out).toHaveLength(2); // the notification gets no answer; the batch gets one line
    expect(out).toContain('{"jsonrpc":"2.0","id":1,"result":null}');
    const batch = JSON.parse(out.find((l) => l.startsWith('[')) ?? '[]') as { id: number; error?: { code: number } }[];
    expect(batch.find((r) => r.id === 3)?.error?.code).toBe(-32601);

    const reads = [
      '{"jsonrpc":"2.0","id":4,"method":"Apply","params":{"kind":"Query","input":{"Get":"k1"}}}',
      '{"jsonrpc":"2.0","id":5,"method":"Apply","params":{"kind":"Query","input":{"Get":"k2"}}}',
    ];
    const r = await runCli(['call', addrs[2]], { stdin: `${reads.join('\n')}\n` });
    expect(r.code).toBe(0);
    const byId = new Map(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: number; result: unknown })
        .map((v) => [v.id, v.result]),
    );
    expect(byId).toEqual(
      new Map<number, unknown>([
        [4, 'v1'],
        [5, 'v2'],
      ]),
    );
  });

  it('a restarted node keeps its data and catches up; a full restart keeps everything', async () => {
    const [a, , c] = addrs;
    expect(await servers.get(c)?.stop('SIGTERM')).toBe(0);
    expect((await call(a, 'Apply', { kind: 'Command', input: { Put: ['while-down', [1, 2, 3]] } })).code).toBe(0);
    await start(c);
    // Polled every 100 ms, errors retried: each check runs the CLI, and the node may not be serving yet.
    const retry = { intervalMs: 100, retryErrors: true };
    await waitFor(
      async () => {
        const r = await call(c, 'Apply', { kind: 'LocalQuery', input: { Get: 'while-down' } });
        return JSON.stringify(result(r.stdout)) === '[1,2,3]';
      },
      20_000,
      'the restarted node to catch up',
      retry,
    );

    for (const s of servers.values()) expect(await s.stop('SIGTERM')).toBe(0);
    await Promise.all(addrs.map(start));
    const got = await waitFor(
      async () => {
        const r = await call(c, 'Apply', { kind: 'Query', input: { Get: 'foo' } });
        return r.code === 0 ? result(r.stdout) : undefined;
      },
      20_000,
      'a linearizable read after the full restart',
      retry,
    );
    expect(got).toBe(1);
    const state = result((await call(a, 'GetServerState')).stdout) as { members: string[] };
    expect(state.members).toEqual(addrs);
  });

  it('answers wrong input with a helpful message and a non-zero exit status', async () => {
    const [a] = addrs;
    const invalid = await call(a, 'Apply', { kind: 'Command', input: { Put: [1, 2] } });
    expect(invalid.code).toBe(1);
    expect(JSON.parse(invalid.stdout).error.code).toBe(-32602);
    const unknown = await call(a, 'NoSuchMethod');
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout).error.code).toBe(-32601);
    const again = await call(a, 'CreateCluster');
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout).error.code).toBe(-32002);

    const badJson = await runCli(['call', a, 'Apply', '{not json']);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/params must be JSON/);
    const [closed] = await freePorts(1);
    const refused = await runCli(['call', `127.0.0.1:${closed}`, 'GetServerState']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/cannot connect/);
    const badAddr = await runCli(['call', 'nowhere', 'GetServerState']);
    expect(badAddr.code).toBe(2);
    expect(badAddr.stderr).toMatch(/host:port/);

    const noAddr = await runCli(['serve']);
    expect(noAddr.code).toBe(2);
    expect(noAddr.stderr).toMatch(/serve needs exactly one <addr>/);
    const badFlag = await runCli(['serve', ':4000', '--electon-ms', '5']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/unknown option --electon-ms/);
    const busy = await runCli(['serve', a, '--data', join(dir, 'busy')]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/cannot start/);

    const missing = await runCli(['inspect', join(dir, 'does-not-exist')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.length).toBeGreaterThan(0);
    const unknownCmd = await runCli(['frobnicate']);
    expect(unknownCmd.code).toBe(2);
    expect(unknownCmd.stderr).toMatch(/unknown command "frobnicate"/);
    const demoBad = await runCli(['demo', '--nodes', '9']);
    expect(demoBad.code).toBe(2);
  });

  it('inspects a data directory', async () => {
    const c = addrs[2];
    await servers.get(c)?.stop('SIGTERM');
    const r = await runCli(['inspect', join(dir, c.replace(':', '-'))]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/term/i);
    expect(r.stdout).toMatch(/log/i);
  });

  it('prints help for every command', async () => {
    for (const cmd of [
      ['--help'],
      ['serve', '--help'],
      ['call', '--help'],
      ['demo', '--help'],
      ['inspect', '--help'],
    ]) {
      const r = await runCli(cmd);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/usage:/);
    }
  });
});
