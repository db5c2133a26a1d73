/**
 * A JSON-RPC client for the server's TCP port: one connection, one line per request, many requests in flight
 * (pipelined), answers matched by id.
 *
 * @packageDocumentation
 */

import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ApplyKind } from '@raft/runtime';
import { splitAddress } from './address.js';
import { ConnectionError, ErrorCode, RpcError } from './errors.js';
import { type ClientTlsOptions, clientConnectOptions } from './tls.js';

/** Options of {@link RpcClient.connect}. */
export interface RpcClientOptions {
  /** Per-request timeout in ms (0 = none). Default 30 000. */
  timeoutMs?: number;
  /** Largest answer line accepted, in bytes. Default 64 MiB. */
  maxLineBytes?: number;
  /** How long connecting may take, in ms. Default 10 000. */
  connectTimeoutMs?: number;
  /**
   * Connect with TLS, verifying the server's certificate against `tls.ca` (it must name the address dialed, or its
   * host). Default: plain text.
   */
  tls?: ClientTlsOptions;
  /**
   * A client token: sent in an `Authenticate` call before anything else; `connect` rejects with its error
   * (`UNAUTHENTICATED`) if the server does not accept it.
   */
  token?: string;
}

/** One answer of {@link RpcClient.batch}. */
export type BatchResult = { ok: true; value: unknown } | { ok: false; error: RpcError };

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * A pipelined JSON-RPC client. `request` returns a promise per request; requests issued in the same event-loop
 * turn leave in one write. Rejections are {@link RpcError} (the server answered with an error) or
 * {@link ConnectionError} (the connection failed; `sent` says whether the request may have reached the server).
 */
export class RpcClient {
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private out: string[] = [];
  private flushScheduled = false;
  private partial: Buffer[] = [];
  private partialLen = 0;
  private closedError: ConnectionError | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
    private readonly maxLineBytes: number,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
  }

  /** Connect to `address` (`host:port`, or `:port` for 127.0.0.1). */
  static connect(address: string, options: RpcClientOptions = {}): Promise<RpcClient> {
    const a = splitAddress(address.startsWith(':') ? `127.0.0.1${address}` : address);
    if (a === null) return Promise.reject(new ConnectionError(`not a host:port address: ${address}`, false));
    const connected = new Promise<RpcClient>((resolve, reject) => {
      const socket =
        options.tls === undefined
          ? connect({ host: a.host, port: a.port })
          : tlsConnect(clientConnectOptions(a.host, a.port, options.tls));
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionError(`connecting to ${address} timed out`, false));
      }, options.connectTimeoutMs ?? 10_000);
      socket.once(options.tls === undefined ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RpcClient(socket, options.timeoutMs ?? 30_000, options.maxLineBytes ?? 64 * 1024 * 1024));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new ConnectionError(`cannot connect to ${address}: ${e.message}`, false));
      });
    });
    const token = options.token;
    if (token === undefined) return connected;
    return connected.then(async (c) => {
      try {
        await c.request('Authenticate', { token });
        return c;
      } catch (e) {
        await c.close();
        throw e;
      }
    });
  }

  /** Requests sent and not answered yet. */
  get pending(): number {
    return this.waiters.size;
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Send a request; resolves with its `result`. */
  request<T = unknown>(method: string, params?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedError !== null) return Promise.reject(new ConnectionError(this.closedError.message, false));
    const id = this.nextId++;
    const req = params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = { resolve: resolve as (v: unknown) => void, reject, timer: undefined };
      const t = options.timeoutMs ?? this.timeoutMs;
      if (t > 0) {
        w.timer = setTimeout(() => {
          this.waiters.delete(id);
          reject(
            new RpcError(ErrorCode.TIMEOUT, `no answer to ${method} within ${t} ms (client side); outcome unknown`, {
              notApplied: false,
            }),
          );
        }, t);
      }
      this.waiters.set(id, w);
      this.write(JSON.stringify(req));
    });
  }

  /** `Apply` shorthand. */
  apply<T = unknown>(
    input: unknown,
    kind: ApplyKind = 'Command',
    extra: { clientId?: string; seq?: number; timeoutMs?: number } = {},
  ): Promise<T> {
    return this.request<T>('Apply', { kind, input, ...extra });
  }

  /** Send a notification (no id, no answer). */
  notify(method: string, params?: unknown): void {
    if (this.closedError !== null) return;
    this.write(JSON.stringify(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params }));
  }

  /** Send several requests as one JSON-RPC batch (one line); resolves with each one's result or error, in order. */
  async batch(calls: { method: string; params?: unknown }[]): Promise<BatchResult[]> {
    const ids = calls.map(() => this.nextId++);
    const reqs = calls.map((c, i) =>
      c.params === undefined
        ? { jsonrpc: '2.0', id: ids[i], method: c.method }
        : { jsonrpc: '2.0', id: ids[i], method: c.method, params: c.params },
    );
    if (this.closedError !== null) throw new ConnectionError(this.closedError.message, false);
    const promises = ids.map(
      (id) =>
        new Promise<unknown>((resolve, reject) => {
          this.waiters.set(id, { resolve, reject, timer: undefined });
        }),
    );
    this.write(JSON.stringify(reqs));
    const settled = await Promise.allSettled(promises);
    return settled.map((s) => {
      if (s.status === 'fulfilled') return { ok: true, value: s.value };
      if (s.reason instanceof RpcError) return { ok: false, error: s.reason };
      throw s.reason;
    });
  }

  /** Send raw text (a line is appended) — for tests of malformed input. */
  sendRaw(text: string): void {
    this.write(text);
  }

  /** Close the connection; requests still pending reject with a {@link ConnectionError}. */
  close(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private write(line: string): void {
    this.out.push(line, '\n');
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        if (this.out.length === 0 || this.socket.destroyed) return;
        const text = this.out.join('');
        this.out = [];
        this.socket.write(text);
      });
    }
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) {
        const rest = chunk.subarray(start);
        this.partial.push(rest);
        this.partialLen += rest.length;
        if (this.partialLen > this.maxLineBytes) {
          this.socket.destroy();
          this.partial = [];
        }
        return;
      }
      let line = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.partial.length > 0) {
        line = Buffer.concat([...this.partial, line]);
        this.partial = [];
        this.partialLen = 0;
      }
      this.onLine(line.toString('utf8'));
    }
  }

  private onLine(text: string): void {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return; // Not ours to fix: the server only writes JSON.
    }
    for (const r of Array.isArray(v) ? v : [v]) this.onResponse(r);
  }

  private onResponse(r: unknown): void {
    if (r === null || typeof r !== 'object') return;
    const o = r as { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
    if (typeof o.id !== 'number') return;
    const w = this.waiters.get(o.id);
    if (w === undefined) return;
    this.waiters.delete(o.id);
    clearTimeout(w.timer);
    if (o.error !== undefined) {
      const e = o.error;
      w.reject(
        new RpcError(
          typeof e.code === 'number' ? e.code : ErrorCode.INTERNAL_ERROR,
          typeof e.message === 'string' ? e.message : 'error',
          (e.data ?? undefined) as Record<string, unknown> | undefined,
        ),
      );
    } else w.resolve(o.result);
  }

  private onClose(): void {
    this.closedError = new ConnectionError('the connection is closed', true);
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(
        new ConnectionError('the connection closed before the answer arrived; the request may have been applied', true),
      );
    }
    this.waiters.clear();
  }
}
