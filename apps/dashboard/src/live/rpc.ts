/**
 * A JSON-RPC 2.0 client over a browser WebSocket to one node (`ws://host:port/`, one request or response per
 * message, the same methods as the node's TCP API). It reconnects by itself with a capped exponential backoff,
 * because the dashboard must show a node coming back after a restart without a page reload.
 *
 * Why the backoff is long (1 s doubling to 30 s): Chromium writes every refused connection to the console
 * ("WebSocket connection to ... failed", and `fetch`, `EventSource` and images do the same), and a page cannot
 * suppress it, so there is no quiet way to probe a down node. Attempts are rare instead, counted for the page to
 * show, and {@link NodeConnection.hint} lets the page try at once when another node reports this one alive.
 */

/** First reconnection delay after a connection fails or closes, ms. */
export const RECONNECT_MIN_MS = 1000;
/** Longest reconnection delay, ms. */
export const RECONNECT_MAX_MS = 30_000;

/**
 * The wait before reconnection attempt `attempt` (1 = the first attempt after the connection was lost):
 * {@link RECONNECT_MIN_MS} doubling per attempt, capped at {@link RECONNECT_MAX_MS}.
 */
export function reconnectDelay(attempt: number): number {
  const n = Math.max(1, Math.floor(attempt));
  return Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(n - 1, 30));
}

/** A JSON-RPC error answered by the node, or a local failure (not connected, timed out, connection lost). */
export class RpcCallError extends Error {
  constructor(
    /** The JSON-RPC error code (see packages/node-tcp/API.md), or a local one: `NOT_CONNECTED`, `TIMEOUT`, `CLOSED`. */
    readonly code: number | 'NOT_CONNECTED' | 'TIMEOUT' | 'CLOSED',
    message: string,
    /** The error's `data` (e.g. `{leader}`), when the node sent one. */
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcCallError';
  }
}

/** Connection status of a {@link NodeConnection}. */
export type ConnectionStatus = 'connecting' | 'open' | 'closed';

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** How a {@link NodeConnection} reaches a secured node (docs/security.md). */
export interface NodeAuth {
  /** A client token, sent in an `Authenticate` message first on every (re)connection. */
  readonly token?: string;
  /** Use `wss://` (the node has TLS; the browser must trust the cluster CA). */
  readonly secure?: boolean;
}

/** The id of the `Authenticate` message a connection sends first. */
const AUTH_ID = 'dashboard-authenticate';

/** One node's WebSocket, with request/response matching by id and automatic reconnection. */
export class NodeConnection {
  status: ConnectionStatus = 'connecting';
  /** The last connection error or close reason, for display. */
  lastError = '';
  /** Reconnection attempts made since the connection was last open (each one that failed logged a console error). */
  attempts = 0;
  /** `performance.now()` of the next scheduled attempt, or null when none is scheduled. */
  nextAttemptAt: number | null = null;
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** Whether {@link NodeConnection.hint} was used since the connection was last open (once per outage). */
  private hinted = false;

  /**
   * @param address - `host:port` of the node.
   * @param onStatus - called whenever {@link NodeConnection.status} changes.
   */
  constructor(
    readonly address: string,
    private readonly onStatus: (c: NodeConnection) => void = () => {},
    private readonly auth: NodeAuth = {},
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    this.nextAttemptAt = null;
    if (this.status === 'closed') this.attempts++;
    this.setStatus('connecting');
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${this.auth.secure === true ? 'wss' : 'ws'}://${this.address}/`);
    } catch (e) {
      this.lastError = (e as Error).message;
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.hinted = false;
      this.lastError = '';
      // Sent before anything else, so the node authenticates the connection before the first request on it.
      const token = this.auth.token;
      if (token !== undefined) {
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: AUTH_ID, method: 'Authenticate', params: { token } }));
      }
      this.setStatus('open');
    };
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => {
      this.lastError = 'connection failed';
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.reason) this.lastError = ev.reason;
      this.failAll('CLOSED', 'connection closed');
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const delay = reconnectDelay(this.attempts + 1);
    clearTimeout(this.retry);
    this.nextAttemptAt = performance.now() + delay;
    this.retry = setTimeout(() => this.connect(), delay);
    this.setStatus('closed');
  }

  /**
   * Evidence that the node is up again (e.g. the leader reports it replicating): reconnect now instead of at the
   * scheduled attempt. Honoured once per outage, so a node the leader reaches but this page cannot (a firewall,
   * another network) costs one extra attempt, not one per poll. Returns whether an attempt was started.
   */
  hint(): boolean {
    if (this.closed || this.hinted || this.status !== 'closed') return false;
    this.hinted = true;
    clearTimeout(this.retry);
    this.connect();
    return true;
  }

  private setStatus(s: ConnectionStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.onStatus(this);
  }

  private onMessage(data: unknown): void {
    if (typeof data !== 'string') return;
    let msg: unknown;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m === null || typeof m !== 'object') continue;
      const r = m as { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
      if (r.id === AUTH_ID && r.error !== undefined && r.error !== null) {
        this.lastError = `token refused: ${String(r.error.message ?? 'unauthenticated')}`;
        this.onStatus(this);
        continue;
      }
      if (typeof r.id !== 'number') continue;
      const p = this.pending.get(r.id);
      if (p === undefined) continue;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.error !== undefined && r.error !== null) {
        const code = typeof r.error.code === 'number' ? r.error.code : -32603;
        p.reject(new RpcCallError(code, String(r.error.message ?? 'error'), r.error.data));
      } else {
        p.resolve(r.result);
      }
    }
  }

  /** Sends a request and resolves with its result (rejects with {@link RpcCallError}). */
  request(method: string, params?: unknown, timeoutMs = 5000): Promise<unknown> {
    const ws = this.ws;
    if (ws === null || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RpcCallError('NOT_CONNECTED', `not connected to ${this.address}`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcCallError('TIMEOUT', `${method} on ${this.address}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
      if (params !== undefined) req.params = params;
      ws.send(JSON.stringify(req));
    });
  }

  /** Requests awaiting an answer. */
  get inflight(): number {
    return this.pending.size;
  }

  private failAll(code: 'CLOSED', message: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RpcCallError(code, message));
      this.pending.delete(id);
    }
  }

  /** Closes for good (no reconnection). */
  close(): void {
    this.closed = true;
    this.nextAttemptAt = null;
    clearTimeout(this.retry);
    this.ws?.close();
    this.ws = null;
    this.failAll('CLOSED', 'closed');
    this.setStatus('closed');
  }
}
