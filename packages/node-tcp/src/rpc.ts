/**
 * The client side of the single port: JSON-RPC 2.0 over TCP lines, over HTTP POST, over WebSocket, and
 * `GET /state`. Everything here only parses, dispatches and writes; the server decides what a method does.
 *
 * This file holds the frontend object the server talks to (its options, the open client connections, flushing
 * answers at the end of a turn, closing). The parts: `jsonrpc.ts` (the protocol and batches), `client-lines.ts`
 * (TCP lines and their output bounds), `http.ts` (HTTP routing on node's parser), `http-jsonrpc.ts` (JSON-RPC POSTs),
 * `websocket.ts`, `client-connection.ts` (connection limit,
 * idle timeout, keepalive).
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import type { ApplyOutcome, Logger, RpcError, RuntimeRequest } from '@raft/runtime';
import { WebSocketServer } from 'ws';
import type { Caller } from './auth.js';
import { refuseConnection } from './client-connection.js';
import { serveLines } from './client-lines.js';
import { HttpFront } from './http.js';
import { type ConnState, JsonRpcHandler } from './jsonrpc.js';

/** What the connection handlers need from the server. */
export interface RpcDispatcher {
  /** Run one method for `caller` (null: an anonymous client); `done` is called exactly once. */
  dispatch(method: string, params: unknown, done: (o: ApplyOutcome) => void, caller: Caller | null): void;
  /**
   * The caller a client token stands for, or the `UNAUTHENTICATED` error. Without credentials configured every
   * token (and none) stands for an admin.
   */
  authenticate(token: unknown): Caller | RpcError;
  /** Null when `caller` may make a request of this type, else the error to answer with. */
  authorize(type: RuntimeRequest['type'], caller: Caller | null): RpcError | null;
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

/** What the per-connection handlers (`client-lines.ts`, `http.ts`, `websocket.ts`) share. */
export interface ClientContext {
  readonly d: RpcDispatcher;
  readonly o: RpcFrontendOptions;
  /** The JSON-RPC handler every transport feeds its texts to. */
  readonly rpc: JsonRpcHandler;
  /** Open client connections (for the limit and for closing them all). */
  readonly sockets: Set<Socket>;
  /** The WebSocket server that takes over upgraded connections. */
  readonly wss: WebSocketServer;
  /** Run `f` (a connection's flush) at the end of this turn. */
  scheduleFlush(f: () => void): void;
}

/** The client side of the port: serves client connections (TCP lines, HTTP, WebSocket) and flushes their answers. */
export class RpcFrontend {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<Socket>();
  private readonly rpc: JsonRpcHandler;
  private readonly ctx: ClientContext;
  private readonly http: HttpFront;
  /** Connections with answers queued this turn (their flush functions). */
  private pendingFlushes: (() => void)[] = [];
  private flushScheduled = false;

  constructor(
    d: RpcDispatcher,
    private readonly o: RpcFrontendOptions,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: o.maxLineBytes });
    this.rpc = new JsonRpcHandler(d, o);
    this.ctx = {
      d,
      o,
      rpc: this.rpc,
      sockets: this.sockets,
      wss: this.wss,
      scheduleFlush: (f) => this.scheduleFlush(f),
    };
    this.http = new HttpFront(this.ctx);
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
    this.rpc.handleText(text, reply, conn, dispatched);
  }

  /** Refuse a connection because `maxClientConnections` is reached: an `OVERLOADED` line (HTTP: a 503), then close. */
  refuse(socket: Socket, http: boolean): void {
    refuseConnection(socket, http, this.o);
  }

  /** Serve JSON-RPC lines on a socket; `head` holds bytes already read from it. */
  acceptLines(socket: Socket, head: Buffer): void {
    serveLines(socket, head, this.ctx);
  }

  /** Serve HTTP (JSON-RPC POSTs, `GET /state`, WebSocket upgrades) on a socket that started with an HTTP method. */
  acceptHttp(socket: Socket, head: Buffer): void {
    this.http.accept(socket, head);
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
