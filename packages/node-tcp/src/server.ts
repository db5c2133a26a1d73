/**
 * The server: one `@raft/runtime` node on TCP: it opens the data directory, listens, tells peer, JSON-RPC, HTTP and
 * WebSocket connections apart, and hands Raft traffic to the runtime and client calls to `methods.ts`. Everything
 * about Raft itself (the action loop, durability, snapshots, forwarding, client answers) is in `@raft/runtime`.
 *
 * This file is the lifecycle (start, stop, kill) and the wiring between the parts: options and counters are in
 * `server-types.ts`, the data directory in `data-dir.ts`, protocol sniffing and connection limits in
 * `connections.ts`, peers in `transport.ts`, clients in `rpc.ts`.
 *
 * @packageDocumentation
 */

import { EventEmitter } from 'node:events';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import type { RaftOptions } from '@raft/core';
import {
  type ApplyOutcome,
  consoleLogger,
  ErrorCode,
  errors,
  type Logger,
  RaftRuntime,
  type RaftStorage,
  RpcError,
  type RuntimeRequest,
} from '@raft/runtime';
import type { RecoveryReport } from '@raft/storage-jsonl';
import { exposureProblem, openClientPortWarning, splitAddress } from './address.js';
import { authorize, type Caller, CredentialStore, IN_PROCESS_CALLER, unauthenticated } from './auth.js';
import { IncomingConnections, SNIFF_TIMEOUT_MS } from './connections.js';
import { claimDataDir, ensureDataDir, openDataDir, writeMeta } from './data-dir.js';
import { toRuntimeRequest } from './methods.js';
import { copyRecovery, reportRecovery, type ServerRecovery } from './recovery.js';
import { RpcFrontend } from './rpc.js';
import {
  type ApplyOptions,
  newServerCounters,
  type ServerCounters,
  type ServerOptions,
  type ServerState,
} from './server-types.js';
import { refusePlainText, ServerTls, type TlsOptions } from './tls.js';
import { PeerTransport } from './transport.js';

/** How often a server checks its credentials file for changes, in ms. */
const CREDENTIALS_POLL_MS = 2000;
/** Every client's caller when no credentials file is configured. */
const ANONYMOUS_ADMIN: Caller = Object.freeze({ name: 'anonymous', role: 'admin' });

export type { RaftStorage };

type Done = (o: ApplyOutcome) => void;

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
  /** Connections not handed to a protocol handler yet (held while starting, then sniffed). */
  private readonly incoming: IncomingConnections;
  private running = false;
  private started = false;
  /** The client tokens (null: no client authentication). */
  private credentials: CredentialStore | null = null;
  /** TLS on the port and on peer links (null: plain text). */
  private tls: ServerTls | null = null;
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
  readonly counters: ServerCounters = newServerCounters();

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
    this.incoming = new IncomingConnections({
      running: () => this.running,
      limits: () => this.limits,
      peer: (sock, head) => this.transport.accept(sock, head),
      http: (sock, head) => this.frontend.acceptHttp(sock, head),
      lines: (sock, head) => this.frontend.acceptLines(sock, head),
      refuse: (sock) => this.frontend.refuse(sock, false),
      tls: () => this.tls,
      refusePlain: (sock, head) => refusePlainText(sock, head, this.log),
    });
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
    const exposure = exposureProblem({ ...this.options, tls: this.options.tls !== undefined });
    if (exposure !== null) throw new RpcError(ErrorCode.INVALID_PARAMS, exposure);
    const o = this.options;
    // Credentials and TLS material are checked before anything is opened: a typo must not start an open server.
    this.credentials = o.credentialsFile === undefined ? null : new CredentialStore(o.credentialsFile, this.log);
    const openPort = openClientPortWarning(o);
    if (openPort !== null) this.log.warn(openPort);
    this.tls =
      o.tls === undefined
        ? null
        : new ServerTls(
            o.tls,
            Math.min(
              SNIFF_TIMEOUT_MS,
              (o.clientIdleTimeoutMs ?? 0) > 0 ? (o.clientIdleTimeoutMs as number) : SNIFF_TIMEOUT_MS,
            ),
            (sock) => this.incoming.acceptDecrypted(sock),
            this.log,
          );
    this.started = true;
    const addr = splitAddress(o.address) as { host: string; port: number };
    // The id is recorded in the data directory so a restart with another address cannot pose as another node.
    let port = o.dataDir === undefined ? addr.port : await claimDataDir(o.dataDir, o.address);
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
      if (o.dataDir !== undefined) await ensureDataDir(o.dataDir);
      storage = o.storage ?? (await openDataDir(o.dataDir as string, o.storageSync ?? true));
      // A storage of the user's may not report repairs; storage-jsonl does.
      this.recovery = reportRecovery(storage as { recovery?: RecoveryReport }, this.log);
      this.incoming.holdNew();
      const l = createTcpServer({ noDelay: true }, (sock) => this.incoming.accept(sock));
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
      tls: this.tls,
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
        dispatch: (m, p, d, caller) => this.dispatch(m, p, d, caller),
        authenticate: (token) => this.authenticate(token),
        authorize: (type, caller) => authorize({ type } as RuntimeRequest, caller, this.credentials),
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
    this.credentials?.watch(CREDENTIALS_POLL_MS);
    this.running = true;
    this.startedAt = Date.now();
    this.log.info('server started', { id: this._id, term: runtime.node.currentTerm, applied: runtime.appliedIndex });
    this.incoming.serveHeld();
  }

  /** Undo a start that failed: close the port, drop held connections, close storage this server opened. */
  private async abortStart(listener: TcpServer | undefined, storage: RaftStorage | undefined): Promise<void> {
    listener?.close();
    this.listener = null;
    this.incoming.dropHeld();
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
    this.credentials?.stop();
    this.transport.close();
    this.frontend.close();
    this.incoming.closeAll();
    const listener = this.listener;
    this.listener = null;
    const closed = new Promise<void>((r) => (listener ? listener.close(() => r()) : r()));
    await this.runtime?.stop(graceful);
    await closed;
    this.log.info('server stopped', { id: this._id });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // JSON-RPC
  // ---------------------------------------------------------------------------------------------------------------

  /**
   * @internal Run a JSON-RPC method for `caller` (`done` is called exactly once). Client connections pass who they
   * authenticated as (null: anonymous); the in-process API is the embedding program's, so an admin.
   */
  dispatch(method: string, params: unknown, done: Done, caller: Caller | null = IN_PROCESS_CALLER): void {
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
    const refused = authorize(request, caller, this.credentials);
    if (refused !== null) {
      done({ ok: false, error: refused });
      return;
    }
    if (request.type === 'state') {
      // GetServerState: the runtime's state (and hash) plus the server's own fields.
      rt.submit(request, (o) => done(o.ok ? { ok: true, output: { ...this.state(), ...(o.output as object) } } : o));
      return;
    }
    rt.submit(request, done);
  }

  /** The caller a client's token stands for (anyone is an admin when no credentials file is configured). */
  private authenticate(token: unknown): Caller | RpcError {
    if (this.credentials === null) return ANONYMOUS_ADMIN;
    return this.credentials.authenticate(token) ?? unauthenticated('the token is not in the credentials file');
  }

  /**
   * Re-read the credentials file now (servers also re-read it within seconds of a change; `raft-kvs serve` calls
   * this on SIGHUP). Returns whether the tokens changed.
   */
  reloadCredentials(): boolean {
    return this.credentials?.reload(true) ?? false;
  }

  /**
   * Use new TLS material (a renewed certificate, or a CA bundle during a CA rotation) for connections made from now
   * on; open connections keep theirs.
   *
   * @throws RpcError `INVALID_PARAMS` when the server was started without TLS.
   */
  reloadTls(tls: TlsOptions): void {
    if (this.tls === null) throw new RpcError(ErrorCode.INVALID_PARAMS, 'this server was started without TLS');
    this.tls.update(tls);
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
