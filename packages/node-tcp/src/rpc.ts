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
  /**
   * Largest answer (a batch's answers count together), and most unsent answer bytes a connection may have queued
   * before it is closed with an `OUTPUT_LIMIT_EXCEEDED` line.
   */
  readonly maxClientOutputBytes: number;
  /** Most requests in one batch; a larger batch gets an `INVALID_REQUEST` error per request and none is run. */
  readonly maxBatchRequests: number;
  /** Most client connections (JSON-RPC lines, HTTP, WebSocket) at once; more get an `OVERLOADED` line and close. */
  readonly maxClientConnections: number;
  /** A client connection with no request in progress and no traffic for this long is closed (0: never). */
  readonly clientIdleTimeoutMs: number;
  readonly logger: Logger;
}

const NL = 0x0a;
/** Answers of one connection are joined into writes of about this many characters (not one string per turn). */
const WRITE_SLICE_CHARS = 1024 * 1024;
/** A batch is dispatched this many requests at a time, so a huge batch cannot starve the node's own timers. */
export const BATCH_SLICE_REQUESTS = 64;
/** ... and a slice also ends once it has taken this long (GetServerState is much dearer than an Apply). */
const BATCH_SLICE_MS = 4;
/** TCP keepalive delay of client connections: a half-open one (peer host gone) is then found and closed. */
export const CLIENT_KEEPALIVE_MS = 60_000;
/** How long a closing connection may take to drain its last line before it is destroyed. */
const CLOSE_GRACE_MS = 5_000;
/** An answer shorter than this is never replaced by an `OUTPUT_LIMIT_EXCEEDED` error (it would not save anything). */
const SMALL_ANSWER_CHARS = 512;

function errorJson(idText: string, code: number, message: string, data?: unknown): string {
  const e = data === undefined ? { code, message } : { code, message, data };
  return `{"jsonrpc":"2.0","id":${idText},"error":${JSON.stringify(e)}}`;
}

function outcomeJson(idText: string, o: ApplyOutcome): string {
  try {
    if (o.ok) return `{"jsonrpc":"2.0","id":${idText},"result":${o.json ?? toJsonText(o.output)}}`;
    return `{"jsonrpc":"2.0","id":${idText},"error":${JSON.stringify(o.error.toJSON())}}`;
  } catch (e) {
    // An output too large for one JavaScript string (RangeError) must cost this answer, not the process.
    return errorJson(
      idText,
      ErrorCode.OUTPUT_LIMIT_EXCEEDED,
      `the answer could not be encoded (${(e as Error).message}); the request was run but its answer is dropped`,
      { notApplied: false },
    );
  }
}

/** End a connection after `lastLine`, destroying it if the client does not take the line within a grace time. */
function closeWith(socket: Socket, lastLine: string | null): void {
  if (socket.destroyed) return;
  if (lastLine === null) socket.end();
  else socket.end(`${lastLine}\n`);
  const t = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}

/** What the request handling needs to know about the connection a text came on. */
interface ConnState {
  /** Requests dispatched on it and not answered yet (an idle timeout spares a connection that waits for them). */
  inflight: number;
  /** False once the connection is gone or closing: the rest of a sliced batch is then not dispatched. */
  alive(): boolean;
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
   * nothing to answer (notifications only). `dispatched` is called once every request in the text was handed to
   * the dispatcher: at once, except for a batch larger than one slice, whose rest is dispatched in later turns.
   */
  handleText(
    text: string,
    reply: (response: string) => void,
    conn: ConnState = { inflight: 0, alive: () => true },
    dispatched: () => void = () => undefined,
  ): void {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.PARSE_ERROR, `parse error: ${(e as Error).message}`));
      dispatched();
      return;
    }
    if (!Array.isArray(v)) {
      this.handleRequest(v, conn, (_idText, r) => {
        if (r !== null) reply(r);
      });
      dispatched();
      return;
    }
    if (v.length === 0) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: an empty batch'));
      dispatched();
      return;
    }
    if (v.length > this.o.maxBatchRequests) {
      this.refuseBatch(v, reply);
      dispatched();
      return;
    }
    const batch = v;
    const budget = this.o.maxClientOutputBytes;
    let parts: string[] = [];
    let partsChars = 2;
    let left = batch.length;
    const one = (idText: string, r: string | null) => {
      if (r !== null) {
        if (partsChars + r.length + 1 > budget && r.length > SMALL_ANSWER_CHARS) {
          // The answers together would exceed the limit: this one is replaced by a short error (the others that
          // fit are kept), so the batch still gets an answer for every request and no answer grows unbounded.
          r = errorJson(
            idText,
            ErrorCode.OUTPUT_LIMIT_EXCEEDED,
            `the batch's answers together exceed maxClientOutputBytes (${budget}): this request was run (a command was applied) but its answer is dropped; send smaller batches`,
            { notApplied: false, maxClientOutputBytes: budget },
          );
        }
        parts.push(r);
        partsChars += r.length + 1;
      }
      if (--left === 0 && parts.length > 0) {
        const all = parts;
        parts = [];
        reply(`[${all.join(',')}]`);
      }
    };
    let i = 0;
    const slice = () => {
      if (!conn.alive()) {
        dispatched();
        return;
      }
      const t0 = performance.now();
      const end = Math.min(batch.length, i + BATCH_SLICE_REQUESTS);
      while (i < end) {
        this.handleRequest(batch[i++], conn, one);
        if (performance.now() - t0 > BATCH_SLICE_MS) break;
      }
      if (i < batch.length) setImmediate(slice);
      else dispatched();
    };
    slice();
  }

  /** A batch above `maxBatchRequests`: none of it is run; every request with an id gets the error. */
  private refuseBatch(batch: unknown[], reply: (response: string) => void): void {
    const max = this.o.maxBatchRequests;
    const err = JSON.stringify({
      code: ErrorCode.INVALID_REQUEST,
      message: `invalid request: a batch of ${batch.length} requests exceeds maxBatchRequests (${max}); none was run, send smaller batches`,
      data: { notApplied: true, maxBatchRequests: max },
    });
    const parts: string[] = [];
    for (const req of batch) {
      this.d.counters.rpcRequests++;
      this.d.counters.rpcErrors++;
      const id = req !== null && typeof req === 'object' ? (req as { id?: unknown }).id : undefined;
      if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) {
        parts.push(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"error":${err}}`);
      }
    }
    reply(parts.length > 0 ? `[${parts.join(',')}]` : `{"jsonrpc":"2.0","id":null,"error":${err}}`);
  }

  private handleRequest(req: unknown, conn: ConnState, reply: (idText: string, r: string | null) => void): void {
    this.d.counters.rpcRequests++;
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      this.d.counters.rpcErrors++;
      reply('null', errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: expected a JSON-RPC 2.0 object'));
      return;
    }
    const r = req as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
    const hasId = 'id' in r;
    const id = r.id;
    const idOk = id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
    const idText = hasId && idOk ? JSON.stringify(id) : 'null';
    if (hasId && !idOk) {
      this.d.counters.rpcErrors++;
      reply(
        'null',
        errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: id must be a string, a number or null'),
      );
      return;
    }
    if (r.jsonrpc !== '2.0') {
      this.d.counters.rpcErrors++;
      reply(idText, errorJson(idText, ErrorCode.INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"'));
      return;
    }
    if (typeof r.method !== 'string') {
      this.d.counters.rpcErrors++;
      reply(idText, errorJson(idText, ErrorCode.INVALID_REQUEST, 'invalid request: "method" must be a string'));
      return;
    }
    if (r.params !== undefined && (r.params === null || typeof r.params !== 'object')) {
      this.d.counters.rpcErrors++;
      reply(
        idText,
        errorJson(idText, ErrorCode.INVALID_PARAMS, 'invalid params: "params" must be an object or an array'),
      );
      return;
    }
    let answered = false;
    conn.inflight++;
    this.d.dispatch(r.method, r.params, (o) => {
      if (answered) return;
      answered = true;
      conn.inflight--;
      if (!o.ok) this.d.counters.rpcErrors++;
      if (!hasId) {
        reply(idText, null);
        return;
      }
      let text = outcomeJson(idText, o);
      if (text.length > this.o.maxClientOutputBytes) {
        text = errorJson(
          idText,
          ErrorCode.OUTPUT_LIMIT_EXCEEDED,
          `the answer (${text.length} bytes) exceeds maxClientOutputBytes (${this.o.maxClientOutputBytes}): the request was run (a command was applied) but its answer is dropped; ask for less at a time`,
          { notApplied: false, maxClientOutputBytes: this.o.maxClientOutputBytes },
        );
      }
      reply(idText, text);
    });
  }

  /** Refuse a connection because `maxClientConnections` is reached: an `OVERLOADED` line (HTTP: a 503), then close. */
  refuse(socket: Socket, http: boolean): void {
    const line = errorJson(
      'null',
      ErrorCode.OVERLOADED,
      `too many client connections: this server accepts at most ${this.o.maxClientConnections} (maxClientConnections); retry later or use another server`,
      { notApplied: true, maxClientConnections: this.o.maxClientConnections },
    );
    this.o.logger.warn('client connection refused: maxClientConnections reached', {
      max: this.o.maxClientConnections,
    });
    socket.on('error', () => undefined);
    if (http) {
      const body = `${line}\n`;
      closeWith(
        socket,
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${line}`,
      );
    } else closeWith(socket, line);
  }

  /** Keepalive finds half-open connections; the idle timer closes those that send nothing and wait for nothing. */
  private watchIdle(socket: Socket, conn: ConnState, busy: () => boolean): void {
    socket.setKeepAlive(true, CLIENT_KEEPALIVE_MS);
    const idle = this.o.clientIdleTimeoutMs;
    if (idle <= 0) return;
    socket.setTimeout(idle);
    socket.on('timeout', () => {
      // Node's socket timeout is re-armed by any read or write, so this fired after `idle` ms without traffic.
      // A connection waiting for its requests' answers is not idle; one whose unsent answers made no progress is.
      if (conn.inflight > 0 || busy()) return;
      this.o.logger.debug?.('closing an idle client connection', { idleMs: idle });
      if (socket.writableLength > 0) socket.destroy();
      else closeWith(socket, null);
    });
  }

  /** Serve JSON-RPC lines on a socket; `head` holds bytes already read from it. */
  acceptLines(socket: Socket, head: Buffer): void {
    if (this.sockets.size >= this.o.maxClientConnections) {
      this.refuse(socket, false);
      return;
    }
    this.d.counters.clientConnections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const max = this.o.maxLineBytes;
    const limit = this.o.maxClientOutputBytes;
    let partial: Buffer[] = [];
    let partialLen = 0;
    let skipping = false;
    let out: string[] = [];
    let outChars = 0;
    let flushScheduled = false;
    /** Reading is paused because the client does not read its answers. */
    let outputPaused = false;
    /** A batch is being dispatched in slices; lines after it wait in `held` so requests keep their order. */
    let busy = false;
    let held: string[] = [];
    let closing = false;
    const conn: ConnState = { inflight: 0, alive: () => !closing && !socket.destroyed };
    const updateFlow = () => {
      if (socket.destroyed) return;
      if (outputPaused || busy || closing) socket.pause();
      else socket.resume();
    };
    const write = () => {
      if (out.length === 0) return;
      const text = `${out.join('\n')}\n`;
      out = [];
      outChars = 0;
      socket.write(text);
    };
    const flush = () => {
      flushScheduled = false;
      if (socket.destroyed) {
        out = [];
        outChars = 0;
        return;
      }
      try {
        write();
      } catch (e) {
        // Nothing a client sends may take the process down: drop this connection instead.
        out = [];
        outChars = 0;
        this.o.logger.error('writing answers failed; closing the client connection', { error: (e as Error).message });
        closing = true;
        socket.destroy();
        return;
      }
      if (!outputPaused && socket.writableLength > this.o.maxOutputBytes) {
        // The client does not read its answers: stop reading its requests until it does.
        outputPaused = true;
        updateFlow();
        socket.once('drain', () => {
          outputPaused = false;
          updateFlow();
        });
      }
    };
    const overflow = () => {
      closing = true;
      held = [];
      updateFlow();
      this.o.logger.warn('closing a client connection: its unsent answers exceed maxClientOutputBytes', { limit });
      try {
        write(); // What was queued fits the limit: it goes before the error line.
      } catch {
        out = [];
        outChars = 0;
      }
      closeWith(
        socket,
        errorJson(
          'null',
          ErrorCode.OUTPUT_LIMIT_EXCEEDED,
          `connection closed: its unsent answers exceed maxClientOutputBytes (${limit}); read answers as they come, or pipeline fewer or smaller requests. Requests still in progress may be applied.`,
          { notApplied: false, maxClientOutputBytes: limit },
        ),
      );
    };
    const reply = (text: string) => {
      if (closing || socket.destroyed) return;
      const queued = socket.writableLength + outChars;
      // The first answer on an idle connection always goes (single answers are bounded already).
      if (queued > 0 && queued + text.length + 1 > limit) {
        overflow();
        return;
      }
      out.push(text);
      outChars += text.length + 1;
      if (outChars >= WRITE_SLICE_CHARS) flush();
      else if (!flushScheduled) {
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
    const run = (text: string) => {
      busy = true;
      let sync = true;
      this.handleText(text, reply, conn, () => {
        busy = false;
        if (!sync) pump();
      });
      sync = false;
    };
    const pump = () => {
      // `held` holds at most the lines of the chunk read before the socket paused, so shift() stays cheap.
      while (!busy && !closing && held.length > 0) run(held.shift() as string);
      updateFlow();
    };
    const line = (buf: Buffer) => {
      let end = buf.length;
      if (end > 0 && buf[end - 1] === 0x0d) end--;
      const text = buf.toString('utf8', 0, end);
      if (text.trim().length === 0) return;
      if (busy) {
        held.push(text);
        updateFlow();
      } else run(text);
    };
    const onData = (chunk: Buffer) => {
      if (closing) return;
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
      closing = true;
      held = [];
      this.sockets.delete(socket);
      this.d.counters.clientConnections--;
    });
    this.watchIdle(socket, conn, () => busy || outChars > 0);
    if (head.length > 0) onData(head);
  }

  /** Serve an HTTP request (WebSocket upgrade or `GET /state`) on a socket that started with `GET `. */
  acceptHttp(socket: Socket, head: Buffer): void {
    if (this.sockets.size >= this.o.maxClientConnections) {
      this.refuse(socket, true);
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const conn: ConnState = { inflight: 0, alive: () => !socket.destroyed };
    const ws = { busy: false };
    this.watchIdle(socket, conn, () => ws.busy);
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
        this.wss.handleUpgrade(req, socket, rest, (w) => this.acceptWebSocket(w, socket, conn, ws));
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

  private acceptWebSocket(ws: WebSocket, socket: Socket, conn: ConnState, state: { busy: boolean }): void {
    this.d.counters.clientConnections++;
    // ws switches the socket's timeout off when it takes the socket over; the idle rule applies to WebSockets too.
    if (this.o.clientIdleTimeoutMs > 0) socket.setTimeout(this.o.clientIdleTimeoutMs);
    const limit = this.o.maxClientOutputBytes;
    let closing = false;
    conn.alive = () => !closing && ws.readyState === ws.OPEN;
    let held: string[] = [];
    ws.on('error', (e) => this.o.logger.debug?.('websocket error', { error: e.message }));
    ws.on('close', () => {
      closing = true;
      held = [];
      this.d.counters.clientConnections--;
    });
    const reply = (r: string) => {
      if (closing || ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > 0 && ws.bufferedAmount + r.length > limit) {
        closing = true;
        held = [];
        this.o.logger.warn('closing a WebSocket: its unsent answers exceed maxClientOutputBytes', { limit });
        ws.send(
          errorJson(
            'null',
            ErrorCode.OUTPUT_LIMIT_EXCEEDED,
            `connection closed: its unsent answers exceed maxClientOutputBytes (${limit}); read answers as they come, or pipeline fewer or smaller requests. Requests still in progress may be applied.`,
            { notApplied: false, maxClientOutputBytes: limit },
          ),
        );
        ws.close(1008, 'output limit exceeded');
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
        return;
      }
      ws.send(r);
    };
    const run = (text: string) => {
      state.busy = true;
      let sync = true;
      this.handleText(text, reply, conn, () => {
        state.busy = false;
        if (!sync) pump();
      });
      sync = false;
    };
    const pump = () => {
      while (!state.busy && !closing && held.length > 0) run(held.shift() as string);
      if (!state.busy && !closing) ws.resume();
    };
    ws.on('message', (data, isBinary) => {
      void isBinary;
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data).toString('utf8');
      if (state.busy) {
        // A batch is being dispatched in slices: later messages wait so requests keep their order.
        held.push(text);
        ws.pause();
      } else run(text);
    });
  }

  /**
   * Write every answer queued so far now. The server calls this at the end of each driver turn, so answers produced
   * by that turn leave at once instead of one event-loop iteration later (a turn's answers to a connection share
   * few writes). It never throws: a connection whose write fails is closed, the others are still served.
   */
  flushPending(): void {
    if (this.pendingFlushes.length === 0) return;
    const fs = this.pendingFlushes;
    this.pendingFlushes = [];
    for (const f of fs) {
      try {
        f();
      } catch (e) {
        this.o.logger.error('flushing client answers failed', { error: (e as Error).message });
      }
    }
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
