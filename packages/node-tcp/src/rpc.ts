/**
 * The client side of the single port: JSON-RPC 2.0 over TCP lines, over WebSocket, and a tiny HTTP responder
 * (`GET /state`). Everything here only parses, dispatches and writes; the server decides what a method does.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { type ApplyOutcome, ErrorCode, type Logger, RpcError, toJsonText } from '@raft/runtime';
import { type WebSocket, WebSocketServer } from 'ws';

/** What the connection handlers need from the server. */
export interface RpcDispatcher {
  /** Run one method; `done` is called exactly once. */
  dispatch(method: string, params: unknown, done: (o: ApplyOutcome) => void): void;
  /** The server state as JSON text (for `GET /state`). */
  stateJson(): string;
  /** Counters the handlers update. */
  readonly counters: { rpcRequests: number; rpcErrors: number; clientConnections: number };
}

/** Options of {@link RpcFrontend}. */
export interface RpcFrontendOptions {
  readonly maxLineBytes: number;
  /** Unsent response bytes on a connection above which it stops reading requests until the client catches up. */
  readonly maxOutputBytes: number;
  readonly logger: Logger;
}

const NL = 0x0a;

function errorJson(idText: string, code: number, message: string, data?: unknown): string {
  const e = data === undefined ? { code, message } : { code, message, data };
  return `{"jsonrpc":"2.0","id":${idText},"error":${JSON.stringify(e)}}`;
}

function outcomeJson(idText: string, o: ApplyOutcome): string {
  if (o.ok) return `{"jsonrpc":"2.0","id":${idText},"result":${o.json ?? toJsonText(o.output)}}`;
  return `{"jsonrpc":"2.0","id":${idText},"error":${JSON.stringify(o.error.toJSON())}}`;
}

/** Parses and answers JSON-RPC text (a request or a batch); used by both the TCP and the WebSocket handlers. */
export class RpcFrontend {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<Socket>();
  /** Connections with answers queued this turn (their flush functions). */
  private pendingFlushes: (() => void)[] = [];
  private flushScheduled = false;

  constructor(
    private readonly d: RpcDispatcher,
    private readonly o: RpcFrontendOptions,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: o.maxLineBytes });
  }

  /**
   * Answer one JSON-RPC text. `reply` gets the response text (no newline), or is not called at all when there is
   * nothing to answer (notifications only).
   */
  handleText(text: string, reply: (response: string) => void): void {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.PARSE_ERROR, `parse error: ${(e as Error).message}`));
      return;
    }
    if (Array.isArray(v)) {
      if (v.length === 0) {
        this.d.counters.rpcErrors++;
        reply(errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: an empty batch'));
        return;
      }
      const parts: string[] = [];
      let left = v.length;
      const one = (r: string | null) => {
        if (r !== null) parts.push(r);
        if (--left === 0 && parts.length > 0) reply(`[${parts.join(',')}]`);
      };
      for (const req of v) this.handleRequest(req, one);
      return;
    }
    this.handleRequest(v, (r) => {
      if (r !== null) reply(r);
    });
  }

  private handleRequest(req: unknown, reply: (r: string | null) => void): void {
    this.d.counters.rpcRequests++;
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: expected a JSON-RPC 2.0 object'));
      return;
    }
    const r = req as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
    const hasId = 'id' in r;
    const id = r.id;
    const idOk = id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
    const idText = hasId && idOk ? JSON.stringify(id) : 'null';
    if (hasId && !idOk) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: id must be a string, a number or null'));
      return;
    }
    if (r.jsonrpc !== '2.0') {
      this.d.counters.rpcErrors++;
      reply(errorJson(idText, ErrorCode.INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"'));
      return;
    }
    if (typeof r.method !== 'string') {
      this.d.counters.rpcErrors++;
      reply(errorJson(idText, ErrorCode.INVALID_REQUEST, 'invalid request: "method" must be a string'));
      return;
    }
    if (r.params !== undefined && (r.params === null || typeof r.params !== 'object')) {
      this.d.counters.rpcErrors++;
      reply(errorJson(idText, ErrorCode.INVALID_PARAMS, 'invalid params: "params" must be an object or an array'));
      return;
    }
    let answered = false;
    this.d.dispatch(r.method, r.params, (o) => {
      if (answered) return;
      answered = true;
      if (!o.ok) this.d.counters.rpcErrors++;
      reply(hasId ? outcomeJson(idText, o) : null);
    });
  }

  /** Serve JSON-RPC lines on a socket; `head` holds bytes already read from it. */
  acceptLines(socket: Socket, head: Buffer): void {
    this.d.counters.clientConnections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const max = this.o.maxLineBytes;
    let partial: Buffer[] = [];
    let partialLen = 0;
    let skipping = false;
    let out: string[] = [];
    let flushScheduled = false;
    let paused = false;
    const flush = () => {
      flushScheduled = false;
      if (socket.destroyed || out.length === 0) {
        out = [];
        return;
      }
      const text = out.join('');
      out = [];
      socket.write(text);
      if (!paused && socket.writableLength > this.o.maxOutputBytes) {
        // The client does not read its answers: stop reading its requests until it does.
        paused = true;
        socket.pause();
        socket.once('drain', () => {
          paused = false;
          socket.resume();
        });
      }
    };
    const reply = (text: string) => {
      if (socket.destroyed) return;
      out.push(text, '\n');
      if (!flushScheduled) {
        flushScheduled = true;
        this.scheduleFlush(flush);
      }
    };
    const tooLong = () => {
      this.d.counters.rpcRequests++;
      this.d.counters.rpcErrors++;
      reply(
        errorJson(
          'null',
          ErrorCode.INVALID_REQUEST,
          `invalid request: the line exceeds maxLineBytes (${max}); it was skipped`,
        ),
      );
    };
    const line = (buf: Buffer) => {
      let end = buf.length;
      if (end > 0 && buf[end - 1] === 0x0d) end--;
      const text = buf.toString('utf8', 0, end);
      if (text.trim().length === 0) return;
      this.handleText(text, reply);
    };
    const onData = (chunk: Buffer) => {
      let start = 0;
      while (start < chunk.length) {
        const nl = chunk.indexOf(NL, start);
        if (nl < 0) {
          if (!skipping) {
            const rest = chunk.subarray(start);
            partialLen += rest.length;
            if (partialLen > max) {
              partial = [];
              partialLen = 0;
              skipping = true;
              tooLong();
            } else partial.push(rest);
          }
          return;
        }
        const piece = chunk.subarray(start, nl);
        start = nl + 1;
        if (skipping) {
          skipping = false;
          continue;
        }
        if (partial.length > 0) {
          const total = partialLen + piece.length;
          const whole = Buffer.concat([...partial, piece], total);
          partial = [];
          partialLen = 0;
          if (total > max) tooLong();
          else line(whole);
        } else if (piece.length > max) tooLong();
        else line(piece);
      }
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.d.counters.clientConnections--;
    });
    if (head.length > 0) onData(head);
  }

  /** Serve an HTTP request (WebSocket upgrade or `GET /state`) on a socket that started with `GET `. */
  acceptHttp(socket: Socket, head: Buffer): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
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
      if ((headers.upgrade ?? '').toLowerCase() === 'websocket') {
        // ws only reads method, url and headers from the request (no verifyClient is configured).
        const req = { method, url, headers, socket } as unknown as import('node:http').IncomingMessage;
        this.wss.handleUpgrade(req, socket, rest, (ws) => this.acceptWebSocket(ws));
        return;
      }
      const path = (url ?? '').split('?')[0];
      const send = (status: string, type: string, body: string) => {
        const b = Buffer.from(body);
        socket.end(
          `HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\ncontent-length: ${b.length}\r\nconnection: close\r\naccess-control-allow-origin: *\r\n\r\n${body}`,
        );
      };
      if (method === 'GET' && path === '/state') send('200 OK', 'application/json', this.d.stateJson());
      else send('404 Not Found', 'text/plain', 'Use JSON-RPC lines, a WebSocket, or GET /state.\n');
    };
    socket.on('data', onData);
    tryParse();
  }

  private acceptWebSocket(ws: WebSocket): void {
    this.d.counters.clientConnections++;
    ws.on('error', (e) => this.o.logger.debug?.('websocket error', { error: e.message }));
    ws.on('close', () => {
      this.d.counters.clientConnections--;
    });
    ws.on('message', (data, isBinary) => {
      void isBinary;
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data).toString('utf8');
      this.handleText(text, (r) => {
        if (ws.readyState === ws.OPEN) ws.send(r);
      });
    });
  }

  /**
   * Write every answer queued so far now. The server calls this at the end of each driver turn, so answers produced
   * by that turn leave at once instead of one event-loop iteration later (a whole turn's answers still share one
   * write per connection).
   */
  flushPending(): void {
    if (this.pendingFlushes.length === 0) return;
    const fs = this.pendingFlushes;
    this.pendingFlushes = [];
    for (const f of fs) f();
  }

  private scheduleFlush(f: () => void): void {
    this.pendingFlushes.push(f);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Answers given outside a driver turn (errors, local queries) still leave at the end of this iteration.
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushPending();
      });
    }
  }

  /** Close every client connection. */
  close(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
  }
}

/** Build an {@link RpcError} for a params problem. */
export function invalidParams(message: string, data?: Record<string, unknown>): RpcError {
  return new RpcError(ErrorCode.INVALID_PARAMS, `invalid params: ${message}`, data);
}
