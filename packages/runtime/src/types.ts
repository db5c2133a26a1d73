/**
 * The runtime's plain data: its options, its requests, the state it reports, its counters and its events.
 *
 * @packageDocumentation
 */

import type { Action, NodeId, RaftOptions, Role } from '@raft/core';
import type { Clock, RaftStorage, Transport } from './io.js';
import type { Logger } from './logger.js';
import type { Command, Machine } from './machine.js';

/** Options of {@link RaftRuntime}. `id`, `storage`, `transport` and `machine` are required. */
export interface RuntimeOptions {
  /** This node's id in the cluster (the TCP server uses its `host:port`). */
  id: NodeId;
  /** The opened storage; {@link RaftRuntime.start} restores from its `state` and latest snapshot. */
  storage: RaftStorage;
  /** Where messages and forwarded requests go. */
  transport: Transport;
  /** The user's state machine. */
  machine: Machine;
  /** Time, timers and turns. Default: {@link systemClock}. */
  clock?: Clock;
  /** Leader heartbeat interval in ms. Default 100. */
  heartbeatMs?: number;
  /** Minimum election timeout in ms; each election waits a random time in [t, max). Default 1000. */
  electionTimeoutMs?: number;
  /** Maximum election timeout in ms (exclusive). Default `2 * electionTimeoutMs`. */
  electionTimeoutMaxMs?: number;
  /** Default timeout of a request (waiting for a leader, forwarding, committing, membership changes). Default 10 s. */
  requestTimeoutMs?: number;
  /** Take a snapshot after this many entries were applied since the last one; 0 disables. Default 100 000. */
  autoSnapshotEntries?: number;
  /** Requests in progress above which new ones get `OVERLOADED`. Default 100 000. */
  maxInflightRequests?: number;
  /** Exactly-once client sessions remembered (least recently used forgotten first). Default 100 000. */
  maxSessions?: number;
  /** Largest command, in bytes of its JSON text; larger ones get `INVALID_PARAMS`. Default 32 MiB. */
  maxCommandBytes?: number;
  /** Core tunables (`electionTicks` is derived from the timeouts unless given). */
  raft?: Partial<RaftOptions>;
  /** Where to log. Default: warnings and errors to the console. */
  logger?: Logger;
  /** Told about role, leader and membership changes, and about a fatal failure. */
  onEvent?: (e: RuntimeEvent) => void;
  /** Counters to increment (pass an object of your own to share it with a transport). Default: a fresh one. */
  counters?: RuntimeCounters;
  /** Watch the action loop (a simulator's checker, tracing). */
  tap?: RuntimeTap;
  /**
   * @internal Test-only switches that plant known runtime bugs, so the simulator's plant-a-bug tests can show they
   * are caught. Never set these outside tests.
   */
  unsafeBugs?: RuntimeBugs;
}

/** Hooks into the action loop, for simulators, checkers and tracing. They must not call back into the runtime. */
export interface RuntimeTap {
  /** Right before the runtime carries out `action` (in order; the runtime's state reflects the earlier ones). */
  action?(action: Action<Command>): void;
  /** After each turn of the action loop (every action of the turn carried out). */
  turn?(): void;
}

/** @internal Runtime bugs the simulator's plant-a-bug tests must catch (see {@link RuntimeOptions.unsafeBugs}). */
export interface RuntimeBugs {
  /** Send messages without waiting for the hard state before them to be durable (a vote can leave first). */
  sendBeforeHardStateDurable?: boolean;
  /** Never write the hard state at all. */
  skipHardState?: boolean;
  /** Tell the core entries are persisted as soon as they are handed to storage, before the fsync. */
  persistedBeforeFsync?: boolean;
  /** Restore an incoming snapshot and tell the core before the storage made it durable. */
  installBeforeDurable?: boolean;
  /** Forget that a lost forwarded attempt may have been applied: a later refusal is passed on as "not applied". */
  forgetLostAttempts?: boolean;
}

/** What {@link RuntimeOptions.onEvent} is told. */
export type RuntimeEvent =
  | { readonly type: 'stateChanged'; readonly role: Role; readonly term: number; readonly leader: NodeId | null }
  | { readonly type: 'membershipChanged'; readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[] }
  | { readonly type: 'failed'; readonly error: Error };

/** A client request, as the typed API and every front end (JSON-RPC, the playground) hand it to the runtime. */
export type RuntimeRequest =
  | {
      readonly type: 'command';
      readonly input: unknown;
      readonly clientId?: string;
      readonly seq?: number;
      readonly timeoutMs?: number;
    }
  | { readonly type: 'query'; readonly input: unknown; readonly timeoutMs?: number }
  | { readonly type: 'localQuery'; readonly input: unknown }
  | { readonly type: 'createCluster' }
  | { readonly type: 'addServer'; readonly addr: NodeId; readonly timeoutMs?: number }
  | { readonly type: 'removeServer'; readonly addr: NodeId; readonly timeoutMs?: number }
  | { readonly type: 'transferLeadership'; readonly addr?: NodeId; readonly timeoutMs?: number }
  | { readonly type: 'takeSnapshot' }
  | { readonly type: 'state'; readonly stateHash?: boolean };

/** Operator counters the runtime keeps (monotonic since start). */
export interface RuntimeCounters {
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
   * Leader-only requests (commands and membership changes) this node forwarded to the leader it knows; each
   * forwarding counts, including a retry after a leader change.
   */
  forwardedOut: number;
  /** Forwarded requests received from other nodes (to run here as leader, or to pass on). */
  forwardedIn: number;
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
   * Times the leader this node knows of changed, including to or from "no leader" (`null`): a leader lost and a new
   * one found count as two.
   */
  leaderChanges: number;
}

/** Fresh zeroed {@link RuntimeCounters}. */
export function newRuntimeCounters(): RuntimeCounters {
  return {
    commandsApplied: 0,
    queriesServed: 0,
    localQueriesServed: 0,
    forwardedOut: 0,
    forwardedIn: 0,
    appendBatches: 0,
    entriesPersisted: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotsSent: 0,
    leaderChanges: 0,
  };
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

/** The node's state as the runtime reports it (the TCP server adds its own fields for `GetServerState`). */
export interface RuntimeState {
  /** This node's id in the cluster. */
  id: string;
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
}
