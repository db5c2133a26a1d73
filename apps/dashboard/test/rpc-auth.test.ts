// The live view's node connection with a token (issue 15): `Authenticate` is the first message on every
// (re)connection, `secure` selects wss://, and a refused token shows as the connection's error.
import { afterEach, expect, it } from 'vitest';
import { NodeConnection } from '../src/live/rpc.js';

class FakeWebSocket {
  static readonly OPEN = 1;
  static last: FakeWebSocket | null = null;
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: (() => void) | null = null;
  onclose: ((ev: { reason: string }) => void) | null = null;
  constructor(readonly url: string) {
    FakeWebSocket.last = this;
  }
  send(text: string): void {
    this.sent.push(text);
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
}

const original = (globalThis as { WebSocket?: unknown }).WebSocket;
afterEach(() => {
  (globalThis as { WebSocket?: unknown }).WebSocket = original;
});

it('authenticates first, over wss when secure, and reports a refused token', async () => {
  (globalThis as { WebSocket?: unknown }).WebSocket = FakeWebSocket;
  const conn = new NodeConnection('127.0.0.1:7001', () => {}, { token: 't0k', secure: true });
  const ws = FakeWebSocket.last as FakeWebSocket;
  expect(ws.url).toBe('wss://127.0.0.1:7001/');
  ws.open();
  void conn.request('GetServerState').catch(() => undefined);
  expect(JSON.parse(ws.sent[0])).toMatchObject({ method: 'Authenticate', params: { token: 't0k' } });
  expect(JSON.parse(ws.sent[1])).toMatchObject({ method: 'GetServerState' });
  const authId = JSON.parse(ws.sent[0]).id;
  ws.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', id: authId, error: { code: -32014, message: 'nope' } }) });
  expect(conn.lastError).toMatch(/token refused: nope/);
  conn.close();

  const plain = new NodeConnection('127.0.0.1:7002');
  const ws2 = FakeWebSocket.last as FakeWebSocket;
  expect(ws2.url).toBe('ws://127.0.0.1:7002/');
  ws2.open();
  expect(ws2.sent).toEqual([]);
  plain.close();
});
