/**
 * The server: one `@raft/runtime` node on TCP: it opens the data directory, listens, tells peer, JSON-RPC, HTTP and
 * WebSocket connections apart, and hands Raft traffic to the runtime and client calls to `methods.ts`. Everything
 * about Raft itself (the action loop, durability, snapshots, forwarding, client answers) is in `@raft/runtime`.
 *
 * @packageDocumentation
 */

import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import type { RaftOptions } from '@raft/core';
import {
  type ApplyOutcome,
  type Command,
  consoleLogger,
  ErrorCode,
  errors,
  type Logger,
  type Machine,
  newRuntimeCounters,
  RaftRuntime,
  type RaftStorage,
  RpcError,
  type RuntimeCounters,
  type RuntimeState,
} from '@raft/runtime';
import { type Codec, openStorage, type RecoveryReport, type JsonValue as StorageJson } from '@raft/storage-jsonl';
import { PEER_MAGIC } from './frame.js';
import { toRuntimeRequest } from './methods.js';
import { copyRecovery, reportRecovery, type ServerRecovery } from './recovery.js';
import { RpcFrontend } from './rpc.js';
import { PeerTransport, splitAddress } from './transport.js';

export type { RaftStorage };

/** Options of {@link createServer}. Only `address`, `machine` and `dataDir` (or `storage`) are required. */
export interface ServerOptions {
  /** `host:port`: the server's id in the cluster and where it listens. Port 0 picks a free port (see docs). */
  address: string;
  /** Listen somewhere else than `address` (e.g. `0.0.0.0:4000` behind NAT). Default: `address`. */
  listen?: string;
  /** The data directory (storage-jsonl). Required unless {@link ServerOptions.storage} is given. */
  dataDir?: string;
  /** The replicated state machine. */
  machine: Machine;
  /** Leader heartbeat interval in ms. Default 100. */
  heartbeatMs?: number;
  /** Minimum election timeout in ms; each election waits a random time in [t, 2t). Default 1000. */
  electionTimeoutMs?: number;
  /** Default timeout of a request (waiting for a leader, forwarding, committing, membership changes). Default 10 s. */
  requestTimeoutMs?: number;
  /** Take a snapshot after this many entries were applied since the last one; 0 disables. Default 100 000. */
  autoSnapshotEntries?: number;
  /** Largest peer frame sent or accepted, in bytes. Larger AppendEntries are split. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Largest JSON-RPC line or WebSocket message, in bytes. Default 16 MiB. */
  maxLineBytes?: number;
  /**
   * Bytes queued for a peer (not yet written, plus unsent in its socket) above which a turn's entry-carrying
   * messages to it are dropped (Raft retransmits). Queued messages reference log entries, so this is mostly not extra
   * memory. Default 256 MiB.
   */
  maxPeerBufferBytes?: number;
  /** Requests in progress on this server above which new ones get `OVERLOADED`. Default 100 000. */
  maxInflightRequests?: number;
  /**
   * Client connections (JSON-RPC lines, WebSocket, HTTP) open at once; one more gets an `OVERLOADED` error line (HTTP:
   * 503) and is closed. Peer connections never count. Default 10 000.
   */
  maxClientConnections?: number;
  /**
   * A client connection with no request in progress and no traffic for this long is closed; a connection that has
   * sent nothing yet is closed after min(this, 30 s). 0 disables (TCP keepalive still finds half-open ones).
   * Default 300 000 (5 minutes).
   */
  clientIdleTimeoutMs?: number;
  /**
   * Largest answer to a client (a batch's answers count together; larger ones are replaced by `OUTPUT_LIMIT_EXCEEDED`
   * errors), and most unsent answer bytes a client connection may have queued before it is closed with an
   * `OUTPUT_LIMIT_EXCEEDED` line. Default 64 MiB.
   */
  maxClientOutputBytes?: number;
  /** Requests in one JSON-RPC batch; a larger batch gets an `INVALID_REQUEST` error per request. Default 10 000. */
  maxBatchRequests?: number;
  /** Cluster name every peer must present in its handshake. Default `raft`. */
  clusterName?: string;
  /** Shared secret peers prove (HMAC-SHA256 of a server challenge) in their handshake. Default: none. */
  secret?: string;
  /** Storage to use instead of opening `dataDir` (the server closes it on stop). */
  storage?: RaftStorage;
  /** `false` skips fsync (tests and benchmarks only: acknowledged writes can be lost on power failure). Default true. */
  storageSync?: boolean;
  /** Exactly-once client sessions remembered (least recently used forgotten first). Default 100 000. */
  maxSessions?: number;
  /** Core tunables (`electionTicks` is derived from the timeouts unless given). */
  raft?: Partial<RaftOptions>;
  /** Where to log. Default: warnings and errors to stderr. */
  logger?: Logger;
}

/** Counters useful to an operator (monotonic since start, except `clientConnections`). */
export interface ServerCounters extends RuntimeCounters {
  /**
   * JSON-RPC requests received from clients (TCP lines and WebSocket messages; each element of a batch counts).
   * Calls of the in-process API are not counted.
   */
  rpcRequests: number;
  /**
   * JSON-RPC error responses sent: malformed text or requests (including a whole unparsable line or an empty batch,
   * which are not counted in `rpcRequests`) and requests that failed.
   */
  rpcErrors: number;
  /**
   * Items written to peer sockets (or buffered for a connection still in its handshake): Raft messages, forwarded
   * requests and their replies. An AppendEntries split into several frames counts once per part.
   */
  messagesSent: number;
  /** Raft messages received from peers (forwarded requests and replies not included). */
  messagesReceived: number;
  /**
   * Raft messages discarded instead of delivered: the peer was unreachable (backing off), its queue was over
   * `maxPeerBufferBytes`, or its connection closed before they were written. Raft retransmits what still matters.
   */
  messagesDropped: number;
  /** Peer frames written after the handshake (one frame carries one or more items). */
  framesSent: number;
  /** Peer frames received after the handshake. */
  framesReceived: number;
  /** Bytes written to peer connections, handshakes included (client traffic is not counted). */
  bytesSent: number;
  /** Bytes read from peer connections, handshakes included (client traffic is not counted). */
  bytesReceived: number;
  /**
   * Peer connections refused: incoming ones with a bad protocol version, cluster name or secret, a handshake not
   * finished in time or a malformed frame, and outgoing ones whose peer did not prove the shared secret.
   */
  peerConnectionsRejected: number;
  /** Client connections (JSON-RPC over TCP and WebSocket) open right now: a gauge, not a monotonic counter. */
  clientConnections: number;
}

/** The `GetServerState` result: the runtime's state plus what the server adds. */
export interface ServerState extends RuntimeState {
  /** The cluster name peers must present in their handshake ({@link ServerOptions.clusterName}). */
  clusterName: string;
  /** A copy of the operator counters at the time of the call (see {@link ServerCounters}). */
  counters: ServerCounters;
  /** Wall-clock milliseconds since {@link RaftServer.start} brought this server up. */
  uptimeMs: number;
  /** What recovery repaired in the data directory when this server started (see {@link ServerRecovery}). */
  recovery: ServerRecovery;
}

/** Options of {@link RaftServer.apply}. */
export interface ApplyOptions {
  /** Exactly-once session id (with `seq`). */
  clientId?: string;
  /** Sequence number within the session (with `clientId`). */
  seq?: number;
  /** Request timeout in ms (default: the server's `requestTimeoutMs`). */
  timeoutMs?: number;
}

type Done = (o: ApplyOutcome) => void;

/** Log payloads are already JSON values: store them as they are (no per-entry walk). */
const commandCodec: Codec<Command> = {
  encode: (c) => c as unknown as StorageJson,
  decode: (j) => j as unknown as Command,
};

const META_FILE = 'node-tcp.json';

/** A connection must send its first bytes (which say whether it is a peer or a client) within this many ms. */
const SNIFF_TIMEOUT_MS = 30_000;

/** Create a server (call {@link RaftServer.start} to run it). */
export function createServer(options: ServerOptions): RaftServer {
  return new RaftServer(options);
}

/**
 * A Raft server: one cluster member with its storage, its peer connections and its client port.
 * Events: `stateChanged` `{role, term, leader}`, `membershipChanged` `{voters, learners}`.
 */
export class RaftServer extends EventEmitter {
  private readonly log: Logger;
  private _id: string;
  private runtime: RaftRuntime | null = null;
  private transport!: PeerTransport;
  private frontend!: RpcFrontend;
  private listener: TcpServer | null = null;
  private readonly conns = new Set<Socket>();
  /** Connections accepted while {@link RaftServer.start} finishes (null when not starting). */
  private early: Socket[] | null = null;
  private running = false;
  private started = false;
  private startedAt = 0;
  private recovery: ServerRecovery = { repaired: [] };
  private flushQueued = false;
  private readonly flushOut = (): void => {
    this.flushQueued = false;
    if (!this.running) return;
    this.transport.flush();
    this.frontend.flushPending();
  };

  /** Operator counters (see {@link ServerCounters}). */
  readonly counters: ServerCounters = {
    ...newRuntimeCounters(),
    rpcRequests: 0,
    rpcErrors: 0,
    messagesSent: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    peerConnectionsRejected: 0,
    clientConnections: 0,
  };

  constructor(private readonly options: ServerOptions) {
    super();
    if (splitAddress(options.address) === null) {
      throw new RpcError(
        ErrorCode.INVALID_PARAMS,
        `address must be "host:port", got ${JSON.stringify(options.address)}`,
      );
    }
    if (options.storage === undefined && options.dataDir === undefined) {
      throw new RpcError(ErrorCode.INVALID_PARAMS, 'either dataDir or storage is required');
    }
    const heartbeatMs = options.heartbeatMs ?? 100;
    if (heartbeatMs <= 0 || (options.electionTimeoutMs ?? 1000) < 2 * heartbeatMs) {
      throw new RpcError(ErrorCode.INVALID_PARAMS, 'electionTimeoutMs must be at least twice heartbeatMs');
    }
    this._id = options.address;
    this.log = options.logger ?? consoleLogger('warn', options.address);
  }

  /** This server's id in the cluster (its `host:port`; the real port once started when port 0 was given). */
  get id(): string {
    return this._id;
  }

  /** Same as {@link RaftServer.id}. */
  get address(): string {
    return this._id;
  }

  /** The port the server listens on (after start). */
  get port(): number {
    const a = this.listener?.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** Whether the server is running. */
  get isRunning(): boolean {
    return this.running;
  }

  /** The runtime this server drives (after start): the typed in-process API without JSON-RPC in between. */
  get raft(): RaftRuntime {
    if (this.runtime === null) throw errors.shuttingDown();
    return this.runtime;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Lifecycle
  // ---------------------------------------------------------------------------------------------------------------

  /**
   * Open the storage, restore the state machine from the latest snapshot, start listening and start the timers.
   * Rejects if the data directory belongs to another address or the port is taken.
   */
  async start(): Promise<void> {
    if (this.running) return;
    if (this.started) {
      // The machine already holds applied state; replaying the log into it again would apply commands twice.
      throw new RpcError(
        ErrorCode.SHUTTING_DOWN,
        'a stopped server cannot be started again: create a new server with a fresh Machine on the same dataDir',
      );
    }
    this.started = true;
    const o = this.options;
    const addr = splitAddress(o.address) as { host: string; port: number };
    let port = addr.port;
    if (o.dataDir !== undefined) {
      // The id is recorded in the data directory so a restart with another address cannot pose as another node.
      const known = await readMeta(o.dataDir);
      if (known !== null) {
        const k = splitAddress(known.id);
        if (port === 0 && k !== null && k.host === addr.host) port = k.port;
        else if (known.id !== o.address) {
          throw new RpcError(
            ErrorCode.INVALID_PARAMS,
            `data directory ${o.dataDir} belongs to server ${known.id}, not ${o.address}`,
          );
        }
      }
    }
    const listenAddr = o.listen === undefined ? { host: addr.host, port } : splitAddress(o.listen);
    if (listenAddr === null) throw new RpcError(ErrorCode.INVALID_PARAMS, 'listen must be "host:port"');
    const clusterName = o.clusterName ?? 'raft';
    const heartbeatMs = o.heartbeatMs ?? 100;
    const electionTimeoutMs = o.electionTimeoutMs ?? 1000;
    const maxFrameBytes = o.maxFrameBytes ?? 64 * 1024 * 1024;
    const maxPeerBufferBytes = o.maxPeerBufferBytes ?? 256 * 1024 * 1024;
    // Storage first, the port after: the port accepts only once the log is open. The node's id needs the bound port
    // (port 0), so the runtime (and the snapshot restore) starts after listening: connections accepted meanwhile
    // wait in `early` and are served once the server runs, never reset.
    let storage: RaftStorage | undefined;
    let listener: TcpServer | undefined;
    try {
      if (o.dataDir !== undefined) await fs.mkdir(o.dataDir, { recursive: true });
      storage =
        o.storage ??
        (await openStorage<Command>(o.dataDir as string, { sync: o.storageSync ?? true, codec: commandCodec }));
      // A storage of the user's may not report repairs; storage-jsonl does.
      this.recovery = reportRecovery(storage as { recovery?: RecoveryReport }, this.log);
      this.early = [];
      const l = createTcpServer({ noDelay: true }, (sock) => this.onConnection(sock));
      listener = l;
      await new Promise<void>((resolve, reject) => {
        l.once('error', reject);
        l.listen(listenAddr.port, listenAddr.host, () => {
          l.removeListener('error', reject);
          resolve();
        });
      });
      l.on('error', (e) => this.log.error('listener error', { error: e.message }));
      this.listener = l;
      const bound = l.address();
      const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
      if (port === 0) port = boundPort;
      this._id = addr.host.includes(':') ? `[${addr.host}]:${port}` : `${addr.host}:${port}`;
      if (o.dataDir !== undefined) await writeMeta(o.dataDir, { id: this._id, clusterName });
    } catch (e) {
      await this.abortStart(listener, storage);
      throw e;
    }
    this.transport = new PeerTransport({
      id: this._id,
      clusterName,
      secret: o.secret,
      maxFrameBytes,
      maxBufferBytes: maxPeerBufferBytes,
      backoffMinMs: Math.min(50, heartbeatMs),
      backoffMaxMs: Math.max(1000, electionTimeoutMs),
      handshakeTimeoutMs: Math.max(2000, 2 * electionTimeoutMs),
      // Well below a heartbeat, well above the time between two AppendEntries under load.
      commitNotifyDelayMs: Math.min(5, heartbeatMs / 4),
      lowWaterBytes: Math.min(maxPeerBufferBytes, 4 * 1024 * 1024),
      softFrameBytes: Math.max(1024, Math.min(1024 * 1024, Math.floor(maxFrameBytes / 4))),
      logger: this.log,
      counters: this.counters,
      onMessages: (ms) => this.runtime?.receive(ms),
      onForward: (link, r) => this.runtime?.receiveForward(r, (reply) => link.reply(reply)),
      onReplies: (rs) => this.runtime?.forwardReplies(rs),
      onUnsent: (rs) => this.runtime?.forwardsUnsent(rs),
      onLost: (ids) => this.runtime?.forwardsLost(ids),
    });
    const raftOptions: Partial<RaftOptions> = {
      // A snapshot chunk travels in one frame (it cannot be split like an AppendEntries).
      snapshotChunkBytes: Math.max(1024, Math.min(1024 * 1024, Math.floor(maxFrameBytes / 2))),
      // Every learner of this server is a voter in the making (AddServer): the core promotes them once caught up.
      autoPromoteLearners: true,
      ...o.raft,
    };
    const runtime = new RaftRuntime({
      id: this._id,
      storage,
      transport: {
        send: (m) => this.transport.send(m),
        forward: (to, r) => this.transport.forward(to, r),
        // What a turn produced leaves in this same event-loop iteration, on a microtask rather than right here, so
        // that the storage, which starts its write on a microtask queued during the turn, hands its fdatasync to
        // the thread pool first: the leader's fsync then runs while the AppendEntries travel. Everything queued
        // during the turn still leaves as one frame per peer and one write per client connection.
        flush: () => this.queueFlush(),
      },
      machine: o.machine,
      heartbeatMs,
      electionTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      autoSnapshotEntries: o.autoSnapshotEntries,
      maxInflightRequests: o.maxInflightRequests,
      maxSessions: o.maxSessions,
      maxCommandBytes: Math.floor(maxFrameBytes / 2),
      raft: raftOptions,
      logger: this.log,
      counters: this.counters,
      onEvent: (e) => {
        if (e.type === 'stateChanged') this.emit('stateChanged', { role: e.role, term: e.term, leader: e.leader });
        else if (e.type === 'membershipChanged') {
          this.emit('membershipChanged', { voters: [...e.voters], learners: [...e.learners] });
        } else if (e.type === 'failed') this.transport.close();
      },
    });
    try {
      await runtime.start();
    } catch (e) {
      this.transport.close();
      await this.abortStart(listener, storage);
      throw e;
    }
    this.runtime = runtime;
    this.frontend = new RpcFrontend(
      {
        dispatch: (m, p, d) => this.dispatch(m, p, d),
        stateJson: () => JSON.stringify(this.state()),
        counters: this.counters,
      },
      {
        maxLineBytes: o.maxLineBytes ?? 16 * 1024 * 1024,
        maxOutputBytes: Math.min(8 * 1024 * 1024, Math.floor(this.limits.maxClientOutputBytes / 2)),
        ...this.limits,
        logger: this.log,
      },
    );
    this.running = true;
    this.startedAt = Date.now();
    this.log.info('server started', { id: this._id, term: runtime.node.currentTerm, applied: runtime.appliedIndex });
    const early = this.early ?? [];
    this.early = null;
    for (const sock of early) if (!sock.destroyed) this.onConnection(sock);
  }

  /** Undo a start that failed: close the port, drop held connections, close storage this server opened. */
  private async abortStart(listener: TcpServer | undefined, storage: RaftStorage | undefined): Promise<void> {
    listener?.close();
    this.listener = null;
    for (const sock of this.early ?? []) sock.destroy();
    this.early = null;
    // Storage this server opened is closed again; storage the caller passed in stays the caller's.
    if (storage !== undefined && this.options.storage === undefined) {
      await Promise.resolve(storage.close()).catch(() => undefined);
    }
  }

  /** Client connection limits (see {@link ServerOptions}). */
  private get limits() {
    const o = this.options;
    return {
      maxClientConnections: o.maxClientConnections ?? 10_000,
      clientIdleTimeoutMs: o.clientIdleTimeoutMs ?? 300_000,
      maxClientOutputBytes: o.maxClientOutputBytes ?? 64 * 1024 * 1024,
      maxBatchRequests: o.maxBatchRequests ?? 10_000,
    };
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flushOut);
  }

  /**
   * Stop gracefully: pending requests fail with `SHUTTING_DOWN`, connections close, queued writes are flushed and
   * the storage is closed.
   */
  async stop(): Promise<void> {
    await this.shutdown(true);
  }

  /**
   * Stop like a crash would (for tests): timers and sockets are dropped at once and pending requests fail; queued
   * storage writes still finish (the process keeps running), but nothing new is written.
   */
  async kill(): Promise<void> {
    await this.shutdown(false);
  }

  private async shutdown(graceful: boolean): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.transport.close();
    this.frontend.close();
    for (const s of this.conns) s.destroy();
    this.conns.clear();
    const listener = this.listener;
    this.listener = null;
    const closed = new Promise<void>((r) => (listener ? listener.close(() => r()) : r()));
    await this.runtime?.stop(graceful);
    await closed;
    this.log.info('server stopped', { id: this._id });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Connections
  // ---------------------------------------------------------------------------------------------------------------

  private onConnection(socket: Socket): void {
    if (!this.running) {
      if (this.early !== null) {
        socket.on('error', () => undefined);
        this.early.push(socket);
      } else socket.destroy();
      return;
    }
    const limits = this.limits;
    // Connections that have not said what they are yet are bounded in number and time (a peer sends its magic at
    // once, so only a flood of silent connections can make one wait; it is refused like a client would be).
    if (this.conns.size >= limits.maxClientConnections) {
      this.frontend.refuse(socket, false);
      return;
    }
    this.conns.add(socket);
    socket.on('close', () => this.conns.delete(socket));
    socket.on('error', () => undefined);
    const silent = () => socket.destroy();
    const idle = limits.clientIdleTimeoutMs;
    socket.setTimeout(idle > 0 ? Math.min(idle, SNIFF_TIMEOUT_MS) : SNIFF_TIMEOUT_MS, silent);
    let head: Buffer = Buffer.alloc(0);
    // Sniff the protocol from the first bytes: peers start with the magic, HTTP with "GET ", the rest is JSON-RPC.
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < 4 && !head.includes(0x0a)) return;
      socket.removeListener('data', onData);
      socket.setTimeout(0);
      socket.removeListener('timeout', silent);
      this.conns.delete(socket);
      if (head.length >= 4 && head.subarray(0, 4).equals(PEER_MAGIC)) this.transport.accept(socket, head);
      else if (head.length >= 4 && head.toString('latin1', 0, 4) === 'GET ') this.frontend.acceptHttp(socket, head);
      else this.frontend.acceptLines(socket, head);
    };
    socket.on('data', onData);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // JSON-RPC
  // ---------------------------------------------------------------------------------------------------------------

  /** @internal Run a JSON-RPC method (`done` is called exactly once). */
  dispatch(method: string, params: unknown, done: Done): void {
    const rt = this.runtime;
    if (rt === null || !this.running) {
      done({ ok: false, error: errors.shuttingDown() });
      return;
    }
    const request = toRuntimeRequest(method, params);
    if (request instanceof RpcError) {
      done({ ok: false, error: request });
      return;
    }
    if (request.type === 'state') {
      // GetServerState: the runtime's state (and hash) plus the server's own fields.
      rt.submit(request, (o) => done(o.ok ? { ok: true, output: { ...this.state(), ...(o.output as object) } } : o));
      return;
    }
    rt.submit(request, done);
  }

  /** This server's state now (what `GetServerState` answers, without the hash). */
  private state(): ServerState {
    return {
      ...this.raft.state(),
      clusterName: this.options.clusterName ?? 'raft',
      counters: { ...this.counters },
      uptimeMs: Date.now() - this.startedAt,
      recovery: copyRecovery(this.recovery),
    };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // In-process API (the runtime's typed API, reached through this server)
  // ---------------------------------------------------------------------------------------------------------------

  private promise<T>(method: string, params: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.dispatch(method, params, (o) => {
        if (!o.ok) reject(o.error);
        else resolve((o.json !== undefined ? JSON.parse(o.json) : o.output) as T);
      });
    });
  }

  /** Run a command through the log; resolves with the machine's output. Any member may be asked. */
  apply<O = unknown>(input: unknown, options: ApplyOptions = {}): Promise<O> {
    return this.running ? this.raft.apply<O>(input, options) : Promise.reject(errors.shuttingDown());
  }

  /** A linearizable read (ReadIndex); resolves with the machine's output. */
  query<O = unknown>(input: unknown, options: { timeoutMs?: number } = {}): Promise<O> {
    return this.running ? this.raft.query<O>(input, options) : Promise.reject(errors.shuttingDown());
  }

  /** A read of this server's local state, with no freshness guarantee. */
  localQuery<O = unknown>(input: unknown): Promise<O> {
    return this.running ? this.raft.localQuery<O>(input) : Promise.reject(errors.shuttingDown());
  }

  /** Make this (fresh) server a one-member cluster. */
  createCluster(): Promise<{ members: string[] }> {
    return this.running ? this.raft.createCluster() : Promise.reject(errors.shuttingDown());
  }

  /** Add a server (as a learner, promoted once caught up); resolves with the members once it is a voter. */
  addServer(addr: string, options: { timeoutMs?: number } = {}): Promise<{ members: string[] }> {
    return this.promise('AddServer', { addr, ...options });
  }

  /** Remove a server; resolves with the members once the removal committed. */
  removeServer(addr: string, options: { timeoutMs?: number } = {}): Promise<{ members: string[] }> {
    return this.promise('RemoveServer', { addr, ...options });
  }

  /** Snapshot the state machine now and compact the log. */
  takeSnapshot(): Promise<{ snapshotIndex: number }> {
    return this.promise('TakeSnapshot', {});
  }

  /** This server's state (add `stateHash: true` for a hash of the replicated state). */
  getServerState(options: { stateHash?: boolean } = {}): Promise<ServerState> {
    return this.promise('GetServerState', options);
  }

  /** Move leadership to `target` (default: the most caught-up other voter). */
  transferLeadership(target?: string, options: { timeoutMs?: number } = {}): Promise<{ leader: string }> {
    return this.promise('TransferLeadership', target === undefined ? options : { addr: target, ...options });
  }

  /** Call any JSON-RPC method by name with its params (as a client would). */
  call<T = unknown>(method: string, params?: unknown): Promise<T> {
    return this.promise(method, params);
  }
}

async function readMeta(dir: string): Promise<{ id: string; clusterName?: string } | null> {
  try {
    const v = JSON.parse(await fs.readFile(join(dir, META_FILE), 'utf8')) as { id?: unknown };
    return typeof v.id === 'string' ? (v as { id: string }) : null;
  } catch {
    return null;
  }
}

async function writeMeta(dir: string, meta: { id: string; clusterName: string }): Promise<void> {
  const file = join(dir, META_FILE);
  const existing = await readMeta(dir);
  if (existing?.id === meta.id) return;
  await fs.writeFile(`${file}.tmp`, `${JSON.stringify(meta)}\n`);
  await fs.rename(`${file}.tmp`, file);
}
