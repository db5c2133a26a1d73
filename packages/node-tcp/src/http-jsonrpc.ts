/**
 * JSON-RPC 2.0 over HTTP POST (`POST /` or `POST /rpc`), on connections `http.ts` accepted. The body is one request
 * or one batch, exactly what a TCP line carries, and it runs through the same `JsonRpcHandler` with the same batch
 * limit and answer bound. Statuses follow the usual JSON-RPC-over-HTTP convention (jayson's server and most
 * others): every JSON-RPC response, results and errors alike (a parse error included: its body is a JSON-RPC
 * error a client can read), is `200` with `application/json`; a body of notifications only gets `204`; `4xx` is kept
 * for HTTP-level faults: `411` (no length), `413` (body above `maxLineBytes`), `415` (not JSON). Separate from
 * `http.ts` (routing, upgrades) because this is the part with limits.
 *
 * @packageDocumentation
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCode } from '@raft/runtime';
import { CLOSE_GRACE_MS } from './client-connection.js';
import { type ConnState, errorJson } from './jsonrpc.js';
import type { ClientContext } from './rpc.js';

/**
 * Media types a JSON-RPC POST may declare (parameters such as `charset` are ignored). A missing or other type gets
 * `415`: besides being what the body is, a non-"simple" type makes a browser ask (CORS preflight, which this server
 * does not grant) before it sends a cross-site POST, so no web page can make a visitor's browser run commands here.
 */
const JSON_MEDIA_TYPES = new Set(['application/json', 'application/json-rpc', 'application/jsonrequest']);

/** The JSON-RPC state of one HTTP connection (kept by `http.ts`). */
export interface HttpRpcConn {
  readonly socket: Socket;
  /** In-flight requests and liveness, as the JSON-RPC handler sees them. */
  readonly conn: ConnState;
  /** A batch is being dispatched in slices: later requests on the connection wait in `held`, so order is kept. */
  dispatching: boolean;
  /** Requests (their bodies, read) waiting for an earlier batch's dispatch. */
  held: (() => void)[];
  /** Characters of answers handed to responses that node has not written to the socket yet. */
  queuedChars: number;
  /** The connection is closing (its answers exceeded `maxClientOutputBytes`): nothing more is dispatched. */
  closing: boolean;
  /** Number of the next body run on this connection (they are answered in this order). */
  nextSeq: number;
  /** Once closing: the number of the body answered with the closing error; earlier ones are still answered. */
  closeSeq: number;
}

/** Serve one `POST /` (or `/rpc`): check the type and length, read the body within `maxLineBytes`, answer it. */
export function serveJsonRpcPost(
  req: IncomingMessage,
  res: ServerResponse,
  expectsContinue: boolean,
  st: HttpRpcConn,
  c: ClientContext,
): void {
  const max = c.o.maxLineBytes;
  const refuse = (status: number, text: string, close: boolean) => {
    c.d.counters.rpcRequests++;
    c.d.counters.rpcErrors++;
    sendText(res, status, text, {}, close);
    if (close) lingerThenDestroy(st.socket);
  };
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!JSON_MEDIA_TYPES.has(type)) {
    // Closed: a body may follow that nobody reads.
    refuse(415, 'JSON-RPC over HTTP needs "Content-Type: application/json".\n', true);
    return;
  }
  const declared = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (declared === undefined && !chunked) {
    // Without a length the body (if the client sent one anyway) would be read as the next request: closed.
    refuse(411, 'JSON-RPC over HTTP needs a Content-Length (or chunked transfer encoding).\n', true);
    return;
  }
  if (declared !== undefined && Number(declared) > max) {
    refuse(413, `The body (${declared} bytes) exceeds maxLineBytes (${max}).\n`, true);
    return;
  }
  if (expectsContinue) res.writeContinue();
  const parts: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    if (tooLarge) return;
    size += chunk.length;
    if (size > max) {
      // Chunked bodies announce no size: the limit is applied while reading.
      tooLarge = true;
      parts.length = 0;
      refuse(413, `The body exceeds maxLineBytes (${max}).\n`, true);
      return;
    }
    parts.push(chunk);
  });
  req.on('end', () => {
    if (tooLarge || res.writableEnded) return;
    const text = Buffer.concat(parts, size).toString('utf8');
    if (st.dispatching || st.held.length > 0) st.held.push(() => run(text, res, st, c));
    else run(text, res, st, c);
  });
}

/** Run one body through the JSON-RPC handler and answer it on `res`. */
function run(text: string, res: ServerResponse, st: HttpRpcConn, c: ClientContext): void {
  if (st.closing || st.socket.destroyed) return;
  const limit = c.o.maxClientOutputBytes;
  const seq = st.nextSeq++;
  st.dispatching = true;
  let sync = true;
  const reply = (answer: string) => {
    if (res.writableEnded || st.socket.destroyed) return;
    if (st.closing) {
      // HTTP answers go in request order: those before the closing error are still sent (each within the limit,
      // and bounded in time by the grace period), those after it never will be.
      if (seq < st.closeSeq) sendJson(res, 200, answer, false);
      return;
    }
    const queued = st.socket.writableLength + st.queuedChars;
    // As on TCP lines: the first answer on an idle connection always goes (single answers are bounded already);
    // one that would take the unsent answers above the limit is replaced and the connection closed, so a client
    // that pipelines requests and does not read cannot make the server hold its answers.
    if (queued > 0 && queued + answer.length > limit) {
      st.closing = true;
      st.closeSeq = seq;
      st.held = [];
      c.o.logger.warn('closing an HTTP client connection: its unsent answers exceed maxClientOutputBytes', { limit });
      sendJson(
        res,
        200,
        errorJson(
          'null',
          ErrorCode.OUTPUT_LIMIT_EXCEEDED,
          `connection closed: its unsent answers exceed maxClientOutputBytes (${limit}); read answers as they come, or pipeline fewer or smaller requests. This request was run but its answer is dropped; requests still in progress may be applied.`,
          { notApplied: false, maxClientOutputBytes: limit },
        ),
        true,
      );
      lingerThenDestroy(st.socket);
      return;
    }
    st.queuedChars += answer.length;
    res.once('close', () => {
      st.queuedChars -= answer.length;
    });
    sendJson(res, 200, answer, false);
  };
  const silent = () => {
    if (res.writableEnded || (st.closing && seq > st.closeSeq)) return;
    res.writeHead(204);
    res.end();
  };
  c.rpc.handleText(
    text,
    reply,
    st.conn,
    () => {
      st.dispatching = false;
      if (!sync) pump(st);
    },
    silent,
  );
  sync = false;
}

/** Dispatch the held requests of a connection in order until one of them is a batch still being dispatched. */
function pump(st: HttpRpcConn): void {
  while (!st.dispatching && !st.closing && st.held.length > 0) (st.held.shift() as () => void)();
}

/** Send a short plain-text answer (`close`: and close the connection after it). */
export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
  close = false,
): void {
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

function sendJson(res: ServerResponse, status: number, body: string, close: boolean): void {
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

/**
 * A response with `connection: close` makes node close the socket once that response is written; if it cannot be
 * written (an earlier answer on the connection is still pending, or the client does not read), the socket is
 * destroyed after a grace time anyway.
 */
function lingerThenDestroy(socket: Socket): void {
  const t = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}
