import { afterEach, describe, expect, it } from 'vitest';
import { runLoad } from '../src/index.js';
import { type FakeEtcd, type FakeJsonRpc, fakeEtcd, fakeJsonRpc } from './fakes.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function jsonRpc(options: Parameters<typeof fakeJsonRpc>[0]): Promise<FakeJsonRpc> {
  const s = await fakeJsonRpc(options);
  cleanups.push(() => s.close());
  return s;
}
async function etcd(options: Parameters<typeof fakeEtcd>[0]): Promise<FakeEtcd> {
  const s = await fakeEtcd(options);
  cleanups.push(() => s.close());
  return s;
}

describe('JSON-RPC load', () => {
  it('sends exactly count + warmup requests, spreads C over the servers and never exceeds it', async () => {
    const a = await jsonRpc({ batch: 4 });
    const b = await jsonRpc({ batch: 4 });
    const report = await runLoad({
      target: 'jsonrpc',
      servers: [`:${a.port}`, `127.0.0.1:${b.port}`],
      workload: 'command',
      count: 400,
      warmup: 20,
      concurrency: 8,
      seed: 5,
      progress: 'off',
    });
    expect(report).toMatchObject({ count: 400, completed: 400, ok: 400, errors: 0, truncated: false, seed: 5 });
    expect(a.stats.received + b.stats.received).toBe(420);
    // Slot k goes to server k % 2: each server has exactly 4 of the 8 in flight at its peak.
    expect(a.stats.maxOutstanding).toBe(4);
    expect(b.stats.maxOutstanding).toBe(4);
    expect(report.throughput).toBeGreaterThan(0);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p50).toBeLessThanOrEqual(report.latencyMs.p99);
    expect(report.latencyMs.p99).toBeLessThanOrEqual(report.latencyMs.max);
    const first = a.stats.requests[0] as { method: string; params: { kind: string; input: { Put: unknown[] } } };
    expect(first.method).toBe('Apply');
    expect(first.params.kind).toBe('Command');
    expect(first.params.input.Put[0]).toMatch(/^[a-zA-Z]{3}$/);
  });

  it('counts error responses and timeouts by kind, and still finishes', async () => {
    const s = await jsonRpc({
      batch: 10,
      answer: ({ id }) => (id % 10 === 3 ? 'error' : id % 25 === 7 ? 'drop' : 'ok'),
    });
    const report = await runLoad({
      target: 'jsonrpc',
      servers: [`:${s.port}`],
      workload: 'query',
      count: 200,
      concurrency: 10,
      requestTimeoutMs: 200,
      progress: 'off',
    });
    // ids 0..199: 20 end in 3 (errors); ids = 7 mod 25 not ending in 3: 7, 32, 57, 82, 107, 132, 157, 182 (8 drops).
    expect(report.completed).toBe(200);
    expect(report.errors).toBe(28);
    expect(report.ok).toBe(172);
    expect(Object.values(report.errorKinds).reduce((x, y) => x + y, 0)).toBe(28);
    expect(report.errorKinds.timeout).toBe(8);
    expect(report.errorKinds['rpc error -N: NotLeader (request N)']).toBe(20);
    expect((s.stats.requests[0] as { params: { kind: string } }).params.kind).toBe('Query');
  });

  it('fails the requests of a dropped connection and reconnects for the rest', async () => {
    let dropped = false;
    let server: FakeJsonRpc | null = null;
    server = await jsonRpc({
      batch: 5,
      answer: ({ id }) => {
        if (id === 50 && !dropped) {
          dropped = true;
          setImmediate(() => server!.dropConnections());
          return 'drop';
        }
        return 'ok';
      },
    });
    const report = await runLoad({
      target: 'jsonrpc',
      servers: [`:${server.port}`],
      workload: 'mix',
      count: 300,
      concurrency: 5,
      requestTimeoutMs: 5000,
      progress: 'off',
    });
    expect(report.completed).toBe(300);
    expect(report.errors).toBeGreaterThan(0);
    expect(report.errors).toBeLessThanOrEqual(5);
    expect(report.errorKinds['connection closed']).toBe(report.errors);
    expect(report.ok).toBe(300 - report.errors);
  });

  it('rejects with CONNECT when a server is not listening', async () => {
    const s = await jsonRpc({ batch: 1 });
    const port = s.port;
    await s.close();
    cleanups.length = 0;
    await expect(
      runLoad({
        target: 'jsonrpc',
        servers: [`:${port}`],
        workload: 'command',
        count: 1,
        concurrency: 1,
        progress: 'off',
      }),
    ).rejects.toMatchObject({ code: 'CONNECT' });
  });
});

describe('etcd load', () => {
  it('uses one keep-alive connection per slot, C in flight, and the gateway encoding', async () => {
    const s = await etcd({ delayMs: 2 });
    const report = await runLoad({
      target: 'etcd-gateway',
      servers: [`:${s.port}`],
      workload: 'local',
      count: 300,
      warmup: 12,
      concurrency: 12,
      progress: 'off',
    });
    expect(report).toMatchObject({ target: 'etcd-gateway', completed: 300, ok: 300, errors: 0 });
    expect(s.stats.received).toBe(312);
    expect(s.stats.maxOutstanding).toBe(12);
    const first = s.stats.requests[0] as { path: string; body: { key: string; serializable?: boolean } };
    expect(first.path).toBe('/v3/kv/range');
    expect(first.body.serializable).toBe(true);
    expect(Buffer.from(first.body.key, 'base64').toString()).toMatch(/^[a-zA-Z]{3}$/);
  });

  it('counts non-200 answers as errors and reads chunked bodies', async () => {
    // Puts of keys starting with 'a' (about 1 in 52) fail; the server's log says how many there were.
    const failsOn = (path: string, key: string) =>
      path === '/v3/kv/put' && Buffer.from(key, 'base64').toString().startsWith('a');
    const s = await etcd({ status: (path, body) => (failsOn(path, String(body.key)) ? 429 : 200), chunked: true });
    const report = await runLoad({
      target: 'etcd-gateway',
      servers: [`:${s.port}`],
      workload: 'mix',
      count: 3000,
      concurrency: 16,
      valueSize: 1024,
      seed: 99,
      progress: 'off',
    });
    const reqs = s.stats.requests as { path: string; body: { key: string; value?: string } }[];
    const failing = reqs.filter((r) => failsOn(r.path, r.body.key)).length;
    expect(failing).toBeGreaterThan(5);
    expect(report.completed).toBe(3000);
    expect(report.errors).toBe(failing);
    expect(report.ok).toBe(3000 - failing);
    expect(report.errorKinds['http N: etcdserver: too many requests']).toBe(failing);
    const put = reqs.find((r) => r.path === '/v3/kv/put')!;
    expect(Buffer.from(put.body.value!, 'base64').length).toBe(1024);
    expect(reqs.some((r) => r.path === '/v3/kv/range')).toBe(true);
  });
});
