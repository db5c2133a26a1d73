/**
 * The server: one `@raft/core` node driven by real timers, `@raft/storage-jsonl` and the peer transport, with the
 * JSON-RPC front end and an in-process API.
 *
 * @packageDocumentation
 */

import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import {
  type Action,
  type ClusterConfig,
  type Index,
  isVoter,
  type Message,
  type NodeId,
  RaftNode,
  type RaftOptions,
  type ReadId,
  type Role,
  type SnapshotMeta,
  type Term,
} from '@raft/core';
import {
  type Codec,
  isStorageError,
  type JsonlStorage,
  openStorage,
  type JsonValue as StorageJson,
} from '@raft/storage-jsonl';
import { ErrorCode, errors, RpcError } from './errors.js';
import { PEER_MAGIC } from './frame.js';
import { consoleLogger, type Logger } from './logger.js';
import {
  type ApplyKind,
  type ApplyOutcome,
  type Command,
  type Machine,
  ReplicatedMachine,
  toJsonText,
} from './machine.js';
import { invalidParams, RpcFrontend } from './rpc.js';
import { type PeerLink, PeerTransport, splitAddress } from './transport.js';
import type { ForwardOp, ForwardReply, ForwardRequest } from './wire.js';

/**
 * The storage the server drives: the subset of `@raft/storage-jsonl`'s `JsonlStorage<Command>` it uses. Pass your
 * own implementation as {@link ServerOptions.storage} to keep the log somewhere else.
 */
export type RaftStorage = Pick<
  JsonlStorage<Command>,
  | 'state'
  | 'saveHardState'
  | 'appendEntries'
  | 'saveSnapshot'
  | 'compact'
  | 'beginSnapshotReceive'
  | 'readSnapshot'
  | 'readSnapshotChunk'
  | 'close'
>;

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

/** Per-follower replication progress, as the leader sees it. */
export interface FollowerProgress {
  /**
   * Highest log index the follower has acknowledged as matching the leader's log and persisted (the Raft paper's
   * `matchIndex[]`). 0 until the follower's first successful answer in this leader's term.
   */
  matchIndex: number;
  /**
   * Index of the next entry the leader will send it (the paper's `nextIndex[]`). In `replicate` it runs ahead of
   * `matchIndex + 1` by the entries still in flight.
   */
  nextIndex: number;
  /** `lastLogIndex - matchIndex`: entries the follower still lacks. */
  lag: number;
  /**
   * How the leader feeds it: `probe` (its log end is unknown: one AppendEntries at a time, backing off on
   * rejections), `replicate` (matched: entries are streamed, pipelined) or `snapshot` (it needs compacted entries:
   * a snapshot is being sent in chunks).
   */
  state: 'probe' | 'replicate' | 'snapshot';
  /**
   * AppendEntries messages sent but not yet acknowledged (only in `replicate`; 0 otherwise), at most
   * `raft.maxInflightMessages` (default 64).
   */
  inflight: number;
}

/** Counters useful to an operator (monotonic since start, except `clientConnections`). */
export interface ServerCounters {
  /**
   * `command` entries applied to the state machine on this node: every committed command, whoever proposed it (so
   * followers count too). No-op and config entries, and commands covered by an installed snapshot, are not counted.
   */
  commandsApplied: number;
  /** Linearizable `Query` requests answered by this node, counted once their read index was confirmed. */
  queriesServed: number;
  /** `LocalQuery` requests answered from this node's applied state, without any round trip (may be stale). */
  localQueriesServed: number;
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
   * Leader-only requests (commands and membership changes) this node forwarded to the leader it knows; each
   * forwarding counts, including a retry after a leader change.
   */
  forwardedOut: number;
  /** Forwarded requests received from other nodes (to run here as leader, or to pass on). */
  forwardedIn: number;
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
   * Log appends made durable: one per core `appendEntries` action, counted when storage reports it written. The
   * storage groups appends queued together into one fsync, so this is not a count of fsyncs.
   */
  appendBatches: number;
  /** Log entries in those appends (`entriesPersisted / appendBatches` is the mean batch size). */
  entriesPersisted: number;
  /** Snapshots of this node's own state machine saved to storage (automatic or `TakeSnapshot`). */
  snapshotsTaken: number;
  /** Snapshots received from a leader and restored into the state machine. */
  snapshotsInstalled: number;
  /**
   * Snapshot transfers this node started to a follower as leader, counted when the first chunk is read; a
   * transfer restarted from offset 0 counts again.
   */
  snapshotsSent: number;
  /**
   * Peer connections refused: incoming ones with a bad protocol version, cluster name or secret, a handshake not
   * finished in time or a malformed frame, and outgoing ones whose peer did not prove the shared secret.
   */
  peerConnectionsRejected: number;
  /** Client connections (JSON-RPC over TCP and WebSocket) open right now: a gauge, not a monotonic counter. */
  clientConnections: number;
  /**
   * Times the leader this node knows of changed, including to or from "no leader" (`null`): a leader lost and a new
   * one found count as two.
   */
  leaderChanges: number;
}

/** The `GetServerState` result. */
export interface ServerState {
  /** This server's id in the cluster: its `host:port` address ({@link ServerOptions.address}). */
  id: string;
  /** The cluster name peers must present in their handshake ({@link ServerOptions.clusterName}). */
  clusterName: string;
  /**
   * `follower`, `candidate` or `leader`. A node running a PreVote round reports `candidate`; learners and nodes
   * outside the configuration are always `follower`.
   */
  role: Role;
  /** `none`: not (yet, or any more) in the configuration. */
  membership: 'voter' | 'learner' | 'none';
  /**
   * Current term of this node (the Raft paper's `currentTerm`), 0 on a fresh node. Messages of a new term are held
   * back until the term is durable.
   */
  term: number;
  /** The candidate this node voted for in `term` (the paper's `votedFor`), or `null` if it has not voted in it. */
  votedFor: string | null;
  /**
   * The leader this node currently follows (its own id when it is the leader), or `null` while none is known (an
   * election is under way, or the node is cut off).
   */
  leader: string | null;
  /** Voters and learners of the latest configuration. */
  members: string[];
  /**
   * Voting members of the latest configuration in the log (C_new while joint). A configuration takes effect when
   * appended, so this may not be committed yet.
   */
  voters: string[];
  /** Non-voting members of the latest configuration: they receive the log but neither vote nor count in quorums. */
  learners: string[];
  /** Only while a joint configuration is in effect. */
  oldVoters?: string[];
  /**
   * Highest log index this node knows to be committed (the paper's `commitIndex`); a follower's lags the leader's
   * until the next AppendEntries tells it.
   */
  commitIndex: number;
  /**
   * Highest log index applied to this node's state machine (the paper's `lastApplied`), or restored from a
   * snapshot; at most `commitIndex`. `LocalQuery` reads see the state at this index.
   */
  appliedIndex: number;
  /**
   * First index still held in the log: `snapshotIndex + 1` once the log is compacted, 1 before. Greater than
   * `lastLogIndex` when the log holds no entries.
   */
  firstLogIndex: number;
  /** Index of the last entry in the log, committed or not, durable or not (`snapshotIndex` when none follow it). */
  lastLogIndex: number;
  /** Term of the entry at `lastLogIndex` (the snapshot's term when the log after it is empty; 0 for none). */
  lastLogTerm: number;
  /** Highest log index durable (fsynced) on this node's disk; lags `lastLogIndex` while appends are being written. */
  persistedIndex: number;
  /** Last log index covered by this node's latest snapshot (taken or installed, as in storage); 0 when none. */
  snapshotIndex: number;
  /** Term of the entry at `snapshotIndex`; 0 when there is no snapshot. */
  snapshotTerm: number;
  /** Leader only. */
  followers?: Record<string, FollowerProgress>;
  /** Exactly-once sessions in the replicated state. */
  sessions: number;
  /** Only when asked for: a hash of the replicated state at `appliedIndex`. */
  stateHash?: string;
  /** A copy of the operator counters at the time of the call (see {@link ServerCounters}). */
  counters: ServerCounters;
  /** Wall-clock milliseconds since {@link RaftServer.start} brought this server up. */
  uptimeMs: number;
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

/** A request in progress: settles once, on its answer or its timeout. */
class Pending {
  settled = false;
  /** What the request is waiting for, which decides the timeout error. */
  phase: 'waiting' | 'proposed' | 'forwarded' | 'reading' = 'waiting';
  /** Why it is waiting (when `phase` is `waiting`). */
  waitReason: 'leader' | 'config' | 'transfer' = 'leader';
  retry: () => void = () => undefined;
  /** Whether repeating the request cannot do harm (exactly-once commands, membership changes). */
  idempotent = false;
  /**
   * An earlier attempt may have taken effect: it was forwarded and the connection was lost before the answer, and
   * the request is being retried. From then on no answer may say "not applied": that would only be true of the
   * retry (see {@link Pending.settle}).
   */
  maybeApplied = false;
  /** The id of the forwarded copy while `phase` is `forwarded`. */
  forwardId = 0;
  /** What a timeout means for this request, when the generic text would mislead. */
  timeoutHint: string | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly deadline: number;

  constructor(
    readonly what: string,
    readonly mutates: boolean,
    readonly timeoutMs: number,
    private readonly done: Done,
    onTimeout: (p: Pending) => ApplyOutcome,
    private readonly release: () => void,
  ) {
    this.deadline = Date.now() + timeoutMs;
    this.timer = setTimeout(() => this.settle(onTimeout(this)), timeoutMs);
  }

  settle(o: ApplyOutcome): void {
    if (this.settled) return;
    if (this.maybeApplied && !o.ok && saysNotApplied(o.error)) o = fail(earlierAttemptUnknown(this.what, o.error));
    this.settled = true;
    clearTimeout(this.timer);
    this.release();
    this.done(o);
  }

  get remainingMs(): number {
    return Math.max(1, this.deadline - Date.now());
  }
}

const fail = (error: RpcError): ApplyOutcome => ({ ok: false, error });
const okJson = (output: unknown): ApplyOutcome => ({ ok: true, output, json: toJsonText(output) });

/** Log payloads are already JSON values: store them as they are (no per-entry walk). */
const commandCodec: Codec<Command> = {
  encode: (c) => c as unknown as StorageJson,
  decode: (j) => j as unknown as Command,
};

const META_FILE = 'node-tcp.json';

function membersOf(c: ClusterConfig): string[] {
  const out = [...c.voters];
  for (const l of c.learners) if (!out.includes(l)) out.push(l);
  for (const o of c.oldVoters ?? []) if (!out.includes(o)) out.push(o);
  return out;
}

function isMember(c: ClusterConfig, id: NodeId): boolean {
  return isVoter(c, id) || c.learners.includes(id);
}

/** Create a server (call {@link RaftServer.start} to run it). */
export function createServer(options: ServerOptions): RaftServer {
  return new RaftServer(options);
}

/**
 * A Raft server: one cluster member with its storage, its peer connections and its client port.
 * Events: `stateChanged` `{role, term, leader}`, `membershipChanged` `{voters, learners}`.
 */
export class RaftServer extends EventEmitter {
  private readonly o: Required<
    Omit<ServerOptions, 'storage' | 'dataDir' | 'secret' | 'raft' | 'logger' | 'listen' | 'machine'>
  > & { secret: string | undefined; listen: string | undefined };
  private readonly log: Logger;
  private readonly rm: ReplicatedMachine;
  private _id: string;
  private node!: RaftNode<Command>;
  private storage!: RaftStorage;
  private transport!: PeerTransport;
  private frontend!: RpcFrontend;
  private listener: TcpServer | null = null;
  private readonly conns = new Set<Socket>();
  /** Connections accepted while {@link RaftServer.start} finishes (null when not starting). */
  private early: Socket[] | null = null;
  private running = false;
  private started = false;
  private failure: RpcError | null = null;
  private startedAt = 0;

  // Driver state.
  private scheduled = false;
  private flushQueued = false;
  private readonly flushOut = (): void => {
    this.flushQueued = false;
    if (!this.running) return;
    this.transport.flush();
    this.frontend.flushPending();
  };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private hsWritten = 0;
  private hsDurable = 0;
  private deferredSends: [number, Message<Command>][] = [];
  private appliedIndex = 0;
  private snapshotMeta: SnapshotMeta | null = null;
  private snapshotting: Promise<void> | null = null;
  private autoSnapshotRetryAt = 0;
  private receiver: ReturnType<RaftStorage['beginSnapshotReceive']> | null = null;
  private receiveChain: Promise<void> = Promise.resolve();
  private lastLeader: NodeId | null = null;
  private lastRole: Role = 'follower';

  // Requests.
  private inflight = 0;
  private readonly proposals = new Map<Index, { term: Term; p: Pending }>();
  private readonly reads = new Map<ReadId, { p: Pending; input: unknown }>();
  private readSeq = 0;
  private readonly forwards = new Map<number, Pending>();
  private forwardSeq = 0;
  private waiters: Pending[] = [];
  private waiterTimer: ReturnType<typeof setTimeout> | undefined;
  private memberWaits: { p: Pending; check: () => ApplyOutcome | null }[] = [];
  private armedPromotions = new Set<NodeId>();
  private armedTerm = -1;

  /** Operator counters (see {@link ServerCounters}). */
  readonly counters: ServerCounters = {
    commandsApplied: 0,
    queriesServed: 0,
    localQueriesServed: 0,
    rpcRequests: 0,
    rpcErrors: 0,
    forwardedOut: 0,
    forwardedIn: 0,
    messagesSent: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    appendBatches: 0,
    entriesPersisted: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotsSent: 0,
    peerConnectionsRejected: 0,
    clientConnections: 0,
    leaderChanges: 0,
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
    this.o = {
      address: options.address,
      listen: options.listen,
      heartbeatMs: options.heartbeatMs ?? 100,
      electionTimeoutMs: options.electionTimeoutMs ?? 1000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      autoSnapshotEntries: options.autoSnapshotEntries ?? 100_000,
      maxFrameBytes: options.maxFrameBytes ?? 64 * 1024 * 1024,
      maxLineBytes: options.maxLineBytes ?? 16 * 1024 * 1024,
      maxPeerBufferBytes: options.maxPeerBufferBytes ?? 256 * 1024 * 1024,
      maxInflightRequests: options.maxInflightRequests ?? 100_000,
      maxClientConnections: options.maxClientConnections ?? 10_000,
      clientIdleTimeoutMs: options.clientIdleTimeoutMs ?? 300_000,
      maxClientOutputBytes: options.maxClientOutputBytes ?? 64 * 1024 * 1024,
      maxBatchRequests: options.maxBatchRequests ?? 10_000,
      clusterName: options.clusterName ?? 'raft',
      secret: options.secret,
      storageSync: options.storageSync ?? true,
      maxSessions: options.maxSessions ?? 100_000,
    };
    if (this.o.heartbeatMs <= 0 || this.o.electionTimeoutMs < 2 * this.o.heartbeatMs) {
      throw new RpcError(ErrorCode.INVALID_PARAMS, 'electionTimeoutMs must be at least twice heartbeatMs');
    }
    this._id = options.address;
    this.log = options.logger ?? consoleLogger('warn', options.address);
    this.rm = new ReplicatedMachine(options.machine, this.o.maxSessions);
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
    const addr = splitAddress(this.o.address) as { host: string; port: number };
    let port = addr.port;
    if (this.options.dataDir !== undefined) {
      // The id is recorded in the data directory so a restart with another address cannot pose as another node.
      const known = await readMeta(this.options.dataDir);
      if (known !== null) {
        const k = splitAddress(known.id);
        if (port === 0 && k !== null && k.host === addr.host) port = k.port;
        else if (known.id !== this.o.address) {
          throw new RpcError(
            ErrorCode.INVALID_PARAMS,
            `data directory ${this.options.dataDir} belongs to server ${known.id}, not ${this.o.address}`,
          );
        }
      }
    }
    const listenAddr = this.o.listen === undefined ? { host: addr.host, port } : splitAddress(this.o.listen);
    if (listenAddr === null) throw new RpcError(ErrorCode.INVALID_PARAMS, 'listen must be "host:port"');
    // Storage and the snapshot first, the port last: the port must accept only once the server can serve (the slow
    // part of a start is opening the log and restoring the snapshot, tens of ms to seconds).
    let storage: RaftStorage | undefined;
    let listener: TcpServer | undefined;
    try {
      if (this.options.dataDir !== undefined) await fs.mkdir(this.options.dataDir, { recursive: true });
      storage =
        this.options.storage ??
        (await openStorage<Command>(this.options.dataDir as string, {
          sync: this.o.storageSync,
          codec: commandCodec,
        }));
      this.storage = storage;
      const st = storage.state;
      if (st.snapshot !== null) {
        const snap = await storage.readSnapshot();
        if (snap !== null) this.rm.restore(snap.data);
        this.snapshotMeta = st.snapshot;
        this.appliedIndex = st.snapshot.index;
      }
      // Port 0 needs the bound port for the id (and the data directory's record of it), so a few steps remain
      // after listening; connections accepted meanwhile wait in `early` and are served once the server runs.
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
      if (this.options.dataDir !== undefined) {
        await writeMeta(this.options.dataDir, { id: this._id, clusterName: this.o.clusterName });
      }
      const raftOptions: RaftOptions = {
        electionTicks: Math.max(2, Math.round(this.o.electionTimeoutMs / this.o.heartbeatMs)),
        // A snapshot chunk travels in one frame (it cannot be split like an AppendEntries).
        snapshotChunkBytes: Math.max(1024, Math.min(1024 * 1024, Math.floor(this.o.maxFrameBytes / 2))),
        ...this.options.raft,
      };
      this.node =
        st.hardState.term === 0 && st.snapshot === null && st.entries.length === 0
          ? RaftNode.start<Command>(this._id, raftOptions)
          : RaftNode.restart<Command>(this._id, st, raftOptions);
    } catch (e) {
      listener?.close();
      this.listener = null;
      for (const sock of this.early ?? []) sock.destroy();
      this.early = null;
      // Storage this server opened is closed again; storage the caller passed in stays the caller's.
      if (storage !== undefined && this.options.storage === undefined) await storage.close().catch(() => undefined);
      throw e;
    }
    this.transport = new PeerTransport({
      id: this._id,
      clusterName: this.o.clusterName,
      secret: this.o.secret,
      maxFrameBytes: this.o.maxFrameBytes,
      maxBufferBytes: this.o.maxPeerBufferBytes,
      backoffMinMs: Math.min(50, this.o.heartbeatMs),
      backoffMaxMs: Math.max(1000, this.o.electionTimeoutMs),
      handshakeTimeoutMs: Math.max(2000, 2 * this.o.electionTimeoutMs),
      // Well below a heartbeat, well above the time between two AppendEntries under load.
      commitNotifyDelayMs: Math.min(5, this.o.heartbeatMs / 4),
      lowWaterBytes: Math.min(this.o.maxPeerBufferBytes, 4 * 1024 * 1024),
      softFrameBytes: Math.max(1024, Math.min(1024 * 1024, Math.floor(this.o.maxFrameBytes / 4))),
      logger: this.log,
      counters: this.counters,
      onMessages: (ms) => this.onPeerMessages(ms),
      onForward: (link, r) => this.onForward(link, r),
      onReplies: (rs) => this.onReplies(rs),
      onUnsent: (rs) => this.onUnsent(rs),
      onLost: (ids) => this.onLost(ids),
    });
    this.frontend = new RpcFrontend(
      {
        dispatch: (m, p, d) => this.dispatch(m, p, d),
        stateJson: () => JSON.stringify(this.state()),
        counters: this.counters,
      },
      {
        maxLineBytes: this.o.maxLineBytes,
        maxOutputBytes: Math.min(8 * 1024 * 1024, Math.floor(this.o.maxClientOutputBytes / 2)),
        maxClientOutputBytes: this.o.maxClientOutputBytes,
        maxBatchRequests: this.o.maxBatchRequests,
        maxClientConnections: this.o.maxClientConnections,
        clientIdleTimeoutMs: this.o.clientIdleTimeoutMs,
        logger: this.log,
      },
    );
    this.running = true;
    this.startedAt = Date.now();
    this.lastLeader = this.node.leaderId;
    this.lastRole = this.node.role;
    this.log.info('server started', { id: this._id, term: this.node.currentTerm, applied: this.appliedIndex });
    const early = this.early ?? [];
    this.early = null;
    for (const sock of early) if (!sock.destroyed) this.onConnection(sock);
    this.kick();
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
    clearTimeout(this.timer);
    clearTimeout(this.waiterTimer);
    this.transport.close();
    this.frontend.close();
    for (const s of this.conns) s.destroy();
    this.conns.clear();
    const listener = this.listener;
    this.listener = null;
    const closed = new Promise<void>((r) => (listener ? listener.close(() => r()) : r()));
    this.failAll(errors.shuttingDown());
    if (graceful) await this.snapshotting?.catch(() => undefined);
    await this.receiver?.abort().catch(() => undefined);
    this.receiver = null;
    await this.storage.close().catch((e) => this.log.warn('closing storage failed', { error: (e as Error).message }));
    await closed;
    this.log.info('server stopped', { id: this._id });
  }

  private failAll(error: RpcError): void {
    const all: Pending[] = [
      ...[...this.proposals.values()].map((x) => x.p),
      ...[...this.reads.values()].map((x) => x.p),
      ...this.forwards.values(),
      ...this.waiters,
      ...this.memberWaits.map((w) => w.p),
    ];
    this.proposals.clear();
    this.reads.clear();
    this.forwards.clear();
    this.waiters = [];
    this.memberWaits = [];
    for (const p of all) p.settle(fail(error));
  }

  /** Storage failed: the node can no longer keep its promises, so it stops taking part (like a crash). */
  private fatal(e: unknown, as?: RpcError): void {
    if (this.failure !== null || !this.running) return;
    const message = (e as Error)?.message ?? String(e);
    this.log.error('the server stops taking part in the cluster', { error: message });
    this.failure = as ?? errors.storage(message);
    clearTimeout(this.timer);
    this.transport.close();
    this.failAll(this.failure);
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
    // Connections that have not said what they are yet are bounded in number and time (a peer sends its magic at
    // once, so only a flood of silent connections can make one wait; it is refused like a client would be).
    if (this.conns.size >= this.o.maxClientConnections) {
      this.frontend.refuse(socket, false);
      return;
    }
    this.conns.add(socket);
    socket.on('close', () => this.conns.delete(socket));
    socket.on('error', () => undefined);
    const silent = () => socket.destroy();
    const idle = this.o.clientIdleTimeoutMs;
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
  // The driver loop
  // ---------------------------------------------------------------------------------------------------------------

  private kick(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    if (!this.running || this.failure !== null) return;
    try {
      this.runActions();
      // Send what this turn produced in this same iteration rather than in a later setImmediate: clients get their
      // answers and followers their AppendEntries one loop iteration sooner. A microtask rather than right here so
      // that the storage, which starts its write on a microtask queued during the turn, hands its fdatasync to the
      // thread pool first: the leader's fsync then runs while the AppendEntries travel and followers write theirs.
      // Everything queued during the turn still leaves as one frame per peer and one write per client connection.
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(this.flushOut);
      }
    } catch (e) {
      // A bug (here, in the core or in the Machine): stop taking part rather than crash the hosting process.
      this.log.error('internal error in the driver loop', { error: (e as Error)?.stack ?? String(e) });
      this.fatal(e, errors.internal(`the server stopped taking part in the cluster: ${(e as Error)?.message ?? e}`));
    }
  }

  private runActions(): void {
    let configApplied = false;
    let leaderChanged = false;
    const actions: Action<Command>[] = this.node.takeActions();
    for (const a of actions) {
      switch (a.type) {
        case 'persistHardState': {
          const seq = ++this.hsWritten;
          this.storage.saveHardState(a.hardState).then(
            () => {
              this.hsDurable = seq;
              this.flushDeferred();
            },
            (e) => this.fatal(e),
          );
          break;
        }
        case 'appendEntries': {
          const last = a.entries[a.entries.length - 1];
          const n = a.entries.length;
          // Written in the background; the storage groups everything queued meanwhile into one fsync.
          this.storage.appendEntries(a.entries).then(
            () => {
              if (!this.running) return;
              this.counters.appendBatches++;
              this.counters.entriesPersisted += n;
              this.node.persisted(last.index, last.term);
              this.kick();
            },
            (e) => this.fatal(e),
          );
          break;
        }
        case 'send':
          // A message may speak in a term (or carry a vote) whose hard state is not on disk yet: hold it back.
          if (this.hsDurable < this.hsWritten || this.deferredSends.length > 0) {
            this.deferredSends.push([this.hsWritten, a.message]);
          } else this.transport.send(a.message);
          break;
        case 'setTimer': {
          const ms =
            a.kind === 'heartbeat'
              ? this.o.heartbeatMs
              : this.o.electionTimeoutMs + Math.random() * this.o.electionTimeoutMs;
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.onTimer(), ms);
          break;
        }
        case 'apply':
          for (const e of a.entries) {
            this.appliedIndex = e.index;
            if (e.type === 'command') this.applyCommand(e.index, e.term, e.command);
            else {
              if (e.type === 'config') configApplied = true;
              const prop = this.proposals.get(e.index);
              if (prop !== undefined) {
                this.proposals.delete(e.index);
                prop.p.settle(fail(proposalLost()));
              }
            }
          }
          break;
        case 'readReady': {
          const r = this.reads.get(a.readId);
          if (r === undefined) break;
          this.reads.delete(a.readId);
          this.counters.queriesServed++;
          r.p.settle(this.rm.query(r.input, 'Query', this.appliedIndex));
          break;
        }
        case 'readFailed': {
          const r = this.reads.get(a.readId);
          if (r === undefined) break;
          this.reads.delete(a.readId);
          r.p.phase = 'waiting';
          this.waitLeader(r.p);
          break;
        }
        case 'readSnapshotChunk':
          this.readSnapshotChunk(a.to, a.snapshot, a.offset, a.maxBytes);
          break;
        case 'saveSnapshotChunk':
          this.saveSnapshotChunk(a.snapshot, a.offset, a.data);
          break;
        case 'installSnapshot':
          this.installSnapshot(a.snapshot);
          break;
        case 'stateChanged':
          if (a.leaderId !== this.lastLeader || a.role !== this.lastRole) {
            if (a.leaderId !== this.lastLeader) this.counters.leaderChanges++;
            leaderChanged = true;
            this.lastLeader = a.leaderId;
            this.lastRole = a.role;
            this.log.info('state changed', { role: a.role, term: a.term, leader: a.leaderId });
            this.emit('stateChanged', { role: a.role, term: a.term, leader: a.leaderId });
          }
          break;
      }
    }
    if (configApplied) {
      const c = this.node.committedConfig;
      this.emit('membershipChanged', { voters: [...c.voters], learners: [...c.learners] });
    }
    if (configApplied || leaderChanged) this.checkMemberWaits();
    if (leaderChanged && this.node.leaderId !== null) this.drainWaiters();
    this.maybeAutoSnapshot();
  }

  private flushDeferred(): void {
    if (!this.running) return;
    let i = 0;
    const q = this.deferredSends;
    while (i < q.length && q[i][0] <= this.hsDurable) this.transport.send(q[i++][1]);
    this.deferredSends = i === q.length ? [] : q.slice(i);
  }

  private onTimer(): void {
    if (!this.running || this.failure !== null) return;
    this.node.handleTimeout();
    this.maintain();
    this.kick();
  }

  /** Leader housekeeping: re-arm learner promotions (a new leader forgets pending ones). */
  private maintain(): void {
    if (this.node.role !== 'leader') return;
    if (this.armedTerm !== this.node.currentTerm) {
      this.armedTerm = this.node.currentTerm;
      this.armedPromotions.clear();
    }
    for (const l of this.node.config.learners) {
      if (this.armedPromotions.has(l)) continue;
      if (this.node.addServer(l).ok) this.armedPromotions.add(l);
    }
  }

  private applyCommand(index: Index, term: Term, command: Command): void {
    this.counters.commandsApplied++;
    const prop = this.proposals.get(index);
    if (prop === undefined) {
      this.rm.applyCommand(command, index, false);
      return;
    }
    this.proposals.delete(index);
    if (prop.term !== term) {
      // Another leader's entry took this index: ours was truncated and will never be applied.
      this.rm.applyCommand(command, index, false);
      prop.p.settle(fail(proposalLost()));
      return;
    }
    prop.p.settle(this.rm.applyCommand(command, index, true));
  }

  private onPeerMessages(messages: Message<Command>[]): void {
    if (!this.running || this.failure !== null) return;
    for (const m of messages) {
      try {
        this.node.handleMessage(m);
      } catch (e) {
        // The message passed validation but the core refused it: drop it, keep serving.
        this.log.warn('dropped a peer message the core refused', { from: m.from, type: m.type, error: String(e) });
      }
    }
    this.kick();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Snapshots
  // ---------------------------------------------------------------------------------------------------------------

  private maybeAutoSnapshot(): void {
    const every = this.o.autoSnapshotEntries;
    if (every <= 0 || this.snapshotting !== null || this.receiver !== null) return;
    if (this.appliedIndex - (this.snapshotMeta?.index ?? 0) < every || this.appliedIndex < this.autoSnapshotRetryAt) {
      return;
    }
    const at = this.appliedIndex;
    void this.takeSnapshotNow().catch(() => {
      // Do not retry on every turn: wait for another `every` entries.
      this.autoSnapshotRetryAt = at + every;
    });
  }

  /** Snapshot the state machine at the applied index, save it durably, then compact the log. */
  private takeSnapshotNow(): Promise<void> {
    if (this.snapshotting !== null) return this.snapshotting;
    const index = this.appliedIndex;
    if (index <= (this.snapshotMeta?.index ?? 0) || index === 0) return Promise.resolve();
    let meta: SnapshotMeta;
    try {
      meta = this.node.snapshotMeta(index);
    } catch (e) {
      return Promise.reject(e);
    }
    // The state machine captures its state at `index` now; encoding it may take several turns of the event loop
    // (a large state is serialised in slices so heartbeats keep flowing), and commands go on being applied meanwhile.
    let taken: Promise<Uint8Array>;
    try {
      taken = this.rm.snapshot();
    } catch (e) {
      this.log.error('the state machine failed to produce a snapshot', { index, error: String(e) });
      return Promise.reject(e);
    }
    const t0 = Date.now();
    let bytes = 0;
    // A leader's snapshot installed while this one was being encoded is newer: keep it, drop this one (storage would
    // refuse an older snapshot, and its log no longer holds the entries between the two).
    const superseded = () => !this.running || (this.snapshotMeta?.index ?? 0) >= meta.index;
    this.snapshotting = taken
      .then(
        (data): Promise<boolean> | boolean => {
          bytes = data.length;
          return superseded() ? false : this.storage.saveSnapshot(meta, data).then(() => true);
        },
        (e) => {
          this.log.error('the state machine failed to produce a snapshot', { index, error: String(e) });
          throw new SnapshotProductionError(e);
        },
      )
      .then(async (saved) => {
        if (!saved) {
          this.log.info('snapshot dropped: a newer one was installed meanwhile', { index: meta.index });
          return;
        }
        if (superseded()) return;
        this.snapshotMeta = meta;
        this.counters.snapshotsTaken++;
        const r = this.node.compactLog(meta);
        if (!r.ok) this.log.warn('log compaction refused', { index: meta.index, error: r.error.message });
        this.kick();
        await this.storage.compact(meta.index);
        this.log.info('snapshot taken', { index: meta.index, bytes, ms: Date.now() - t0 });
      })
      .catch((e) => {
        // A machine that cannot snapshot is reported to the caller (and auto-snapshot retries later); a storage
        // failure is fatal, as everywhere else.
        if (this.running && !(e instanceof SnapshotProductionError)) this.fatal(e);
        throw e instanceof SnapshotProductionError ? e.cause : e;
      })
      .finally(() => {
        this.snapshotting = null;
      });
    return this.snapshotting;
  }

  private readSnapshotChunk(to: NodeId, meta: SnapshotMeta, offset: number, maxBytes: number): void {
    this.storage.readSnapshotChunk(offset, maxBytes, meta.index).then(
      (data) => {
        if (!this.running || this.failure !== null) return;
        if (offset === 0) this.counters.snapshotsSent++;
        this.node.sendSnapshotChunk(to, meta, offset, data, data.length < maxBytes);
        this.kick();
      },
      // The snapshot was replaced meanwhile: the core restarts the transfer with the new one.
      (e) => this.log.debug?.('snapshot chunk unavailable', { to, index: meta.index, error: (e as Error).message }),
    );
  }

  private saveSnapshotChunk(meta: SnapshotMeta, offset: number, data: Uint8Array): void {
    if (offset === 0 || this.receiver === null) {
      const old = this.receiver;
      this.receiver = this.storage.beginSnapshotReceive(meta);
      if (old !== null) this.log.debug?.('restarting snapshot reception', { index: meta.index });
    }
    const receiver = this.receiver;
    this.receiveChain = this.receiveChain
      .then(() => receiver.write(offset, data))
      .catch((e) => {
        this.log.warn('saving a snapshot chunk failed', { error: (e as Error).message });
      });
  }

  private installSnapshot(meta: SnapshotMeta): void {
    const receiver = this.receiver;
    if (receiver === null) return;
    this.receiveChain = this.receiveChain
      .then(() => receiver.finish())
      .then(() => this.storage.readSnapshot())
      .then((snap) => {
        if (this.receiver === receiver) this.receiver = null;
        if (!this.running || snap === null) return;
        this.rm.restore(snap.data);
        this.appliedIndex = meta.index;
        this.snapshotMeta = meta;
        this.counters.snapshotsInstalled++;
        this.node.snapshotInstalled(meta);
        // Proposals covered by the snapshot: their outcome is in the snapshot, not in an apply action.
        for (const [index, prop] of this.proposals) {
          if (index > meta.index) continue;
          this.proposals.delete(index);
          prop.p.settle(fail(errors.timeout('the command', prop.p.timeoutMs, false)));
        }
        this.log.info('snapshot installed', { index: meta.index, bytes: snap.data.length });
        this.kick();
      })
      .catch((e) => this.fatal(e));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Requests
  // ---------------------------------------------------------------------------------------------------------------

  private track(what: string, mutates: boolean, timeoutMs: number | undefined, done: Done): Pending | null {
    if (!this.running) {
      done(fail(errors.shuttingDown()));
      return null;
    }
    if (this.failure !== null) {
      done(fail(this.failure));
      return null;
    }
    if (this.inflight >= this.o.maxInflightRequests) {
      done(
        fail(
          new RpcError(ErrorCode.OVERLOADED, `too many requests in progress (${this.inflight}); retry later`, {
            notApplied: true,
          }),
        ),
      );
      return null;
    }
    this.inflight++;
    return new Pending(
      what,
      mutates,
      timeoutMs ?? this.o.requestTimeoutMs,
      done,
      (p) => this.timeoutOutcome(p),
      () => {
        this.inflight--;
      },
    );
  }

  private timeoutOutcome(p: Pending): ApplyOutcome {
    // A late answer to a forwarded request has nobody to go to: forget it now rather than when (if) it arrives.
    if (p.phase === 'forwarded') this.forwards.delete(p.forwardId);
    if (p.phase === 'waiting') {
      if (p.waitReason === 'config') {
        return fail(
          new RpcError(
            ErrorCode.CONFIG_CHANGE_IN_PROGRESS,
            `another membership change was still in progress after ${p.timeoutMs} ms; retry when it has finished`,
            { notApplied: true },
          ),
        );
      }
      if (p.waitReason === 'transfer') {
        return fail(
          new RpcError(
            ErrorCode.TRANSFER_IN_PROGRESS,
            `a leadership transfer was still in progress after ${p.timeoutMs} ms; retry`,
            { notApplied: true },
          ),
        );
      }
      if (!this.isMemberNow() && this.node.leaderId === null) return fail(errors.notAMember(this._id));
      return fail(
        new RpcError(
          ErrorCode.NO_LEADER,
          `no leader was known for ${p.timeoutMs} ms (election in progress, or a quorum of servers is unreachable); ${p.what} was not applied, retry later`,
          { leader: null, notApplied: true },
        ),
      );
    }
    if (p.phase === 'reading' && this.node.leaderId === null) {
      // The read was waiting for a leader to confirm it when time ran out.
      return fail(
        new RpcError(
          ErrorCode.NO_LEADER,
          `no leader could confirm the read within ${p.timeoutMs} ms (election in progress, or a quorum of servers is unreachable); retry later`,
          { leader: null, notApplied: true },
        ),
      );
    }
    if (p.timeoutHint !== undefined) {
      return fail(
        new RpcError(ErrorCode.TIMEOUT, `${p.what} did not finish within ${p.timeoutMs} ms: ${p.timeoutHint}`),
      );
    }
    return fail(errors.timeout(p.what, p.timeoutMs, !p.mutates || p.phase === 'reading'));
  }

  private isMemberNow(): boolean {
    return isMember(this.node.config, this._id) || (this.node.config.oldVoters ?? []).includes(this._id);
  }

  /** Retry `p` when a leader is known (checked on leader changes and every heartbeat interval). */
  private waitLeader(p: Pending, reason: Pending['waitReason'] = 'leader'): void {
    if (p.settled) return;
    p.phase = 'waiting';
    p.waitReason = reason;
    this.waiters.push(p);
    if (this.waiterTimer === undefined) {
      this.waiterTimer = setTimeout(() => {
        this.waiterTimer = undefined;
        this.drainWaiters();
      }, this.o.heartbeatMs);
    }
  }

  private drainWaiters(): void {
    if (!this.running) return;
    const list = this.waiters;
    this.waiters = [];
    for (const p of list) if (!p.settled) p.retry();
  }

  private checkMemberWaits(): void {
    const keep: typeof this.memberWaits = [];
    for (const w of this.memberWaits) {
      if (w.p.settled) continue;
      const r = w.check();
      if (r === null) keep.push(w);
      else w.p.settle(r);
    }
    this.memberWaits = keep;
  }

  /** Route a leader-only request: run it here, forward it to the leader, or wait for one. */
  private route(p: Pending, op: ForwardOp, hops: number, local: () => void): void {
    if (p.settled) return;
    if (this.node.role === 'leader') {
      local();
      return;
    }
    const leader = this.node.leaderId;
    if (leader !== null && leader !== this._id && hops < 3) {
      const id = ++this.forwardSeq;
      p.phase = 'forwarded';
      this.forwards.set(id, p);
      p.forwardId = id;
      this.counters.forwardedOut++;
      this.transport.forward(leader, [id, op, p.remainingMs, hops + 1]);
      return;
    }
    if (!this.isMemberNow() && this.node.lastLogIndex === 0 && leader === null) {
      p.settle(fail(errors.notAMember(this._id)));
      return;
    }
    this.waitLeader(p);
  }

  private submitCommand(p: Pending, cmd: Command, hops: number): void {
    p.retry = () => this.submitCommand(p, cmd, hops);
    p.idempotent = cmd.clientId !== undefined && cmd.seq !== undefined;
    const op: ForwardOp = { t: 'command', ...cmd };
    this.route(p, op, hops, () => {
      if (cmd.clientId !== undefined && cmd.seq !== undefined) {
        const prior = this.rm.lookup(cmd.clientId, cmd.seq);
        if (prior !== undefined) {
          p.settle(prior);
          return;
        }
      }
      const r = this.node.propose(cmd);
      if (r.ok) {
        p.phase = 'proposed';
        this.proposals.set(r.value.index, { term: r.value.term, p });
        this.kick();
        return;
      }
      this.waitLeader(p, r.error.code === 'TRANSFER_IN_PROGRESS' ? 'transfer' : 'leader');
    });
  }

  private submitQuery(p: Pending, input: unknown): void {
    p.retry = () => this.submitQuery(p, input);
    if (!this.isMemberNow() && this.node.leaderId === null && this.node.lastLogIndex === 0) {
      p.settle(fail(errors.notAMember(this._id)));
      return;
    }
    const readId = ++this.readSeq;
    p.phase = 'reading';
    this.reads.set(readId, { p, input });
    this.node.read(readId);
    this.kick();
  }

  private submitMembership(p: Pending, op: ForwardOp, hops: number): void {
    if (op.t === 'addServer') {
      p.timeoutHint = `${op.addr} may be a learner still catching up (is it running and reachable?); it is promoted to voter once it has caught up, and AddServer can be sent again to wait for that`;
    } else if (op.t === 'removeServer') {
      p.timeoutHint =
        'the removal may still complete; GetServerState shows the membership, RemoveServer can be sent again';
    } else if (op.t === 'transfer') {
      p.timeoutHint = 'the target did not take over in time; leadership stays where it is or moved elsewhere';
    }
    p.retry = () => this.submitMembership(p, op, hops);
    p.idempotent = true;
    this.route(p, op, hops, () => this.membershipOnLeader(p, op));
  }

  /** Settle `p` once `check` returns an outcome (checked as the log applies); `kick` runs the driver for a new proposal. */
  private waitMembership(p: Pending, check: () => ApplyOutcome | null, kick = false): void {
    p.phase = 'proposed';
    this.memberWaits.push({ p, check });
    if (kick) this.kick();
  }

  private membersResult(): ApplyOutcome {
    return okJson({ members: membersOf(this.node.committedConfig) });
  }

  private membershipOnLeader(p: Pending, op: ForwardOp): void {
    const n = this.node;
    if (op.t === 'addServer') {
      const done = () => {
        const c = n.committedConfig;
        return c.oldVoters === undefined && c.voters.includes(op.addr) ? this.membersResult() : null;
      };
      if (done() !== null) {
        p.settle(done() as ApplyOutcome);
        return;
      }
      if (isVoter(n.config, op.addr)) {
        this.waitMembership(p, done);
        return;
      }
      const r = n.addServer(op.addr);
      if (r.ok) {
        this.armedPromotions.add(op.addr);
        this.waitMembership(p, done, true);
        return;
      }
      this.refused(p, r.error.code, r.error.message);
      return;
    }
    if (op.t === 'removeServer') {
      const done = () => {
        const c = n.committedConfig;
        return c.oldVoters === undefined && !isMember(c, op.addr) ? this.membersResult() : null;
      };
      if (!isMember(n.config, op.addr) && !(n.config.oldVoters ?? []).includes(op.addr)) {
        if (done() !== null) {
          p.settle(done() as ApplyOutcome);
          return;
        }
        this.waitMembership(p, done);
        return;
      }
      if (!isMember(n.config, op.addr)) {
        this.waitMembership(p, done);
        return;
      }
      const r = n.removeServer(op.addr);
      if (r.ok) {
        this.waitMembership(p, done, true);
        return;
      }
      this.refused(p, r.error.code, r.error.message);
      return;
    }
    if (op.t === 'transfer') {
      let target = op.addr;
      if (target === undefined) {
        let best = -1;
        for (const [id, pr] of n.progress()) {
          if (id !== this._id && n.config.voters.includes(id) && pr.matchIndex > best) {
            best = pr.matchIndex;
            target = id;
          }
        }
        if (target === undefined) {
          p.settle(fail(new RpcError(ErrorCode.INVALID_MEMBER, 'there is no other voter to transfer leadership to')));
          return;
        }
      }
      if (target === this._id) {
        p.settle(okJson({ leader: this._id }));
        return;
      }
      const r = n.transferLeadership(target);
      if (r.ok) {
        const t = target;
        this.waitMembership(p, () => (n.leaderId === t ? okJson({ leader: t }) : null), true);
        return;
      }
      this.refused(p, r.error.code, r.error.message);
      return;
    }
  }

  private refused(p: Pending, code: string, message: string): void {
    switch (code) {
      case 'CONFIG_CHANGE_IN_PROGRESS':
      case 'LEADERSHIP_LOST':
        this.waitLeader(p, 'config');
        return;
      case 'TRANSFER_IN_PROGRESS':
        this.waitLeader(p, 'transfer');
        return;
      case 'NOT_LEADER':
        this.waitLeader(p, 'leader');
        return;
      default:
        p.settle(fail(new RpcError(ErrorCode.INVALID_MEMBER, `the membership change was refused: ${message}`)));
    }
  }

  // Forwarding -----------------------------------------------------------------------------------------------------

  private onForward(link: PeerLink, req: ForwardRequest): void {
    const [id, op, timeoutMs, hops] = req;
    this.counters.forwardedIn++;
    const done: Done = (o) => {
      if (o.ok) link.reply([id, 1, o.json ?? toJsonText(o.output)]);
      else link.reply([id, 0, o.error.code, o.error.message, (o.error.data as Record<string, unknown>) ?? null]);
    };
    const what = op.t === 'command' ? 'the command' : `the ${op.t} request`;
    const p = this.track(what, true, Math.min(timeoutMs, 10 * this.o.requestTimeoutMs), done);
    if (p === null) return;
    if (op.t === 'command') this.submitCommand(p, { input: op.input, clientId: op.clientId, seq: op.seq }, hops);
    else this.submitMembership(p, op, hops);
  }

  private onReplies(replies: ForwardReply[]): void {
    for (const r of replies) {
      const p = this.forwards.get(r[0]);
      if (p === undefined) continue;
      this.forwards.delete(r[0]);
      if (r[1] === 1) p.settle({ ok: true, output: undefined, json: r[2] });
      else p.settle(fail(new RpcError(r[2], r[3], r[4] ?? undefined)));
    }
  }

  private onLost(ids: number[]): void {
    for (const id of ids) {
      const p = this.forwards.get(id);
      if (p === undefined) continue;
      this.forwards.delete(id);
      if (p.idempotent) {
        // It may have reached the leader and be applied: retry (harmless), but never report "not applied" now.
        p.maybeApplied = true;
        this.waitLeader(p);
      } else {
        p.settle(
          fail(
            new RpcError(
              ErrorCode.TIMEOUT,
              `the connection to the leader was lost before it answered; the outcome of ${p.what} is unknown (retry with the same clientId and seq to make the retry safe)`,
              { notApplied: false },
            ),
          ),
        );
      }
    }
  }

  private onUnsent(requests: ForwardRequest[]): void {
    for (const r of requests) {
      const p = this.forwards.get(r[0]);
      if (p === undefined) continue;
      this.forwards.delete(r[0]);
      // It certainly did not leave: retrying cannot apply it twice.
      this.waitLeader(p);
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The JSON-RPC dispatcher
  // ---------------------------------------------------------------------------------------------------------------

  /** @internal Run a JSON-RPC method (`done` is called exactly once). */
  dispatch(method: string, params: unknown, done: Done): void {
    try {
      this.dispatchUnsafe(method, params, done);
    } catch (e) {
      this.log.error('internal error while handling a request', { method, error: (e as Error)?.stack ?? String(e) });
      done(fail(errors.internal((e as Error)?.message ?? String(e))));
    }
  }

  private dispatchUnsafe(method: string, params: unknown, done: Done): void {
    const obj = (params ?? {}) as Record<string, unknown>;
    const isObj = params === undefined || (typeof params === 'object' && params !== null && !Array.isArray(params));
    const timeoutMs = (): number | undefined | RpcError => {
      const t = obj.timeoutMs;
      if (t === undefined) return undefined;
      if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 3_600_000) {
        return invalidParams('"timeoutMs" must be a positive number of milliseconds (at most one hour)');
      }
      return t;
    };
    const addr = (): string | RpcError => {
      if (!isObj || typeof obj.addr !== 'string' || splitAddress(obj.addr) === null) {
        return invalidParams('"addr" must be a server address "host:port"');
      }
      return obj.addr;
    };
    switch (method) {
      case 'Apply': {
        if (!isObj || params === undefined) {
          done(fail(invalidParams('Apply needs {"kind", "input"}')));
          return;
        }
        const kind = obj.kind ?? 'Command';
        if (kind !== 'Command' && kind !== 'Query' && kind !== 'LocalQuery') {
          done(fail(invalidParams('"kind" must be "Command", "Query" or "LocalQuery"')));
          return;
        }
        if (!('input' in obj) || obj.input === undefined) {
          done(fail(invalidParams('"input" is missing')));
          return;
        }
        const t = timeoutMs();
        if (t instanceof RpcError) {
          done(fail(t));
          return;
        }
        const { clientId, seq } = obj;
        if (clientId !== undefined || seq !== undefined) {
          if (kind !== 'Command') {
            done(fail(invalidParams('"clientId" and "seq" apply to commands only')));
            return;
          }
          if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 256) {
            done(fail(invalidParams('"clientId" must be a non-empty string of at most 256 characters')));
            return;
          }
          if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
            done(fail(invalidParams('"seq" must be a non-negative integer')));
            return;
          }
        }
        this.applyInput(obj.input, kind, clientId as string | undefined, seq as number | undefined, t, done);
        return;
      }
      case 'CreateCluster': {
        if (!isObj) {
          done(fail(invalidParams('CreateCluster takes no params (or an object)')));
          return;
        }
        this.doCreateCluster(done);
        return;
      }
      case 'AddServer':
      case 'RemoveServer': {
        const a = addr();
        if (a instanceof RpcError) {
          done(fail(a));
          return;
        }
        const t = timeoutMs();
        if (t instanceof RpcError) {
          done(fail(t));
          return;
        }
        const p = this.track(`${method} ${a}`, true, t, done);
        if (p === null) return;
        this.submitMembership(p, { t: method === 'AddServer' ? 'addServer' : 'removeServer', addr: a }, 0);
        return;
      }
      case 'TransferLeadership': {
        if (!isObj) {
          done(fail(invalidParams('TransferLeadership takes {"addr"?}')));
          return;
        }
        let target: string | undefined;
        if (obj.addr !== undefined) {
          const a = addr();
          if (a instanceof RpcError) {
            done(fail(a));
            return;
          }
          target = a;
        }
        const t = timeoutMs();
        if (t instanceof RpcError) {
          done(fail(t));
          return;
        }
        const p = this.track('the leadership transfer', true, t, done);
        if (p === null) return;
        this.submitMembership(p, target === undefined ? { t: 'transfer' } : { t: 'transfer', addr: target }, 0);
        return;
      }
      case 'TakeSnapshot': {
        if (!this.running) {
          done(fail(errors.shuttingDown()));
          return;
        }
        if (this.failure !== null) {
          done(fail(this.failure));
          return;
        }
        this.takeSnapshotNow().then(
          () => done(okJson({ snapshotIndex: this.snapshotMeta?.index ?? 0 })),
          (e) =>
            done(
              fail(
                isStorageError(e)
                  ? errors.storage((e as Error).message)
                  : errors.internal(`cannot take a snapshot: ${(e as Error)?.message ?? String(e)}`),
              ),
            ),
        );
        return;
      }
      case 'GetServerState': {
        if (!isObj) {
          done(fail(invalidParams('GetServerState takes no params (or {"stateHash": true})')));
          return;
        }
        if (!this.running) {
          done(fail(errors.shuttingDown()));
          return;
        }
        const state = this.state();
        if (obj.stateHash !== true) {
          done(okJson(state));
          return;
        }
        // The hash captures the replicated state now (at state.appliedIndex); only the hashing finishes later.
        this.rm.stateHash().then(
          (stateHash) => done(okJson({ ...state, stateHash })),
          (e) => done(fail(errors.internal(`cannot hash the state: ${(e as Error)?.message ?? String(e)}`))),
        );
        return;
      }
      default:
        done(
          fail(
            new RpcError(
              ErrorCode.METHOD_NOT_FOUND,
              `method not found: ${JSON.stringify(method).slice(0, 100)}; known methods are CreateCluster, AddServer, RemoveServer, Apply, TakeSnapshot, GetServerState, TransferLeadership`,
            ),
          ),
        );
        return;
    }
  }

  private applyInput(
    input: unknown,
    kind: ApplyKind,
    clientId: string | undefined,
    seq: number | undefined,
    timeoutMs: number | undefined,
    done: Done,
  ): void {
    const validate = this.options.machine.validate;
    if (validate !== undefined) {
      let why: string | undefined;
      try {
        why = validate.call(this.options.machine, input, kind);
      } catch (e) {
        why = (e as Error)?.message ?? String(e);
      }
      if (why !== undefined) {
        done(fail(invalidParams(`the input was refused: ${why}`, { reason: why })));
        return;
      }
    }
    if (kind === 'LocalQuery') {
      if (!this.running) {
        done(fail(errors.shuttingDown()));
        return;
      }
      this.counters.localQueriesServed++;
      done(this.rm.query(input, 'LocalQuery', this.appliedIndex));
      return;
    }
    if (kind === 'Query') {
      const p = this.track('the query', false, timeoutMs, done);
      if (p !== null) this.submitQuery(p, input);
      return;
    }
    const text = JSON.stringify(input);
    if (text === undefined) {
      done(fail(invalidParams('"input" has no JSON form')));
      return;
    }
    if (text.length > this.o.maxFrameBytes / 2) {
      done(fail(invalidParams(`the input is too large (${text.length} bytes of JSON)`)));
      return;
    }
    const p = this.track('the command', true, timeoutMs, done);
    if (p === null) return;
    const cmd: Command = clientId !== undefined && seq !== undefined ? { input: text, clientId, seq } : { input: text };
    this.submitCommand(p, cmd, 0);
  }

  private doCreateCluster(done: Done): void {
    if (!this.running) {
      done(fail(errors.shuttingDown()));
      return;
    }
    if (this.failure !== null) {
      done(fail(this.failure));
      return;
    }
    const n = this.node;
    if (n.lastLogIndex > 0 || n.snapshot !== null || n.config.voters.length > 0) {
      done(
        fail(
          new RpcError(
            ErrorCode.CLUSTER_ALREADY_CREATED,
            `server ${this._id} already belongs to a cluster (members: ${membersOf(n.config).join(', ') || 'unknown yet'}); use AddServer on a member to grow it`,
          ),
        ),
      );
      return;
    }
    const r = n.createCluster([this._id]);
    if (!r.ok) {
      done(
        fail(
          new RpcError(
            ErrorCode.CLUSTER_ALREADY_CREATED,
            `server ${this._id} cannot create a cluster: ${r.error.message}; use AddServer on a member instead`,
          ),
        ),
      );
      return;
    }
    const p = this.track('CreateCluster', true, undefined, done);
    if (p === null) return;
    p.phase = 'proposed';
    this.memberWaits.push({
      p,
      check: () =>
        this.appliedIndex >= 1 && n.committedConfig.voters.includes(this._id) ? this.membersResult() : null,
    });
    this.kick();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------------------------------

  private state(): ServerState {
    const n = this.node;
    const c = n.config;
    const s: ServerState = {
      id: this._id,
      clusterName: this.o.clusterName,
      role: n.role,
      membership: isVoter(c, this._id) ? 'voter' : c.learners.includes(this._id) ? 'learner' : 'none',
      term: n.currentTerm,
      votedFor: n.votedFor,
      leader: n.leaderId,
      members: membersOf(c),
      voters: [...c.voters],
      learners: [...c.learners],
      commitIndex: n.commitIndex,
      appliedIndex: this.appliedIndex,
      firstLogIndex: n.firstLogIndex,
      lastLogIndex: n.lastLogIndex,
      lastLogTerm: n.lastLogTerm,
      persistedIndex: n.persistedIndex,
      snapshotIndex: this.snapshotMeta?.index ?? 0,
      snapshotTerm: this.snapshotMeta?.term ?? 0,
      sessions: this.rm.sessionCount,
      counters: { ...this.counters },
      uptimeMs: Date.now() - this.startedAt,
    };
    if (c.oldVoters !== undefined) s.oldVoters = [...c.oldVoters];
    if (n.role === 'leader') {
      const f: Record<string, FollowerProgress> = {};
      for (const [id, pr] of n.progress()) {
        if (id === this._id) continue;
        f[id] = {
          matchIndex: pr.matchIndex,
          nextIndex: pr.nextIndex,
          lag: Math.max(0, n.lastLogIndex - pr.matchIndex),
          state: pr.state,
          inflight: pr.inflight,
        };
      }
      s.followers = f;
    }
    return s;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // In-process API
  // ---------------------------------------------------------------------------------------------------------------

  private promise<T>(run: (done: Done) => void, map: (v: unknown) => T = (v) => v as T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      run((o) => {
        if (!o.ok) reject(o.error);
        else resolve(map(o.json !== undefined ? JSON.parse(o.json) : o.output));
      });
    });
  }

  /** Run a command through the log; resolves with the machine's output. Any member may be asked. */
  apply<O = unknown>(input: unknown, options: ApplyOptions = {}): Promise<O> {
    return this.promise((done) => {
      const o: Record<string, unknown> = { kind: 'Command', input };
      if (options.clientId !== undefined) o.clientId = options.clientId;
      if (options.seq !== undefined) o.seq = options.seq;
      if (options.timeoutMs !== undefined) o.timeoutMs = options.timeoutMs;
      this.dispatch('Apply', o, done);
    });
  }

  /** A linearizable read (ReadIndex); resolves with the machine's output. */
  query<O = unknown>(input: unknown, options: { timeoutMs?: number } = {}): Promise<O> {
    return this.promise((done) => this.dispatch('Apply', { kind: 'Query', input, ...options }, done));
  }

  /** A read of this server's local state, with no freshness guarantee. */
  localQuery<O = unknown>(input: unknown): Promise<O> {
    return this.promise((done) => this.dispatch('Apply', { kind: 'LocalQuery', input }, done));
  }

  /** Make this (fresh) server a one-member cluster. */
  createCluster(): Promise<{ members: string[] }> {
    return this.promise((done) => this.dispatch('CreateCluster', {}, done));
  }

  /** Add a server (as a learner, promoted once caught up); resolves with the members once it is a voter. */
  addServer(addr: string, options: { timeoutMs?: number } = {}): Promise<{ members: string[] }> {
    return this.promise((done) => this.dispatch('AddServer', { addr, ...options }, done));
  }

  /** Remove a server; resolves with the members once the removal committed. */
  removeServer(addr: string, options: { timeoutMs?: number } = {}): Promise<{ members: string[] }> {
    return this.promise((done) => this.dispatch('RemoveServer', { addr, ...options }, done));
  }

  /** Snapshot the state machine now and compact the log. */
  takeSnapshot(): Promise<{ snapshotIndex: number }> {
    return this.promise((done) => this.dispatch('TakeSnapshot', {}, done));
  }

  /** This server's state (add `stateHash: true` for a hash of the replicated state). */
  getServerState(options: { stateHash?: boolean } = {}): Promise<ServerState> {
    return this.promise((done) => this.dispatch('GetServerState', options, done));
  }

  /** Move leadership to `target` (default: the most caught-up other voter). */
  transferLeadership(target?: string, options: { timeoutMs?: number } = {}): Promise<{ leader: string }> {
    return this.promise((done) =>
      this.dispatch('TransferLeadership', target === undefined ? options : { addr: target, ...options }, done),
    );
  }

  /** Call any JSON-RPC method by name with its params (as a client would). */
  call<T = unknown>(method: string, params?: unknown): Promise<T> {
    return this.promise((done) => this.dispatch(method, params, done));
  }
}

/** Marks a failure of the state machine's own `snapshot()` (not of storage) inside the snapshot chain. */
class SnapshotProductionError extends Error {
  constructor(cause: unknown) {
    super(`the state machine failed to produce a snapshot: ${String(cause)}`, { cause });
  }
}

/** Errors that tell the client its request was certainly not applied. */
function saysNotApplied(e: RpcError): boolean {
  if (e.code === ErrorCode.MACHINE_ERROR) return false; // the command was applied, and the machine refused it
  const data = e.data as { notApplied?: unknown } | undefined;
  if (data?.notApplied === true) return true;
  return (
    e.code === ErrorCode.NO_LEADER ||
    e.code === ErrorCode.PROPOSAL_LOST ||
    e.code === ErrorCode.NOT_A_MEMBER ||
    e.code === ErrorCode.OVERLOADED
  );
}

/** A connection must send its first bytes (which say whether it is a peer or a client) within this many ms. */
const SNIFF_TIMEOUT_MS = 30_000;

/** What a retried request reports when its retry failed but an earlier attempt's outcome is unknown. */
function earlierAttemptUnknown(what: string, retryError: RpcError): RpcError {
  return new RpcError(
    ErrorCode.TIMEOUT,
    `${what}: the connection to the leader was lost before it answered an earlier attempt, which may have been applied; ` +
      `the retry failed (${retryError.message}). The outcome is unknown: send it again with the same clientId and seq to learn it`,
    { notApplied: false },
  );
}

function proposalLost(): RpcError {
  return new RpcError(
    ErrorCode.PROPOSAL_LOST,
    'the leader changed before the command committed and it was discarded: it was not applied; retry',
    { notApplied: true },
  );
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
