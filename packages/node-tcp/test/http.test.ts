// JSON-RPC 2.0 over HTTP POST on the client port: a third-party client (jayson's HTTP client, from npm) against a
// real server, raw node http/net requests for the HTTP statuses (404, 405, 411, 413, 415, 400), and the frontend
// with a fake dispatcher for the limits (output bound, batch limit, request order, idle timeout).
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { ErrorCode } from '@raft/runtime';
import { waitFor } from '@raft/testkit';
import jayson from 'jayson/promise';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcFrontend, type RpcFrontendOptions } from '../src/rpc.js';
import { BASE, FakeDispatcher } from './fake-dispatcher.js';
import { Cluster } from './helpers.js';

let c: Cluster | undefined;
const agents: Agent[] = [];
const sockets: Socket[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) a.destroy();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await c?.cleanup();
  c = undefined;
});

type RpcResponse = { jsonrpc: '2.0'; id: unknown; result?: unknown; error?: { code: number; message: string } };

function hostPort(addr: string): { host: string; port: number } {
  const [host, port] = addr.split(':');
  return { host, port: Number(port) };
}

/** One HTTP request with node's client; resolves with status, headers and body text. */
function send(
  addr: string,
  opts: { method?: string; path?: string; headers?: Record<string, string | number>; body?: string | Buffer },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { ...hostPort(addr), method: opts.method ?? 'POST', path: opts.path ?? '/', headers: opts.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.end(opts.body);
  });
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** A raw TCP connection that records what it receives and whether the server closed it. */
async function raw(addr: string): Promise<{ s: Socket; text: () => string; closed: () => boolean }> {
  const s = connect(hostPort(addr));
  sockets.push(s);
  let text = '';
  let closed = false;
  s.on('data', (d) => {
    text += d.toString('latin1');
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    closed = true;
  });
  await new Promise<void>((r, j) => {
    s.once('connect', r);
    s.once('error', j);
  });
  return { s, text: () => text, closed: () => closed };
}

describe('JSON-RPC over HTTP with a third-party client (jayson)', () => {
  it('answers single requests, batches, method errors and notifications, reusing one keep-alive connection', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const client = jayson.client.http({ ...hostPort(a.id), agent });
    const reused: boolean[] = [];
    const ports = new Set<number>();
    client.on('http response', (res: { socket: Socket }, req: { reusedSocket: boolean }) => {
      reused.push(req.reusedSocket);
      ports.add(res.socket.localPort ?? -1);
    });
    // A single request.
    const created = (await client.request('CreateCluster', {})) as RpcResponse;
    expect(created.result).toEqual({ members: [a.id] });
    expect((await client.request('Apply', { kind: 'Command', input: { Put: ['k', 1] } })).result).toBe(null);
    expect((await client.request('Apply', { kind: 'Query', input: { Get: 'k' } })).result).toBe(1);
    // A method error is a JSON-RPC error in a 200 answer: jayson hands it over as the response's `error`.
    const nope = (await client.request('Nope', [])) as RpcResponse;
    expect(nope.error?.code).toBe(ErrorCode.METHOD_NOT_FOUND);
    const bad = (await client.request('Apply', { kind: 'Command', input: { Bogus: 1 } })) as RpcResponse;
    expect(bad.error?.code).toBe(ErrorCode.INVALID_PARAMS);
    // A batch (requests built with shouldCall=false, sent together): one answer per request, matched by id.
    const batch = (await client.request([
      client.request('Apply', { kind: 'Command', input: { Put: ['b', 2] } }, 'put', false),
      client.request('Apply', { kind: 'Query', input: { Get: 'k' } }, 'get', false),
      client.request('Nope', [], 'nope', false),
    ])) as RpcResponse[];
    const byId = new Map(batch.map((r) => [r.id, r]));
    expect(byId.size).toBe(3);
    expect(byId.get('put')?.result).toBe(null);
    expect(byId.get('get')?.result).toBe(1);
    expect(byId.get('nope')?.error?.code).toBe(ErrorCode.METHOD_NOT_FOUND);
    // A notification (jayson documents id null as "make it a notification" and leaves the id out; its typings lack
    // null) gets 204 and no body once it ran: jayson resolves with nothing.
    const notification = null as unknown as string;
    expect(await client.request('Apply', { kind: 'Command', input: { Put: ['n', 3] } }, notification)).toBeUndefined();
    expect((await client.request('Apply', { kind: 'Query', input: { Get: 'n' } })).result).toBe(3);
    // POST /rpc is the same endpoint.
    const rpcPath = jayson.client.http({ ...hostPort(a.id), path: '/rpc', agent });
    expect((await rpcPath.request('Apply', { kind: 'Query', input: { Get: 'b' } })).result).toBe(2);
    // Every request of `client` went over one connection, and the server counted one client connection.
    expect(reused).toHaveLength(8);
    expect(reused.slice(1).every(Boolean)).toBe(true);
    expect(ports.size).toBe(1);
    expect((await a.getServerState()).counters.clientConnections).toBe(1);
  });

  it('still serves jayson over TCP lines, and both on the same port', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const tcp = jayson.client.tcp(hostPort(a.id));
    expect(((await tcp.request('CreateCluster', {})) as RpcResponse).result).toEqual({ members: [a.id] });
    const http = jayson.client.http(hostPort(a.id));
    expect(((await http.request('GetServerState', {})) as { result: { role: string } }).result.role).toBe('leader');
  });
});

describe('JSON-RPC over HTTP: statuses', () => {
  it('answers 200 with JSON-RPC errors, 204 for notifications, and 404, 405, 411, 413, 415 for HTTP faults', async () => {
    c = await Cluster.create();
    const a = await c.start(undefined, { maxLineBytes: 1000 });
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetServerState' });
    const ok = await send(a.id, { headers: JSON_HEADERS, body: call });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('application/json');
    expect(JSON.parse(ok.body)).toMatchObject({ id: 1, result: { id: a.id } });
    // charset and other parameters of the type are fine.
    const charset = await send(a.id, { headers: { 'content-type': 'application/json; charset=utf-8' }, body: call });
    expect(charset.status).toBe(200);
    // Unparsable JSON is still a JSON-RPC answer (-32700) with 200, like an invalid request (-32600).
    const garbage = await send(a.id, { headers: JSON_HEADERS, body: '{"jsonrpc":' });
    expect(garbage.status).toBe(200);
    expect(JSON.parse(garbage.body)).toMatchObject({ id: null, error: { code: ErrorCode.PARSE_ERROR } });
    const empty = await send(a.id, { headers: JSON_HEADERS, body: '[]' });
    expect(JSON.parse(empty.body)).toMatchObject({ id: null, error: { code: ErrorCode.INVALID_REQUEST } });
    // Notifications only (one, or a batch of them): 204, no body.
    const note = JSON.stringify({ jsonrpc: '2.0', method: 'GetServerState' });
    const one = await send(a.id, { headers: JSON_HEADERS, body: note });
    expect([one.status, one.body]).toEqual([204, '']);
    const notes = await send(a.id, { headers: JSON_HEADERS, body: `[${note},${note}]` });
    expect([notes.status, notes.body]).toEqual([204, '']);
    // An invalid "notification" (no id, bad version) is answered: the spec says so, with id null.
    const invalid = await send(a.id, { headers: JSON_HEADERS, body: '{"jsonrpc":"1.0","method":"GetServerState"}' });
    expect(invalid.status).toBe(200);
    expect(JSON.parse(invalid.body)).toMatchObject({ id: null, error: { code: ErrorCode.INVALID_REQUEST } });
    // HTTP-level faults.
    expect((await send(a.id, { path: '/nope', headers: JSON_HEADERS, body: call })).status).toBe(404);
    const getRoot = await send(a.id, { method: 'GET', path: '/' });
    expect(getRoot.status).toBe(405);
    expect(getRoot.headers.allow).toBe('POST');
    const putRoot = await send(a.id, { method: 'PUT', path: '/', headers: JSON_HEADERS, body: call });
    expect([putRoot.status, putRoot.headers.allow]).toEqual([405, 'POST']);
    const postState = await send(a.id, { path: '/state', headers: JSON_HEADERS, body: call });
    expect([postState.status, postState.headers.allow]).toEqual([405, 'GET, HEAD']);
    expect((await send(a.id, { method: 'GET', path: '/state' })).status).toBe(200);
    const plain = await send(a.id, { headers: { 'content-type': 'text/plain' }, body: call });
    expect(plain.status).toBe(415);
    expect((await send(a.id, { body: call })).status).toBe(415);
    const big = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'GetServerState', params: { pad: 'x'.repeat(1000) } });
    const tooLarge = await send(a.id, { headers: JSON_HEADERS, body: big });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body).toContain('maxLineBytes (1000)');
    // A chunked body has no declared size: it is measured while read.
    const chunked = await send(a.id, {
      headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' },
      body: big,
    });
    expect(chunked.status).toBe(413);
    const smallChunked = await send(a.id, { headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' }, body: call });
    expect(JSON.parse(smallChunked.body)).toMatchObject({ id: 1, result: { id: a.id } });
    // A client that goes away in the middle of its body costs nothing but its connection.
    const quitter = await raw(a.id);
    quitter.s.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"js');
    await new Promise((r) => setTimeout(r, 50));
    quitter.s.destroy();
    // The server still serves everyone.
    expect((await send(a.id, { headers: JSON_HEADERS, body: call })).status).toBe(200);
  });

  it('answers 411 without a length, 400 to malformed HTTP, 413 before the body with Expect: 100-continue', async () => {
    c = await Cluster.create();
    const a = await c.start(undefined, { maxLineBytes: 1000 });
    const noLength = await raw(a.id);
    noLength.s.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\r\n');
    await waitFor(noLength.closed, 5000, 'the 411 connection to be closed');
    expect(noLength.text()).toMatch(/^HTTP\/1\.1 411 /);
    const malformed = await raw(a.id);
    malformed.s.write('POST / HTTP/1.1\r\nthis is not a header\r\n\r\n');
    await waitFor(malformed.closed, 5000, 'the malformed connection to be closed');
    expect(malformed.text()).toMatch(/^HTTP\/1\.1 400 /);
    const expect100 = await raw(a.id);
    expect100.s.write(
      'POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n',
    );
    await waitFor(expect100.closed, 5000, 'the 413 connection to be closed');
    expect(expect100.text()).toMatch(/^HTTP\/1\.1 413 /);
    // A request within the limit gets "100 Continue", then its answer.
    const fits = await raw(a.id);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'GetServerState' });
    fits.s.write(
      `POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nexpect: 100-continue\r\n\r\n`,
    );
    await waitFor(() => fits.text().includes('100 Continue'), 5000, '100 Continue');
    fits.s.write(body);
    await waitFor(() => fits.text().includes('"id":7'), 5000, 'the answer');
    expect(fits.text()).toMatch(/HTTP\/1\.1 200 /);
    expect(fits.closed()).toBe(false);
  });
});

/** A frontend behind a real listener on 127.0.0.1 whose every connection is HTTP. */
async function frontend(o: Partial<RpcFrontendOptions>): Promise<{ d: FakeDispatcher; addr: string }> {
  const d = new FakeDispatcher();
  const f = new RpcFrontend(d, { ...BASE, ...o });
  const srv = createNetServer((s) => f.acceptHttp(s, Buffer.alloc(0)));
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  return { d, addr: `127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}` };
}

const post = (body: string) =>
  `POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const rpc = (id: number, method: string, params?: unknown) => JSON.stringify({ jsonrpc: '2.0', id, method, params });

describe('JSON-RPC over HTTP: the limits of the lines front end', () => {
  it('closes a connection whose queued answers exceed maxClientOutputBytes, after an OUTPUT_LIMIT_EXCEEDED answer', async () => {
    const { d, addr } = await frontend({ maxClientOutputBytes: 10_000 });
    const conn = await raw(addr);
    // The first request waits; the 30 pipelined after it are answered at once, and their answers (1 000 characters
    // each, three times the limit) queue behind the first one's.
    conn.s.write(
      post(rpc(1, 'Later')) + Array.from({ length: 30 }, (_, i) => post(rpc(i + 2, 'Big', { n: 1000 }))).join(''),
    );
    await waitFor(() => d.calls.length >= 11, 5000, 'the pipelined requests to be dispatched');
    d.later[0]({ ok: true, output: 'first' });
    await waitFor(conn.closed, 5000, 'the server to close the connection');
    const bodies = conn.text().split('\r\n\r\n').slice(1);
    expect(bodies[0]).toContain('"result":"first"');
    const last = conn.text().slice(conn.text().lastIndexOf('HTTP/1.1 '));
    expect(last).toMatch(/^HTTP\/1\.1 200 /);
    expect(last.toLowerCase()).toContain('connection: close');
    expect(last).toContain(`"code":${ErrorCode.OUTPUT_LIMIT_EXCEEDED}`);
    expect(last).toContain('maxClientOutputBytes (10000)');
    const answered = (conn.text().match(/"result":"x+"/g) ?? []).length;
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(11);
  });

  it('refuses a batch above maxBatchRequests without running it, and keeps requests in order after a sliced batch', async () => {
    const { d, addr } = await frontend({ maxBatchRequests: 3 });
    const four = `[${[1, 2, 3, 4].map((i) => rpc(i, 'Echo', { i })).join(',')}]`;
    const refused = await send(addr, { headers: JSON_HEADERS, body: four });
    expect(refused.status).toBe(200);
    const answers = JSON.parse(refused.body) as RpcResponse[];
    expect(answers).toHaveLength(4);
    for (const r of answers) expect(r.error?.message).toContain('maxBatchRequests (3)');
    expect(d.calls).toEqual([]);
    // A batch of 200 is dispatched in slices (64 per turn); the request pipelined after it runs after all of it.
    const { d: d2, addr: addr2 } = await frontend({});
    const batch = `[${Array.from({ length: 200 }, (_, i) => rpc(i, 'Echo', { i })).join(',')}]`;
    const conn = await raw(addr2);
    conn.s.write(post(batch) + post(rpc(1000, 'Tail')));
    await waitFor(() => conn.text().includes('"id":1000'), 5000, 'the answer after the batch');
    expect(d2.calls).toHaveLength(201);
    expect(d2.calls[200]?.method).toBe('Tail');
    expect(conn.text().indexOf('"id":199')).toBeLessThan(conn.text().indexOf('"id":1000'));
  });

  it('closes an idle keep-alive connection after clientIdleTimeoutMs, not one waiting for its answer', async () => {
    const { d, addr } = await frontend({ clientIdleTimeoutMs: 200 });
    const idle = await raw(addr);
    idle.s.write(post(rpc(1, 'Echo', 1)));
    const waiting = await raw(addr);
    waiting.s.write(post(rpc(2, 'Later')));
    await waitFor(idle.closed, 5000, 'the idle connection to be closed');
    expect(idle.text()).toContain('"id":1');
    expect(waiting.closed()).toBe(false);
    d.later[0]({ ok: true, output: 'done' });
    await waitFor(() => waiting.text().includes('"done"'), 5000, 'the late answer');
    await waitFor(waiting.closed, 5000, 'the then idle connection to be closed');
  });

  it('refuses HTTP connections beyond maxClientConnections with a 503', async () => {
    const { addr } = await frontend({ maxClientConnections: 1 });
    const first = await raw(addr);
    first.s.write(post(rpc(1, 'Echo', 1)));
    await waitFor(() => first.text().includes('"id":1'), 5000, 'the first answer');
    const second = await raw(addr);
    second.s.write(post(rpc(2, 'Echo', 2)));
    await waitFor(() => second.text().includes('\r\n\r\n'), 5000, 'the refusal');
    expect(second.text()).toMatch(/^HTTP\/1\.1 503 /);
  });
});
