/**
 * A quick throughput probe (not the project benchmark): a 3-node cluster, each node in its own child process,
 * `concurrency` pipelined Put commands spread over the three nodes, reporting commands per second.
 *
 *   pnpm --filter @raft/node-tcp exec tsx bench/throughput.ts [count=100000] [concurrency=1000] [sync=1] [kind=Command]
 *
 * BENCH_VALUE_BYTES=65536 makes each Put's value a string of that many characters (default: the command's number).
 */
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Machine } from '../src/index.js';

// BENCH_DIST=1 measures the built package (no dev-time transform overhead); build it first.
const lib: typeof import('../src/index.js') = process.env.BENCH_DIST
  ? await import(new URL('../dist/index.js', import.meta.url).href)
  : await import('../src/index.js');
const { createServer, RpcClient } = lib;

class Kv implements Machine {
  m = new Map<string, unknown>();
  apply(input: unknown): unknown {
    const o = input as { Put?: [string, unknown]; Get?: string };
    if (o.Put) {
      const prev = this.m.get(o.Put[0]) ?? null;
      this.m.set(o.Put[0], o.Put[1]);
      return prev;
    }
    return this.m.get(o.Get as string) ?? null;
  }
  snapshot() {
    return [...this.m.entries()] as unknown as import('../src/index.js').JsonValue;
  }
  restore(s: unknown) {
    this.m = new Map(s as [string, unknown][]);
  }
}

if (process.argv[2] === 'child') {
  const [, , , address, dataDir, sync] = process.argv;
  const s = createServer({ address, dataDir, machine: new Kv(), storageSync: sync === '1' });
  await s.start();
  process.on('SIGINT', () => process.exit(0));
  let base = process.cpuUsage();
  process.on('message', (m) => {
    if (m === 'reset') base = process.cpuUsage();
    if (m === 'usage') process.send?.(process.cpuUsage(base));
  });
  process.send?.('ready');
} else {
  const count = Number(process.argv[2] ?? 100_000);
  const concurrency = Number(process.argv[3] ?? 1000);
  const sync = process.argv[4] ?? '1';
  const kind = process.argv[5] ?? 'Command';
  const dir = await mkdtemp(join(tmpdir(), 'node-tcp-bench-'));
  const ports = [24100, 24101, 24102].map((p) => p + Math.floor(Math.random() * 1000));
  const addrs = ports.map((p) => `127.0.0.1:${p}`);
  const children = addrs.map((a, i) =>
    fork(new URL(import.meta.url).pathname, ['child', a, join(dir, `n${i}`), sync], {
      execArgv: ['--import', 'tsx', ...(process.env.PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF}`] : [])],
    }),
  );
  await Promise.all(children.map((c) => new Promise((r) => c.once('message', r))));
  try {
    const admin = await RpcClient.connect(addrs[0]);
    await admin.request('CreateCluster');
    await admin.request('AddServer', { addr: addrs[1] });
    await admin.request('AddServer', { addr: addrs[2] });
    const clients = await Promise.all(addrs.map((a) => RpcClient.connect(a, { timeoutMs: 60_000 })));
    const key = (i: number) => `k${i % 17576}`;
    const valueBytes = Number(process.env.BENCH_VALUE_BYTES ?? 0);
    const big = valueBytes > 0 ? 'x'.repeat(valueBytes) : '';
    const value = (i: number): unknown => (valueBytes > 0 ? `${i}${big}`.slice(0, valueBytes) : i);
    for (const ch of children) ch.send('reset');
    let next = 0;
    let errors = 0;
    const lat: number[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        const cl = clients[process.env.BENCH_LEADER_ONLY ? 0 : w % 3];
        while (next < count) {
          const i = next++;
          const s = performance.now();
          try {
            await cl.request('Apply', {
              kind,
              input: kind === 'Command' ? { Put: [key(i), value(i)] } : { Get: key(i) },
            });
          } catch {
            errors++;
          }
          lat.push(performance.now() - s);
        }
      }),
    );
    const ms = Date.now() - t0;
    // CPU time per command on each server: a figure that a busy machine disturbs much less than throughput.
    const usage = await Promise.all(
      children.map(
        (ch) =>
          new Promise<{ user: number; system: number }>((r) => {
            ch.once('message', (u) => r(u as { user: number; system: number }));
            ch.send('usage');
          }),
      ),
    );
    const cpuUsPerOp = usage.map((u) => Math.round((u.user + u.system) / count));
    const st = (await admin.request('GetServerState')) as { counters: Record<string, number> };
    const perOp = (k: string) => +(st.counters[k] / count).toFixed(3);
    const leaderPerOp = { frames: perOp('framesSent'), appends: perOp('appendBatches'), msgs: perOp('messagesSent') };
    lat.sort((a, b) => a - b);
    const p = (q: number) => lat[Math.floor(q * (lat.length - 1))].toFixed(1);
    console.log(
      JSON.stringify({
        count,
        concurrency,
        sync,
        kind,
        ms,
        perSec: Math.round((count / ms) * 1000),
        errors,
        p50: p(0.5),
        p99: p(0.99),
        cpuUsPerOp,
        leaderPerOp,
      }),
    );
    await Promise.all([...clients, admin].map((c) => c.close()));
  } finally {
    for (const c of children) c.kill(process.env.PROF ? 'SIGINT' : 'SIGKILL');
    await new Promise((r) => setTimeout(r, process.env.PROF ? 3000 : 0));
    await rm(dir, { recursive: true, force: true });
  }
}
