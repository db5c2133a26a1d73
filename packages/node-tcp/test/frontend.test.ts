// The client frontend (RpcFrontend) on its own, with a fake dispatcher and small limits: output bounds, batch
// limits and slicing, connection limits, idle timeouts. Small limits stand in for the real defaults (64 MiB of
// answers, 10 000 requests per batch), so nothing here sends more than a few hundred KiB.

import { connect, createServer as createNetServer, type Server, Socket } from 'node:net';
import { ErrorCode } from '@raft/runtime';
import { sleep, waitFor } from '@raft/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLIENT_KEEPALIVE_MS } from '../src/client-connection.js';
import { RpcFrontend, type RpcFrontendOptions } from '../src/rpc.js';
import { BASE, FakeDispatcher } from './fake-dispatcher.js';

type Line = { id?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };

const servers: Server[] = [];
const clients: Socket[] = [];
let ticking = false;
afterEach(async () => {
  ticking = false;
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A frontend behind a real TCP listener on 127.0.0.1 (every connection is a JSON-RPC lines connection). */
async function setup(o: Partial<RpcFrontendOptions>): Promise<{
  d: FakeDispatcher;
  f: RpcFrontend;
  port: number;
  accepted: Socket[];
}> {
  const d = new FakeDispatcher();
  const f = new RpcFrontend(d, { ...BASE, ...o });
  const accepted: Socket[] = [];
  const srv = createNetServer((s) => {
    accepted.push(s);
    f.acceptLines(s, Buffer.alloc(0));
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  return { d, f, port: typeof a === 'object' && a !== null ? a.port : 0, accepted };
}

/** A client socket that collects answer lines and notes when the server closed it. */
async function client(port: number): Promise<{ s: Socket; lines: Line[]; closed: () => boolean }> {
  const s = connect({ host: '127.0.0.1', port });
  clients.push(s);
  const lines: Line[] = [];
  let buf = '';
  let closed = false;
  s.on('data', (c) => {
    buf += c.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)) as Line);
      buf = buf.slice(i + 1);
    }
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    closed = true;
  });
  await new Promise<void>((r, j) => {
    s.once('connect', r);
    s.once('error', j);
  });
  return { s, lines, closed: () => closed };
}

const req = (id: number, method: string, params?: unknown) =>
  JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params });

describe('RpcFrontend output limits', () => {
  it('closes a connection whose unsent answers exceed maxClientOutputBytes, after an OUTPUT_LIMIT_EXCEEDED line', async () => {
    const { port } = await setup({ maxClientOutputBytes: 10_000 });
    const c = await client(port);
    // 30 answers of ~1 000 characters, all produced in one turn: three times the limit.
    c.s.write(`${Array.from({ length: 30 }, (_, i) => req(i + 1, 'Big', { n: 1000 })).join('\n')}\n`);
    await waitFor(c.closed, 5000, 'the server to close the connection');
    const last = c.lines[c.lines.length - 1];
    expect(last.id).toBeNull();
    expect(last.error?.code).toBe(ErrorCode.OUTPUT_LIMIT_EXCEEDED);
    expect(last.error?.message).toContain('maxClientOutputBytes (10000)');
    const answered = c.lines.filter((l) => typeof l.id === 'number');
    expect(answered.length).toBeGreaterThan(0);
    expect(answered.length).toBeLessThan(11);
  });

  it('replaces a single answer larger than maxClientOutputBytes by an error with its id, and keeps serving', async () => {
    const { port } = await setup({ maxClientOutputBytes: 10_000 });
    const c = await client(port);
    c.s.write(`${req(1, 'Big', { n: 20_000 })}\n${req(2, 'Echo', { a: 1 })}\n`);
    await waitFor(() => c.lines.length >= 2, 5000, 'two answers');
    expect(c.lines[0]).toMatchObject({ id: 1, error: { code: ErrorCode.OUTPUT_LIMIT_EXCEEDED } });
    expect(c.lines[0].error?.data).toMatchObject({ notApplied: false });
    expect(c.lines[1]).toEqual({ jsonrpc: '2.0', id: 2, result: { a: 1 } });
    expect(c.closed()).toBe(false);
  });

  it('answers every request of a batch whose answers exceed the limit: those that fit, then errors', async () => {
    const { port } = await setup({ maxClientOutputBytes: 10_000 });
    const c = await client(port);
    c.s.write(`[${Array.from({ length: 30 }, (_, i) => req(i + 1, 'Big', { n: 1000 })).join(',')}]\n`);
    await waitFor(() => c.lines.length >= 1, 5000, 'the batch answer');
    const answers = c.lines[0] as unknown as Line[];
    expect(answers.map((a) => a.id).sort((x, y) => Number(x) - Number(y))).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    const ok = answers.filter((a) => a.result !== undefined);
    const dropped = answers.filter((a) => a.error?.code === ErrorCode.OUTPUT_LIMIT_EXCEEDED);
    expect(ok.length).toBeGreaterThan(0);
    expect(ok.length + dropped.length).toBe(30);
    expect(JSON.stringify(answers).length).toBeLessThan(10_000 + 30 * 400);
    expect(c.closed()).toBe(false);
  });

  it('survives a write that throws (e.g. RangeError: Invalid string length): that connection closes, flushPending does not throw', async () => {
    const { d, f, port, accepted } = await setup({});
    const c = await client(port);
    await waitFor(() => accepted.length === 1, 5000, 'the connection');
    const serverSide = accepted[0];
    serverSide.write = () => {
      throw new RangeError('Invalid string length');
    };
    c.s.write(`${req(1, 'Later')}\n`);
    await waitFor(() => d.later.length === 1, 5000, 'the request');
    d.later[0]({ ok: true, output: 'answer' });
    // The server flushes at the end of its turn; before the fix the error escaped from here (and killed the process
    // when it happened in the setImmediate).
    expect(() => f.flushPending()).not.toThrow();
    await waitFor(c.closed, 5000, 'the failing connection to close');
  });

  it('answers an output the encoder cannot handle with an error instead of throwing', async () => {
    const { d, port } = await setup({});
    const c = await client(port);
    c.s.write(`${req(1, 'Later')}\n`);
    await waitFor(() => d.later.length === 1, 5000, 'the request');
    expect(() => d.later[0]({ ok: true, output: { big: 1n } })).not.toThrow();
    await waitFor(() => c.lines.length >= 1, 5000, 'the answer');
    expect(c.lines[0]).toMatchObject({ id: 1, error: { code: ErrorCode.OUTPUT_LIMIT_EXCEEDED } });
  });
});

describe('RpcFrontend batches', () => {
  it('refuses a batch above maxBatchRequests with an error per request and runs none of it', async () => {
    const { d, port } = await setup({ maxBatchRequests: 5 });
    const c = await client(port);
    c.s.write(`[${Array.from({ length: 6 }, (_, i) => req(i + 1, 'Echo', [i])).join(',')}]\n${req(7, 'Echo', [7])}\n`);
    await waitFor(() => c.lines.length >= 2, 5000, 'two answers');
    const errs = c.lines[0] as unknown as Line[];
    expect(errs.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const e of errs) {
      expect(e.error?.code).toBe(ErrorCode.INVALID_REQUEST);
      expect(e.error?.message).toContain('maxBatchRequests (5)');
      expect(e.error?.data).toMatchObject({ notApplied: true });
    }
    expect(d.calls.map((x) => x.params)).toEqual([[7]]);
    expect(c.lines[1]).toEqual({ jsonrpc: '2.0', id: 7, result: [7] });
  });

  it('dispatches a large batch in slices across event-loop turns, and the lines after it only after it', async () => {
    const { d, port } = await setup({});
    // Counts event-loop iterations (stopped by afterEach, and bounded by the test's own timeout).
    ticking = true;
    const tick = () => {
      d.turn++;
      if (ticking) setImmediate(tick);
    };
    tick();
    const c = await client(port);
    const n = 1000;
    c.s.write(
      `[${Array.from({ length: n }, (_, i) => req(i + 1, 'Echo', [i])).join(',')}]\n${req(n + 1, 'Echo', [n])}\n`,
    );
    await waitFor(() => c.lines.length >= 2, 10_000, 'both answers');
    const batch = c.lines.find(Array.isArray) as unknown as Line[];
    expect(batch).toHaveLength(n);
    expect(batch.every((a, i) => a.id === i + 1 && (a.result as number[])[0] === i)).toBe(true);
    // Dispatch order is request order, the line after the batch last.
    expect(d.calls.map((x) => (x.params as number[])[0])).toEqual(Array.from({ length: n + 1 }, (_, i) => i));
    // Slices of at most 64 requests: the timers ran in between at least n/64 - 1 times.
    const turns = new Set(d.calls.map((x) => x.turn));
    expect(turns.size).toBeGreaterThanOrEqual(Math.floor(n / 64));
  });
});

describe('RpcFrontend connections', () => {
  it('refuses a client beyond maxClientConnections with an OVERLOADED line, then accepts again when one left', async () => {
    const { port } = await setup({ maxClientConnections: 2 });
    const a = await client(port);
    const b = await client(port);
    a.s.write(`${req(1, 'Echo', ['a'])}\n`);
    b.s.write(`${req(1, 'Echo', ['b'])}\n`);
    await waitFor(() => a.lines.length === 1 && b.lines.length === 1, 5000, 'two answers');
    const third = await client(port);
    await waitFor(third.closed, 5000, 'the third connection to be closed');
    expect(third.lines).toHaveLength(1);
    expect(third.lines[0]).toMatchObject({ id: null, error: { code: ErrorCode.OVERLOADED } });
    expect(third.lines[0].error?.message).toContain('maxClientConnections');
    a.s.destroy();
    await waitFor(a.closed, 5000, 'the first client to go');
    await sleep(50);
    const fourth = await client(port);
    fourth.s.write(`${req(1, 'Echo', ['d'])}\n`);
    await waitFor(() => fourth.lines.length === 1, 5000, 'an answer on a freed slot');
    expect(fourth.lines[0]).toEqual({ jsonrpc: '2.0', id: 1, result: ['d'] });
  });

  it('closes idle connections but not one waiting for an answer; client sockets get TCP keepalive', async () => {
    const keepalive = vi.spyOn(Socket.prototype, 'setKeepAlive');
    const { d, port, accepted } = await setup({ clientIdleTimeoutMs: 200 });
    const idle = await client(port);
    idle.s.write(`${req(1, 'Echo', [1])}\n`);
    const waiting = await client(port);
    waiting.s.write(`${req(1, 'Later')}\n`);
    await waitFor(() => d.later.length === 1 && idle.lines.length === 1, 5000, 'both requests');
    const t0 = Date.now();
    await waitFor(idle.closed, 5000, 'the idle connection to be closed');
    expect(Date.now() - t0).toBeLessThan(2000);
    await sleep(400);
    expect(waiting.closed()).toBe(false);
    d.later[0]({ ok: true, output: 'late' });
    await waitFor(() => waiting.lines.length === 1, 5000, 'the late answer');
    expect(waiting.lines[0]).toEqual({ jsonrpc: '2.0', id: 1, result: 'late' });
    await waitFor(waiting.closed, 5000, 'the now idle connection to be closed');
    expect(accepted.length).toBe(2);
    expect(keepalive).toHaveBeenCalledWith(true, CLIENT_KEEPALIVE_MS);
    keepalive.mockRestore();
  });
});
