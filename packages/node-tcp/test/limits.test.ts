// Client-connection limits through the whole server: the first-bytes timeout, maxClientConnections (never applied
// to peers), and maxBatchRequests as a server option. The frontend's limits in detail: frontend.test.ts.

import { connect, type Socket } from 'node:net';
import { waitFor } from '@raft/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { splitAddress } from '../src/address.js';
import { ErrorCode, type RpcError } from '../src/index.js';
import { Cluster } from './helpers.js';

let c: Cluster;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await c?.cleanup();
});

/** A raw connection that records what it receives and whether it was closed. */
async function rawConn(addr: string): Promise<{ s: Socket; text: () => string; closed: () => boolean }> {
  const { host, port } = splitAddress(addr)!;
  const s = connect({ host, port });
  sockets.push(s);
  let text = '';
  let closed = false;
  s.on('data', (d) => {
    text += d.toString();
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

describe('client connection limits', () => {
  it('closes a connection that never says what it is, and an idle client, after clientIdleTimeoutMs', async () => {
    c = await Cluster.create();
    const a = await c.start(undefined, { clientIdleTimeoutMs: 200 });
    const silent = await rawConn(a.id);
    const idle = await rawConn(a.id);
    idle.s.write('{"jsonrpc":"2.0","id":1,"method":"GetServerState"}\n');
    await waitFor(() => idle.text().includes('\n'), 5000, 'an answer');
    await waitFor(() => silent.closed() && idle.closed(), 3000, 'both connections to be closed');
    expect(silent.text()).toBe('');
  });

  it('refuses clients beyond maxClientConnections with a clear error, never peers', async () => {
    c = await Cluster.create();
    const extra = { maxClientConnections: 1, maxBatchRequests: 2 };
    const a = await c.start(undefined, extra);
    const b = await c.start(undefined, extra);
    const cl = await c.client(a.id);
    await cl.request('CreateCluster');
    // a's one client slot is taken: another JSON-RPC client and an HTTP client are refused with an explanation.
    const refused = await rawConn(a.id);
    refused.s.write('{"jsonrpc":"2.0","id":1,"method":"GetServerState"}\n');
    await waitFor(refused.closed, 5000, 'the refused client to be closed');
    const line = JSON.parse(refused.text().trim()) as { id: unknown; error: { code: number; message: string } };
    expect(line.id).toBeNull();
    expect(line.error.code).toBe(ErrorCode.OVERLOADED);
    expect(line.error.message).toContain('maxClientConnections');
    const http = await rawConn(a.id);
    http.s.write('GET /state HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor(http.closed, 5000, 'the refused HTTP client to be closed');
    expect(http.text()).toMatch(/^HTTP\/1\.1 503 /);
    // Peers are not clients: b joins through a's full port, and a reaches b's.
    const res = await cl.request<{ members: string[] }>('AddServer', { addr: b.id });
    expect(res.members.sort()).toEqual([a.id, b.id].sort());
    await cl.apply({ Put: ['k', 1] });
    await waitFor(async () => (await b.localQuery({ Get: 'k' })) === 1, 5000, 'b to apply');
    // maxBatchRequests reaches the frontend: a batch of 3 is refused request by request.
    const results = await cl.batch([{ method: 'GetServerState' }, { method: 'GetServerState' }, { method: 'Nope' }]);
    for (const r of results) {
      expect(r.ok).toBe(false);
      const e = (r as { error: RpcError }).error;
      expect(e.code).toBe(ErrorCode.INVALID_REQUEST);
      expect(e.message).toContain('maxBatchRequests (2)');
    }
  });
});
