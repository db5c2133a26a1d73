/**
 * HTTP on the client port: a connection whose first bytes are an HTTP method (`GET `, `POST`, ...) is handed to a
 * node `http.Server` that never listens (the socket is passed in with `emit('connection')` after the sniffed bytes
 * are pushed back), so requests are parsed by node's HTTP parser, not by hand. Served: `POST /` and `POST /rpc`
 * (JSON-RPC 2.0, in `http-jsonrpc.ts`), `GET /state` (the server state as JSON), and WebSocket upgrades (handed to
 * `websocket.ts`); other paths get 404, other methods 405, malformed HTTP 400 and headers above 16 KiB 431 (both
 * from node, then close). An `Authorization: Bearer <token>` header authenticates the request (or the WebSocket):
 * an unknown token gets 401, `GET /state` without the `read` role 401/403. Separate because it is the only HTTP in
 * the server.
 *
 * @packageDocumentation
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCode, RpcError } from '@raft/runtime';
import { refuseConnection, watchIdle } from './client-connection.js';
import { type HttpRpcConn, sendText, serveJsonRpcPost } from './http-jsonrpc.js';
import { errorJson } from './jsonrpc.js';
import type { ClientContext } from './rpc.js';
import { serveWebSocket } from './websocket.js';

/** Largest request head (request line and headers); a larger one gets `431` and the connection is closed. */
export const MAX_HTTP_HEADER_BYTES = 16 * 1024;

/** The first four bytes of the HTTP methods the port recognises as HTTP (JSON text never starts with these). */
const HTTP_METHOD_HEADS = new Set(['GET ', 'HEAD', 'POST', 'PUT ', 'DELE', 'OPTI', 'PATC']);

/** Whether a connection's first four bytes (latin1) start an HTTP request. */
export function isHttpHead(first4: string): boolean {
  return HTTP_METHOD_HEADS.has(first4);
}

/** Per connection: its JSON-RPC state and whether a WebSocket on it is dispatching a batch. */
interface HttpConn extends HttpRpcConn {
  readonly ws: { busy: boolean };
}

/** Serves the HTTP connections of one frontend with one never-listening `http.Server`. */
export class HttpFront {
  private readonly server: Server;
  private readonly conns = new WeakMap<Socket, HttpConn>();

  constructor(private readonly c: ClientContext) {
    this.server = createServer({ maxHeaderSize: MAX_HTTP_HEADER_BYTES });
    // Node's own timers stay off: the idle rule of every client connection (`watchIdle`) applies instead. A
    // keep-alive timeout would reset the socket's timer after each response, and without a 'timeout' listener node
    // destroys a socket on any timeout, even one with requests in progress that `watchIdle` spares.
    this.server.timeout = 0;
    this.server.keepAliveTimeout = 0;
    this.server.on('timeout', () => undefined);
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.request(req, res, false));
    // `Expect: 100-continue` (curl sends it for bodies above 1 KiB): refuse a too-large body before it is sent.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.request(req, res, true));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const st = this.conns.get(socket);
      if (st === undefined) {
        socket.destroy();
        return;
      }
      if (!this.authenticate(req, st, (status, e) => rawHttpError(socket, status, e))) return;
      // ws answers anything but a valid WebSocket handshake with a 400 and closes.
      c.wss.handleUpgrade(req, socket, head, (w) => serveWebSocket(w, socket, st.conn, st.ws, c));
    });
  }

  /** Serve HTTP on a socket whose first bytes (`head`, already read from it) are an HTTP method. */
  accept(socket: Socket, head: Buffer): void {
    const c = this.c;
    if (c.sockets.size >= c.o.maxClientConnections) {
      refuseConnection(socket, true, c.o);
      return;
    }
    c.d.counters.clientConnections++;
    c.sockets.add(socket);
    socket.on('close', () => {
      c.sockets.delete(socket);
      c.d.counters.clientConnections--;
    });
    socket.on('error', () => undefined);
    const st: HttpConn = {
      socket,
      conn: { inflight: 0, alive: () => !st.closing && !socket.destroyed },
      dispatching: false,
      held: [],
      queuedChars: 0,
      closing: false,
      nextSeq: 0,
      closeSeq: Number.POSITIVE_INFINITY,
      ws: { busy: false },
    };
    this.conns.set(socket, st);
    watchIdle(socket, st.conn, () => st.ws.busy || st.dispatching || st.held.length > 0, c.o);
    // The sniffed bytes go back into the socket; node's parser reads them first (on the next tick, before any
    // further network read), then the rest.
    if (head.length > 0) socket.unshift(head);
    this.server.emit('connection', socket);
  }

  private request(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    const st = this.conns.get(req.socket as Socket);
    if (st === undefined) {
      res.destroy();
      return;
    }
    if (!this.authenticate(req, st, (status, e) => jsonError(res, status, e))) return;
    const path = (req.url ?? '').split('?')[0];
    if (path === '/' || path === '/rpc') {
      if (req.method === 'POST') {
        serveJsonRpcPost(req, res, expectsContinue, st, this.c);
        return;
      }
      sendText(res, 405, 'JSON-RPC over HTTP takes POST (or a WebSocket upgrade on GET).\n', { allow: 'POST' });
      return;
    }
    if (path === '/state') {
      if (req.method === 'GET' || req.method === 'HEAD') {
        const refused = this.c.d.authorize('state', st.conn.caller ?? null);
        if (refused !== null) {
          jsonError(res, refused.code === ErrorCode.FORBIDDEN ? 403 : 401, refused);
          return;
        }
        const body = this.c.d.stateJson();
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'access-control-allow-origin': '*',
        });
        res.end(body);
        return;
      }
      sendText(res, 405, 'GET /state only.\n', { allow: 'GET, HEAD' });
      return;
    }
    sendText(res, 404, 'Use POST / (JSON-RPC), a WebSocket, GET /state, or JSON-RPC lines.\n');
  }

  /**
   * A bearer token in the request binds the connection to its caller (for this request and, with keep-alive, until
   * another request carries another one); an unknown token is refused with 401. Returns false when refused.
   */
  private authenticate(req: IncomingMessage, st: HttpConn, refuse: (status: number, e: RpcError) => void): boolean {
    const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (auth === null) return true;
    const caller = this.c.d.authenticate(auth[1]);
    if (caller instanceof RpcError) {
      refuse(401, caller);
      return false;
    }
    st.conn.caller = caller;
    return true;
  }
}

/** Answer with a JSON-RPC error body (401 with a `WWW-Authenticate` challenge). */
function jsonError(res: ServerResponse, status: number, e: RpcError): void {
  const body = `${errorJson('null', e.code, e.message, e.data)}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'access-control-allow-origin': '*',
  };
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  res.writeHead(status, headers);
  res.end(body);
}

/** The same on a socket being upgraded (no response object yet), then close. */
function rawHttpError(socket: Socket, status: number, e: RpcError): void {
  const body = `${errorJson('null', e.code, e.message, e.data)}\n`;
  const reason = status === 401 ? 'Unauthorized' : 'Forbidden';
  const challenge = status === 401 ? 'www-authenticate: Bearer\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${challenge}connection: close\r\n\r\n${body}`,
  );
}
