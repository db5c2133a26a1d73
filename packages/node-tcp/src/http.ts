/**
 * HTTP on the client port: a connection that starts with `GET ` is either a WebSocket upgrade (handed to
 * `websocket.ts`) or a plain request, of which only `GET /state` (the server state as JSON) is served. Headers are
 * bounded (16 KiB). An `Authorization: Bearer <token>` header authenticates the request (or the WebSocket). Separate because it is the only HTTP parsing in the server.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { ErrorCode, RpcError } from '@raft/runtime';
import { refuseConnection, watchIdle } from './client-connection.js';
import { type ConnState, errorJson } from './jsonrpc.js';
import type { ClientContext } from './rpc.js';
import { serveWebSocket } from './websocket.js';

/** Serve an HTTP request (WebSocket upgrade or `GET /state`) on a socket that started with `GET `. */
export function serveHttp(socket: Socket, head: Buffer, c: ClientContext): void {
  if (c.sockets.size >= c.o.maxClientConnections) {
    refuseConnection(socket, true, c.o);
    return;
  }
  c.sockets.add(socket);
  socket.on('close', () => c.sockets.delete(socket));
  socket.on('error', () => undefined);
  const conn: ConnState = { inflight: 0, alive: () => !socket.destroyed };
  const ws = { busy: false };
  watchIdle(socket, conn, () => ws.busy, c.o);
  let buf = head;
  const limit = 16 * 1024;
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    tryParse();
  };
  const tryParse = () => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > limit) {
        socket.removeListener('data', onData);
        socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      }
      return;
    }
    socket.removeListener('data', onData);
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const rest = buf.subarray(end + 4);
    const [method, url] = lines[0].split(' ');
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    // A bearer token binds the whole connection (a WebSocket's messages, or this request) to its caller.
    const auth = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
    if (auth !== null) {
      const caller = c.d.authenticate(auth[1]);
      if (caller instanceof RpcError) {
        httpError(socket, '401 Unauthorized', caller);
        return;
      }
      conn.caller = caller;
    }
    if ((headers.upgrade ?? '').toLowerCase() === 'websocket') {
      // ws only reads method, url and headers from the request (no verifyClient is configured).
      const req = { method, url, headers, socket } as unknown as import('node:http').IncomingMessage;
      c.wss.handleUpgrade(req, socket, rest, (w) => serveWebSocket(w, socket, conn, ws, c));
      return;
    }
    const path = (url ?? '').split('?')[0];
    const send = (status: string, type: string, body: string) => {
      const b = Buffer.from(body);
      socket.end(
        `HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\ncontent-length: ${b.length}\r\nconnection: close\r\naccess-control-allow-origin: *\r\n\r\n${body}`,
      );
    };
    if (method === 'GET' && path === '/state') {
      const refused = c.d.authorize('state', conn.caller ?? null);
      if (refused !== null) {
        httpError(socket, refused.code === ErrorCode.FORBIDDEN ? '403 Forbidden' : '401 Unauthorized', refused);
        return;
      }
      send('200 OK', 'application/json', c.d.stateJson());
    } else send('404 Not Found', 'text/plain', 'Use JSON-RPC lines, a WebSocket, or GET /state.\n');
  };
  socket.on('data', onData);
  tryParse();
}

/** Answer an HTTP request with a JSON-RPC error body (401 with a `WWW-Authenticate` challenge), then close. */
function httpError(socket: Socket, status: string, e: RpcError): void {
  const body = `${errorJson('null', e.code, e.message, e.data)}\n`;
  const challenge = status.startsWith('401') ? 'www-authenticate: Bearer\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${challenge}connection: close\r\naccess-control-allow-origin: *\r\n\r\n${body}`,
  );
}
