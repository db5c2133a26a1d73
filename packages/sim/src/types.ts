/**
 * Types shared by the simulator's modules: the engine interface it drives, options, and trace events.
 *
 * @packageDocumentation
 */
import type {
  Action,
  ClusterConfig,
  UnsafeBugs as CoreUnsafeBugs,
  Index,
  Message,
  NodeId,
  RaftOptions,
  ReadId,
  Role,
  SnapshotMeta,
  Term,
} from '@raft/core';

/** The result of an input that can be refused (structurally compatible with `@raft/core`'s `Result`). */
export type SimResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

/**
 * Planted bugs for plant-a-bug tests: `@raft/core`'s test-only switches, re-exported so tests need only this
 * package. Never enable them outside tests.
 */
export type UnsafeBugs = CoreUnsafeBugs;

/** Core options as the simulator passes them: {@link RaftOptions}, including the test-only `unsafeBugs`. */
export type SimRaftOptions = RaftOptions;

/**
 * The Raft node interface the simulator drives: the subset of `@raft/core`'s `RaftNode` it uses. Any implementation
 * with this shape can be simulated (see {@link RaftEngine}).
 */
export interface RaftNodeLike<C> {
  /** See `RaftNode.id`. */
  readonly id: NodeId;
  /** See `RaftNode.role`. */
  readonly role: Role;
  /** See `RaftNode.currentTerm`. */
  readonly currentTerm: Term;
  /** See `RaftNode.votedFor`. */
  readonly votedFor: NodeId | null;
  /** See `RaftNode.leaderId`. */
  readonly leaderId: NodeId | null;
  /** See `RaftNode.commitIndex`. */
  readonly commitIndex: Index;
  /** See `RaftNode.lastApplied`. */
  readonly lastApplied: Index;
  /** See `RaftNode.lastLogIndex`. */
  readonly lastLogIndex: Index;
  /** See `RaftNode.lastLogTerm`. */
  readonly lastLogTerm: Term;
  /** See `RaftNode.config` (the latest configuration in the log). */
  readonly config: ClusterConfig | null;
  /** See `RaftNode.committedConfig`. */
  readonly committedConfig: ClusterConfig | null;
  /** See `RaftNode.snapshot`. */
  readonly snapshot: SnapshotMeta | null;
  /** See `RaftNode.createCluster`. */
  createCluster(voters?: NodeId[]): SimResult<unknown>;
  /** See `RaftNode.propose`. */
  propose(command: C): SimResult<{ index: Index; term: Term }>;
  /** See `RaftNode.handleTimeout`. */
  handleTimeout(): void;
  /** See `RaftNode.handleMessage`. */
  handleMessage(message: Message<C>): void;
  /** See `RaftNode.persisted`. */
  persisted(index: Index, term: Term): void;
  /** See `RaftNode.read`. */
  read(readId: ReadId): void;
  /** See `RaftNode.changeConfig`. */
  changeConfig(next: { voters: NodeId[]; learners: NodeId[] }): SimResult<unknown>;
  /** See `RaftNode.addServer`. */
  addServer(id: NodeId): SimResult<unknown>;
  /** See `RaftNode.addLearner`. */
  addLearner(id: NodeId): SimResult<unknown>;
  /** See `RaftNode.promote`. */
  promote(id: NodeId): SimResult<unknown>;
  /** See `RaftNode.removeServer`. */
  removeServer(id: NodeId): SimResult<unknown>;
  /** See `RaftNode.transferLeadership`. */
  transferLeadership(target: NodeId): SimResult<unknown>;
  /** See `RaftNode.snapshotMeta`. */
  snapshotMeta(index: Index): SnapshotMeta;
  /** See `RaftNode.compactLog`. */
  compactLog(meta: SnapshotMeta): SimResult<unknown>;
  /** See `RaftNode.sendSnapshotChunk`. */
  sendSnapshotChunk(to: NodeId, meta: SnapshotMeta, offset: number, data: Uint8Array, done: boolean): void;
  /** See `RaftNode.snapshotInstalled`. */
  snapshotInstalled(meta: SnapshotMeta): void;
  /** See `RaftNode.takeActions`. */
  takeActions(): Action<C>[];
}

/** Virtual-time settings, in milliseconds. */
export interface TimingOptions {
  /** The heartbeat timer. Default 10. */
  heartbeatMs: number;
  /** Election timeouts are uniform in [electionMinMs, electionMaxMs). Default 100. */
  electionMinMs: number;
  /** Default 200. */
  electionMaxMs: number;
  /** An fsync completes after a uniform delay in [fsyncMinMs, fsyncMaxMs). Default 1. */
  fsyncMinMs: number;
  /** Default 5. */
  fsyncMaxMs: number;
  /**
   * Largest clock drift, as a fraction: each node's clock runs at a rate drawn uniformly from
   * [1 - clockDrift, 1 + clockDrift], stretching or shrinking its timers. Default 0. Lease reads are safe only while
   * drift stays within the bound documented in docs/core.md.
   */
  clockDrift: number;
}

/** Defaults of {@link TimingOptions} (heartbeat 10 ms, elections 100–200 ms, fsync 1–5 ms, no clock drift). */
export const DEFAULT_TIMING: Readonly<TimingOptions> = {
  heartbeatMs: 10,
  electionMinMs: 100,
  electionMaxMs: 200,
  fsyncMinMs: 1,
  fsyncMaxMs: 5,
  clockDrift: 0,
};

/** Kinds of {@link TraceEvent}. */
export type TraceKind =
  | 'deliver'
  | 'drop'
  | 'timeout'
  | 'fsync'
  | 'crash'
  | 'restart'
  | 'wipe'
  | 'network'
  | 'propose'
  | 'read'
  | 'readReady'
  | 'readFailed'
  | 'apply'
  | 'state'
  | 'snapshot'
  | 'install'
  | 'config'
  | 'step'
  | 'note';

/** One entry of the simulation trace. `text` is computed lazily by {@link formatTraceEvent}. */
export interface TraceEvent {
  /** Virtual time in ms. */
  readonly time: number;
  /** The node concerned (null for cluster-wide events). */
  readonly node: NodeId | null;
  /** What happened. */
  readonly kind: TraceKind;
  /** A short description, or a message to describe lazily. */
  readonly detail: string | Message<unknown>;
}
