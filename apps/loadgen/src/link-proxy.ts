/**
 * A TCP proxy that behaves like a slow network link: every byte is delivered a fixed one-way delay after it arrived,
 * optionally no faster than a bandwidth cap, in order, with backpressure. `pnpm bench:links` puts one in front of
 * every cluster member's peer port, so raft-kvs and etcd are measured over the same "racks or zones" links on one
 * machine whose kernel has no `netem`.
 *
 * Why in user space: the proxy is on every peer link anyway (for the delay), so capping bandwidth in it too needs no
 * root, no network namespaces and no `tbf` qdiscs to tear down after a crash; the cost is that the cap is applied to
 * the proxy's read chunks rather than to packets.
 *
 * @packageDocumentation
 */

import { connect, createServer, type Server, type Socket } from 'node:net';
import { LoadgenError } from './errors.js';
import { parseEndpoint } from './transport.js';

/** Options of {@link LinkProxy.start}. */
export interface LinkProxyOptions {
  /** Where connections are forwarded: `host:port` (or `:port`). Dialled once per accepted connection. */
  readonly upstream: string;
  /** One-way delay in milliseconds, applied to each direction separately (the round trip adds twice this). */
  readonly delayMs: number;
  /**
   * Bandwidth cap per direction and connection in bytes per second (a token bucket); absent or 0 means uncapped.
   * 100 Mbit/s is 12,500,000.
   */
  readonly bytesPerSecond?: number;
  /**
   * Token bucket depth in bytes: how much may leave at once after an idle spell (default 64 KiB, about one socket
   * read). A chunk larger than the bucket leaves once the bucket is full and leaves the bucket in debt, so any chunk
   * size works.
   */
  readonly burstBytes?: number;
  /**
   * Bytes a direction may hold (waiting for their delay, the bucket or a slow receiver) before the proxy stops
   * reading from the sender; reading resumes when the held bytes fall to half of this. Default 4 MiB: more than
   * 10 ms at 100 MB/s, so the bound only bites when the receiver or the cap is slower than the sender.
   */
  readonly maxQueuedBytes?: number;
  /** Address to listen on (default `127.0.0.1`). */
  readonly host?: string;
  /** Port to listen on (default 0: a free port, see {@link LinkProxy.port}). */
  readonly port?: number;
}

/** What a {@link LinkProxy} has carried so far, over both directions of every connection. */
export interface LinkProxyStats {
  /** Connections accepted. */
  readonly connections: number;
  /** Chunks delivered (a chunk is one socket read on the sending side). */
  readonly chunks: number;
  /** Bytes delivered. */
  readonly bytes: number;
  /** Mean time a chunk spent in the proxy, from being read to being handed to the receiving socket (ms). */
  readonly meanDelayMs: number;
  /** Longest time a chunk spent in the proxy (ms). */
  readonly maxDelayMs: number;
  /** Bytes read but not yet delivered right now, over all open connections (bounded by backpressure). */
  readonly queuedBytes: number;
}

const DEFAULT_BURST = 64 * 1024;
const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;

/** One queued item: a chunk, or `null` for the sender's FIN (delivered, like data, after the delay). */
interface Item {
  readonly data: Buffer | null;
  /** performance.now() when it was read. */
  readonly readAt: number;
  /** performance.now() when it may leave. */
  readonly due: number;
}

type LaneOptions = Required<Pick<LinkProxyOptions, 'delayMs' | 'bytesPerSecond' | 'burstBytes' | 'maxQueuedBytes'>>;

interface Counters {
  chunks: number;
  bytes: number;
  delaySum: number;
  delayMax: number;
  queued: number;
}

/**
 * One direction of one connection: reads from `src`, delivers to `dst`. Items sit in a FIFO; because every item of a
 * lane has the same delay, the head is always the next one due, so one timer (for the head) serves the whole queue.
 */
class Lane {
  private readonly queue: Item[] = [];
  /** Index of the head in `queue` (shifting an array per chunk would be O(n)); compacted now and then. */
  private head = 0;
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private paused = false;
  private waitingDrain = false;
  private tokens: number;
  private refilledAt = performance.now();
  private closed = false;

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly o: LaneOptions,
    private readonly counters: Counters,
  ) {
    this.tokens = o.burstBytes;
    src.on('data', (chunk: Buffer) => this.push(chunk));
    src.on('end', () => this.push(null));
    dst.on('drain', () => {
      if (!this.waitingDrain) return;
      this.waitingDrain = false;
      this.pump();
    });
  }

  private push(data: Buffer | null): void {
    if (this.closed) return;
    const now = performance.now();
    const wasEmpty = this.head === this.queue.length;
    this.queue.push({ data, readAt: now, due: now + this.o.delayMs });
    if (data !== null) {
      this.queuedBytes += data.length;
      this.counters.queued += data.length;
      if (this.queuedBytes > this.o.maxQueuedBytes && !this.paused) {
        this.paused = true;
        this.src.pause();
      }
    }
    // A non-empty queue already has a timer (or waits for 'drain') for an earlier head.
    if (wasEmpty && this.timer === null && !this.waitingDrain) this.pump();
  }

  /** Delivers every item that is due and allowed by the bucket; arms the one timer for the next. */
  private pump(): void {
    this.timer = null;
    while (this.head < this.queue.length && !this.closed) {
      const item = this.queue[this.head];
      const now = performance.now();
      if (item.due > now) {
        this.arm(item.due - now);
        return;
      }
      if (item.data !== null && this.o.bytesPerSecond > 0) {
        const rate = this.o.bytesPerSecond;
        this.tokens = Math.min(this.o.burstBytes, this.tokens + ((now - this.refilledAt) / 1000) * rate);
        this.refilledAt = now;
        const need = Math.min(item.data.length, this.o.burstBytes);
        if (this.tokens < need) {
          this.arm(((need - this.tokens) / rate) * 1000);
          return;
        }
        this.tokens -= item.data.length;
      }
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      if (item.data === null) {
        this.dst.end();
        continue;
      }
      this.queuedBytes -= item.data.length;
      const c = this.counters;
      c.queued -= item.data.length;
      const spent = now - item.readAt;
      c.chunks++;
      c.bytes += item.data.length;
      c.delaySum += spent;
      if (spent > c.delayMax) c.delayMax = spent;
      if (this.paused && this.queuedBytes <= this.o.maxQueuedBytes / 2) {
        this.paused = false;
        this.src.resume();
      }
      if (!this.dst.write(item.data)) {
        // The receiver is slower than the link: hold the rest until its socket buffer drains.
        this.waitingDrain = true;
        return;
      }
    }
  }

  private arm(ms: number): void {
    // Node's timers have millisecond resolution and may fire up to a millisecond early against performance.now();
    // pump() re-checks the clock, so a chunk never leaves before its delay (it may leave up to ~1 ms late).
    this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(ms)));
  }

  /** Drops everything queued and stops the timer (the connection is going away). */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.head = 0;
    this.counters.queued -= this.queuedBytes;
    this.queuedBytes = 0;
  }
}

interface Conn {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly lanes: Lane[];
}

/**
 * A delaying TCP proxy: listens on a port and forwards each accepted connection to `upstream`, delaying every chunk
 * in each direction by {@link LinkProxyOptions.delayMs} (order and bytes preserved), optionally capped at
 * {@link LinkProxyOptions.bytesPerSecond}. A FIN is forwarded after the data before it (half-close works); a reset or
 * error on either side resets the other side at once, dropping what was queued, as a broken link would.
 *
 * @example
 * ```ts fragment
 * const proxy = await LinkProxy.start({ upstream: '127.0.0.1:7001', delayMs: 10, bytesPerSecond: 12_500_000 });
 * // peers dial proxy.address instead of 127.0.0.1:7001
 * await proxy.stop();
 * ```
 */
export class LinkProxy {
  private readonly conns = new Set<Conn>();
  private readonly counters: Counters = { chunks: 0, bytes: 0, delaySum: 0, delayMax: 0, queued: 0 };
  private readonly server: Server;
  private readonly upstream: { host: string; port: number };
  private readonly lane: LaneOptions;
  private connections = 0;
  private stopped = false;
  private boundPort = 0;

  private constructor(private readonly o: LinkProxyOptions) {
    this.upstream = parseEndpoint(o.upstream);
    const nonNegative = (name: string, v: number | undefined) => {
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) {
        throw new LoadgenError('BAD_OPTION', `${name} must be a finite number ≥ 0, got ${v}`);
      }
    };
    nonNegative('delayMs', o.delayMs);
    nonNegative('bytesPerSecond', o.bytesPerSecond);
    nonNegative('burstBytes', o.burstBytes);
    nonNegative('maxQueuedBytes', o.maxQueuedBytes);
    this.lane = {
      delayMs: o.delayMs,
      bytesPerSecond: o.bytesPerSecond ?? 0,
      burstBytes: Math.max(1, o.burstBytes ?? DEFAULT_BURST),
      maxQueuedBytes: Math.max(1, o.maxQueuedBytes ?? DEFAULT_MAX_QUEUED),
    };
    this.server = createServer({ allowHalfOpen: true }, (client) => this.accept(client));
  }

  /**
   * Validates the options, listens, and resolves once the port is bound.
   *
   * @throws LoadgenError `BAD_OPTION` on a malformed upstream or a negative / non-finite number.
   */
  static async start(options: LinkProxyOptions): Promise<LinkProxy> {
    const proxy = new LinkProxy(options);
    const server = proxy.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new LoadgenError('CONNECT', 'proxy has no TCP address');
    proxy.boundPort = addr.port;
    return proxy;
  }

  /** The port the proxy listens on. */
  get port(): number {
    return this.boundPort;
  }

  /** `host:port` the proxy listens on: what peers should dial. */
  get address(): string {
    return `${this.o.host ?? '127.0.0.1'}:${this.boundPort}`;
  }

  /** Counters over every connection so far (including closed ones). */
  stats(): LinkProxyStats {
    const c = this.counters;
    return {
      connections: this.connections,
      chunks: c.chunks,
      bytes: c.bytes,
      meanDelayMs: c.chunks ? c.delaySum / c.chunks : 0,
      maxDelayMs: c.delayMax,
      queuedBytes: c.queued,
    };
  }

  private accept(client: Socket): void {
    if (this.stopped) {
      client.destroy();
      return;
    }
    this.connections++;
    const upstream = connect({ host: this.upstream.host, port: this.upstream.port, allowHalfOpen: true });
    // Raft's messages are small and latency-bound: no Nagle delay on top of the link's.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const conn: Conn = {
      client,
      upstream,
      lanes: [
        new Lane(client, upstream, this.lane, this.counters),
        new Lane(upstream, client, this.lane, this.counters),
      ],
    };
    this.conns.add(conn);
    let closed = 0;
    const reset = () => this.drop(conn);
    client.on('error', reset);
    upstream.on('error', reset);
    // A socket closes cleanly once its FIN was read and ours was sent; the other socket then still delivers what it
    // queued (ending with that FIN) and closes in turn. A close with an error resets the other side at once.
    const onClose = (hadError: boolean) => {
      if (hadError) {
        this.drop(conn);
        return;
      }
      if (++closed === 2) this.conns.delete(conn);
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
  }

  /** Tears a connection down with RST on both sockets, so each far side sees a broken connection, not a clean end. */
  private drop(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    for (const lane of conn.lanes) lane.close();
    for (const s of [conn.client, conn.upstream]) {
      if (!s.destroyed) s.resetAndDestroy();
      // resetAndDestroy does nothing on a socket without a handle (never connected): destroy it plainly then.
      if (!s.destroyed) s.destroy();
    }
  }

  /** Stops listening and resets every open connection; resolves once the port is free. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of [...this.conns]) this.drop(conn);
    await closed;
  }
}
