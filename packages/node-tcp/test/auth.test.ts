// Issue 15, item 3: client authentication and authorisation. Replays the attack "an anonymous client puts and
// deletes keys, transfers leadership and removes a member" against a server with a credentials file, and checks that
// each role may do exactly what it should. Fails without the check in the server's dispatch.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@raft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  ErrorCode,
  hashToken,
  newToken,
  parseCredentials,
  type RaftServer,
  RpcClient,
  RpcError,
  requiredRole,
} from '../src/index.js';
import { Cluster } from './helpers.js';

const tokens = { read: newToken(), write: newToken(), admin: newToken() };
let c: Cluster;
let server: RaftServer;
let credentialsFile: string;

function writeCredentials(entries: { name: string; role: string; token: string }[]): void {
  const doc = { tokens: entries.map((e) => ({ name: e.name, role: e.role, sha256: hashToken(e.token) })) };
  writeFileSync(credentialsFile, JSON.stringify(doc, null, 2));
}

beforeAll(async () => {
  c = await Cluster.create();
  credentialsFile = join(c.dir, 'credentials.json');
  writeCredentials([
    { name: 'reader', role: 'read', token: tokens.read },
    { name: 'writer', role: 'write', token: tokens.write },
    { name: 'operator', role: 'admin', token: tokens.admin },
  ]);
  server = await c.start(undefined, { credentialsFile });
  await server.createCluster(); // the in-process API is the embedding program's: no token needed
  await c.leader();
});
afterAll(async () => {
  await c?.cleanup();
});

async function client(token?: string): Promise<RpcClient> {
  const cl = await RpcClient.connect(server.id, { timeoutMs: 10_000, token });
  c.clients.push(cl);
  return cl;
}

async function codeOf(p: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof RpcError) return e.code;
    throw e;
  }
}

const put = (k: string, v: unknown) => ({ kind: 'Command', input: { Put: [k, v] } });

describe('an anonymous client', () => {
  it('cannot put, delete, transfer leadership or remove a member (UNAUTHENTICATED), nor read', async () => {
    await server.apply({ Put: ['victim', 1] });
    const anon = await client();
    expect(await codeOf(anon.request('Apply', put('owned', 1)))).toBe(ErrorCode.UNAUTHENTICATED);
    expect(await codeOf(anon.request('Apply', { kind: 'Command', input: { Delete: 'victim' } }))).toBe(
      ErrorCode.UNAUTHENTICATED,
    );
    expect(await codeOf(anon.request('TransferLeadership', {}))).toBe(ErrorCode.UNAUTHENTICATED);
    expect(await codeOf(anon.request('RemoveServer', { addr: server.id }))).toBe(ErrorCode.UNAUTHENTICATED);
    expect(await codeOf(anon.request('Apply', { kind: 'Query', input: { Get: 'victim' } }))).toBe(
      ErrorCode.UNAUTHENTICATED,
    );
    expect(await codeOf(anon.request('GetServerState'))).toBe(ErrorCode.UNAUTHENTICATED);
    // Nothing happened.
    expect(await server.localQuery({ Get: 'owned' })).toBeNull();
    expect(await server.localQuery({ Get: 'victim' })).toBe(1);
    const st = await server.getServerState();
    expect(st.role).toBe('leader');
    expect(st.members).toEqual([server.id]);
  });

  it('is refused a token that is not in the file, and stays anonymous', async () => {
    const anon = await client();
    const e = await anon.request<never>('Authenticate', { token: newToken() }).catch((x: RpcError) => x);
    expect(e).toBeInstanceOf(RpcError);
    expect(e.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(await codeOf(anon.request('Apply', put('k', 1)))).toBe(ErrorCode.UNAUTHENTICATED);
    await expect(RpcClient.connect(server.id, { token: 'wrong' })).rejects.toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
    });
  });
});

describe('roles', () => {
  it('read: queries and state, but no command (FORBIDDEN)', async () => {
    const r = await client(tokens.read);
    expect(await r.request('Apply', { kind: 'Query', input: { Get: 'victim' } })).toBe(1);
    expect(await r.request('Apply', { kind: 'LocalQuery', input: { Get: 'victim' } })).toBe(1);
    expect(await codeOf(r.request('GetServerState'))).toBe('ok');
    const e = await r.request<never>('Apply', put('victim', 2)).catch((x: RpcError) => x);
    expect(e.code).toBe(ErrorCode.FORBIDDEN);
    expect(e.data).toMatchObject({ notApplied: true, role: 'read', required: 'write' });
    expect(await server.localQuery({ Get: 'victim' })).toBe(1);
  });

  it('write: commands and reads, but no membership or snapshot (FORBIDDEN)', async () => {
    const w = await client(tokens.write);
    expect(await w.request('Apply', put('w', 'yes'))).toBeNull();
    expect(await w.request('Apply', { kind: 'Query', input: { Get: 'w' } })).toBe('yes');
    expect(await codeOf(w.request('TakeSnapshot'))).toBe(ErrorCode.FORBIDDEN);
    expect(await codeOf(w.request('RemoveServer', { addr: server.id }))).toBe(ErrorCode.FORBIDDEN);
    expect(await codeOf(w.request('TransferLeadership', {}))).toBe(ErrorCode.FORBIDDEN);
    expect(await codeOf(w.request('CreateCluster'))).toBe(ErrorCode.FORBIDDEN);
  });

  it('admin: everything', async () => {
    const a = await client(tokens.admin);
    expect(await a.request('Apply', put('a', 1))).toBeNull();
    expect(await codeOf(a.request('TakeSnapshot'))).toBe('ok');
    // Allowed, and then refused by the runtime for its own reason (a one-member cluster has nobody to transfer to).
    expect(await codeOf(a.request('TransferLeadership', {}))).not.toBe(ErrorCode.FORBIDDEN);
  });

  it('maps every runtime request to a role', () => {
    expect(requiredRole('query')).toBe('read');
    expect(requiredRole('localQuery')).toBe('read');
    expect(requiredRole('state')).toBe('read');
    expect(requiredRole('command')).toBe('write');
    for (const t of ['createCluster', 'addServer', 'removeServer', 'transferLeadership', 'takeSnapshot'] as const) {
      expect(requiredRole(t)).toBe('admin');
    }
  });
});

describe('HTTP and WebSocket', () => {
  const get = (headers: Record<string, string>) => fetch(`http://${server.id}/state`, { headers });

  it('GET /state needs a bearer token with role read', async () => {
    const none = await get({});
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: number } }).error.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect((await get({ authorization: `Bearer ${newToken()}` })).status).toBe(401);
    const ok = await get({ authorization: `Bearer ${tokens.read}` });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { id: string }).id).toBe(server.id);
  });

  async function wsCall(ws: WebSocket, req: object): Promise<{ result?: unknown; error?: { code: number } }> {
    return new Promise((resolve) => {
      ws.once('message', (d) => resolve(JSON.parse(String(d))));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, ...req }));
    });
  }
  async function openWs(headers: Record<string, string> = {}): Promise<WebSocket> {
    const ws = new WebSocket(`ws://${server.id}/`, { headers });
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    return ws;
  }

  it('a WebSocket authenticates with a first Authenticate message, or with the upgrade header', async () => {
    const ws = await openWs();
    const p = { method: 'Apply', params: put('ws', 1) };
    expect((await wsCall(ws, p)).error?.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect((await wsCall(ws, { method: 'Authenticate', params: { token: tokens.write } })).result).toEqual({
      name: 'writer',
      role: 'write',
    });
    expect((await wsCall(ws, p)).error).toBeUndefined();
    ws.close();
    const ws2 = await openWs({ authorization: `Bearer ${tokens.read}` });
    expect((await wsCall(ws2, p)).error?.code).toBe(ErrorCode.FORBIDDEN);
    ws2.close();
  });
});

describe('rotation', () => {
  it('a token added to the file works, and one removed stops working, on open connections too', async () => {
    const old = await client(tokens.write);
    const fresh = newToken();
    writeCredentials([
      { name: 'operator', role: 'admin', token: tokens.admin },
      { name: 'writer2', role: 'write', token: fresh },
    ]);
    expect(server.reloadCredentials()).toBe(true);
    const n = await client(fresh);
    expect(await n.request('Apply', put('rotated', 1))).toBeNull();
    expect(await codeOf(old.request('Apply', put('old', 1)))).toBe(ErrorCode.UNAUTHENTICATED);
    await expect(RpcClient.connect(server.id, { token: tokens.write })).rejects.toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
    });
  });

  it('the server notices an edited file by itself (mtime poll)', async () => {
    const later = newToken();
    writeCredentials([
      { name: 'operator', role: 'admin', token: tokens.admin },
      { name: 'later', role: 'read', token: later },
    ]);
    await waitFor(
      async () =>
        await RpcClient.connect(server.id, { token: later }).then(
          async (x) => {
            await x.close();
            return true;
          },
          () => false,
        ),
      10_000,
      'the server to pick up the edited credentials file',
    );
  });

  it('a malformed file is refused with a typed error', () => {
    expect(() => parseCredentials('{"tokens":[{"name":"x","role":"root","sha256":"00"}]}')).toThrow(/role/);
    expect(() => parseCredentials('nope')).toThrow(expect.objectContaining({ code: 'CREDENTIALS_INVALID' }));
  });
});

describe('JSON-RPC over HTTP POST', () => {
  async function post(body: unknown, token?: string): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`http://${server.id}/`, { method: 'POST', headers, body: JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  }

  it('an anonymous POST cannot write; a bearer token of the right role can; a bad token gets 401', async () => {
    // The tests above edit the credentials file: put the three tokens back and wait for the reload.
    writeCredentials([
      { name: 'reader', role: 'read', token: tokens.read },
      { name: 'writer', role: 'write', token: tokens.write },
      { name: 'operator', role: 'admin', token: tokens.admin },
    ]);
    await waitFor(
      async () => (await post({ jsonrpc: '2.0', id: 0, method: 'GetServerState' }, tokens.read)).status === 200,
      10_000,
      'the reader token to be accepted again',
      { intervalMs: 100 },
    );
    const req = { jsonrpc: '2.0', id: 1, method: 'Apply', params: put('via-http', 7) };
    const anon = await post(req);
    expect(anon.status).toBe(200);
    expect((anon.json as { error?: { code: number } }).error?.code).toBe(ErrorCode.UNAUTHENTICATED);
    const reader = await post(req, tokens.read);
    expect((reader.json as { error?: { code: number } }).error?.code).toBe(ErrorCode.FORBIDDEN);
    expect(await server.localQuery({ Get: 'via-http' })).toBeNull();
    const writer = await post(req, tokens.write);
    expect(writer.json).toEqual({ jsonrpc: '2.0', id: 1, result: null });
    expect((await post(req, 'not-a-token')).status).toBe(401);
  });
});
