/**
 * The plain data types of the Raft core: terms, indexes, entries, configurations, messages and actions.
 *
 * Everything here is a plain object (no classes, no methods) so that a runtime can serialize messages with any
 * codec, keep entries in any storage, and compare action streams byte for byte.
 *
 * @packageDocumentation
 */

/** The identifier of a cluster member. Opaque to the core; runtimes usually use an address such as `127.0.0.1:4000`. */
export type NodeId = string;

/** A Raft term: a logical clock that increases with every election. Starts at 0 on a fresh node. */
export type Term = number;

/** A position in the replicated log. The first real entry has index 1; index 0 means "before the log". */
export type Index = number;

/** The identifier a runtime gives a read request (see {@link RaftNode.read}); echoed back in read actions. */
export type ReadId = number | string;

/**
 * A cluster configuration (the Raft paper's "configuration", section 6).
 *
 * `voters` vote and count towards quorums; `learners` receive the log but neither vote nor count.
 * When `oldVoters` is present the configuration is joint, C(old,new): every decision (election, commit)
 * needs a majority of `oldVoters` **and** a majority of `voters`.
 */
export interface ClusterConfig {
  /** The voting members (C_new while joint). */
  readonly voters: readonly NodeId[];
  /** Non-voting members that receive the log. Never overlaps with `voters` or `oldVoters`. */
  readonly learners: readonly NodeId[];
  /** Present only in a joint configuration: the voting members of C_old. */
  readonly oldVoters?: readonly NodeId[];
}

/**
 * A log entry. `command` entries carry the user's opaque payload; `noop` entries are appended by every new leader
 * (so it can commit entries of earlier terms, the paper's section 5.4.2); `config` entries change membership.
 *
 * @typeParam C - the command payload type. The core never inspects it.
 */
export type Entry<C = Uint8Array> =
  | { readonly term: Term; readonly index: Index; readonly type: 'command'; readonly command: C }
  | { readonly term: Term; readonly index: Index; readonly type: 'noop' }
  | { readonly term: Term; readonly index: Index; readonly type: 'config'; readonly config: ClusterConfig };

/** What a snapshot covers: the state machine after applying every entry up to `index`, and the membership then. */
export interface SnapshotMeta {
  /** The index of the last entry the snapshot includes. */
  readonly index: Index;
  /** The term of that entry. */
  readonly term: Term;
  /** The configuration in effect at `index` (the latest config entry at or before it). */
  readonly config: ClusterConfig;
}

/** The state that must survive a crash besides the log: the current term and the vote cast in it. */
export interface HardState {
  /** The latest term this node has seen. */
  readonly term: Term;
  /** The candidate this node voted for in `term`, or `null`. */
  readonly votedFor: NodeId | null;
}

/** A node's role. `follower` includes learners and nodes that are not (yet) members of any configuration. */
export type Role = 'follower' | 'candidate' | 'leader';

// ---------------------------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------------------------

/** Fields every message carries. */
export interface MessageHeader {
  /** The sender's current term (for a pre-vote request: the term it would campaign in). */
  readonly term: Term;
  /** The sender. */
  readonly from: NodeId;
  /** The recipient. */
  readonly to: NodeId;
}

/**
 * RequestVote (the paper's Figure 2), also used for PreVote. A pre-vote asks "would you vote for me?" without
 * anybody changing term, so a node that was partitioned away cannot disrupt a healthy cluster when it returns.
 */
export interface RequestVote extends MessageHeader {
  readonly type: 'RequestVote';
  /** True for a pre-vote round: no term changes, no vote recorded. */
  readonly preVote: boolean;
  /** Index of the candidate's last log entry. */
  readonly lastLogIndex: Index;
  /** Term of the candidate's last log entry. */
  readonly lastLogTerm: Term;
  /** True when the election was started by a leadership transfer: voters must not ignore it for having a leader. */
  readonly transfer: boolean;
}

/** The answer to a {@link RequestVote}. */
export interface RequestVoteResponse extends MessageHeader {
  readonly type: 'RequestVoteResponse';
  /** Echoes the request's `preVote`. */
  readonly preVote: boolean;
  /** Whether the vote (or pre-vote) was granted. */
  readonly granted: boolean;
}

/**
 * AppendEntries (the paper's Figure 2). With no entries it is a heartbeat; heartbeats also confirm leadership for
 * ReadIndex and keep followers from starting elections.
 */
export interface AppendEntries<C = Uint8Array> extends MessageHeader {
  readonly type: 'AppendEntries';
  /** Index of the entry immediately preceding `entries`. */
  readonly prevLogIndex: Index;
  /** Term of the entry at `prevLogIndex`. */
  readonly prevLogTerm: Term;
  /** Entries to store (empty for a heartbeat). Contiguous, starting at `prevLogIndex + 1`. */
  readonly entries: readonly Entry<C>[];
  /** The leader's commit index. */
  readonly leaderCommit: Index;
  /** The leader's heartbeat round number; echoed in the response so reads can count confirmations. */
  readonly seq: number;
}

/** The answer to an {@link AppendEntries}. Sent only for entries the follower has persisted. */
export interface AppendEntriesResponse extends MessageHeader {
  readonly type: 'AppendEntriesResponse';
  /** False when the follower's log did not contain an entry matching `prevLogIndex` / `prevLogTerm`. */
  readonly success: boolean;
  /**
   * On success: the highest index known to match the leader's log **and** persisted on the follower.
   * On rejection: the `prevLogIndex` that was rejected.
   */
  readonly matchIndex: Index;
  /** Echo of the highest `seq` received from this leader. */
  readonly seq: number;
  /**
   * On rejection: where the leader should retry (fast back-tracking). If the follower's log is too short, its
   * last index + 1; otherwise the first index of the conflicting term in the follower's log.
   */
  readonly hintIndex: Index;
  /** On rejection: the follower's term at `prevLogIndex`, or 0 if its log is shorter. */
  readonly hintTerm: Term;
}

/** One chunk of a snapshot, sent by a leader to a follower that lags behind the leader's first retained entry. */
export interface InstallSnapshot extends MessageHeader {
  readonly type: 'InstallSnapshot';
  /** Which snapshot the chunk belongs to. */
  readonly snapshot: SnapshotMeta;
  /** Byte offset of `data` within the snapshot. */
  readonly offset: number;
  /** The chunk's bytes. */
  readonly data: Uint8Array;
  /** True on the last chunk. */
  readonly done: boolean;
}

/** The answer to an {@link InstallSnapshot} chunk. */
export interface InstallSnapshotResponse extends MessageHeader {
  readonly type: 'InstallSnapshotResponse';
  /** Which snapshot is being acknowledged. */
  readonly snapshotIndex: Index;
  /** The offset the follower expects next (so the leader can resume or restart the transfer). */
  readonly nextOffset: number;
}

/** Sent by a leader transferring leadership: "start an election now, without waiting for your timeout". */
export interface TimeoutNow extends MessageHeader {
  readonly type: 'TimeoutNow';
}

/** A follower asks the leader for a read index on behalf of one of its clients. */
export interface ReadIndexRequest extends MessageHeader {
  readonly type: 'ReadIndexRequest';
  /** The follower's read identifiers (reads issued together share one request). */
  readonly readIds: readonly ReadId[];
}

/** The leader's answer to a {@link ReadIndexRequest}. */
export interface ReadIndexResponse extends MessageHeader {
  readonly type: 'ReadIndexResponse';
  /** The read identifiers from the request. */
  readonly readIds: readonly ReadId[];
  /** The confirmed read index, or -1 when the leader could not serve the read (it is stepping down, say). */
  readonly readIndex: Index;
}

/** Every message the core sends or receives. */
export type Message<C = Uint8Array> =
  | RequestVote
  | RequestVoteResponse
  | AppendEntries<C>
  | AppendEntriesResponse
  | InstallSnapshot
  | InstallSnapshotResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

// ---------------------------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------------------------

/**
 * Make the term and vote durable. **Must be durable before any `send` action that comes after it is performed**,
 * because those messages may grant a vote or speak in the new term.
 */
export interface PersistHardStateAction {
  readonly type: 'persistHardState';
  /** The complete term and vote to store, replacing the stored ones (not a delta). */
  readonly hardState: HardState;
}

/**
 * Store entries in the log. Any existing entries at or after `entries[0].index` are discarded first (that is how a
 * follower's conflicting suffix is truncated). May be written in the background and fsynced in batches; call
 * {@link RaftNode.persisted} once they are durable. `send` actions do **not** wait for it.
 */
export interface AppendEntriesAction<C = Uint8Array> {
  readonly type: 'appendEntries';
  /**
   * At least one entry, with consecutive indexes. Once they are durable, report the last one's `index` and `term`
   * to {@link RaftNode.persisted}.
   */
  readonly entries: readonly Entry<C>[];
}

/** Deliver a message to `message.to` (best effort: the protocol tolerates loss, duplication and reordering). */
export interface SendAction<C = Uint8Array> {
  readonly type: 'send';
  /**
   * The message; its `to` names the recipient. Entries it carries are the log's own objects: serialize or copy it,
   * never mutate it.
   */
  readonly message: Message<C>;
}

/**
 * (Re)arm the node's single timer, replacing any pending one. For `election` the runtime picks a random duration in
 * its election range (e.g. 150–300 ms); for `heartbeat` a fixed, shorter interval. On expiry call
 * {@link RaftNode.handleTimeout}.
 */
export interface SetTimerAction {
  readonly type: 'setTimer';
  /** `election` on followers and candidates (randomized timeout), `heartbeat` on a leader (fixed interval). */
  readonly kind: 'election' | 'heartbeat';
}

/**
 * Apply committed entries to the state machine, in order. Only `command` entries concern the state machine;
 * `config` entries tell the runtime that a membership change committed. Entries may not yet be durable on this
 * node: they are committed (durable on a quorum), so applying them is safe.
 */
export interface ApplyAction<C = Uint8Array> {
  readonly type: 'apply';
  /**
   * The next committed entries, consecutive and starting right after the last one applied (or the snapshot), of
   * every type: `noop` entries are included and can be skipped.
   */
  readonly entries: readonly Entry<C>[];
}

/** A linearizable read may now be served: every entry up to `index` has been handed out in `apply` actions. */
export interface ReadReadyAction {
  readonly type: 'readReady';
  /** The id passed to {@link RaftNode.read}. */
  readonly readId: ReadId;
  /**
   * The confirmed read index: the leader's commit index when the read was registered. Reading the state machine
   * after applying through it is linearizable.
   */
  readonly index: Index;
}

/** A read could not be confirmed (no leader, leadership lost, ...). The runtime may retry elsewhere. */
export interface ReadFailedAction {
  readonly type: 'readFailed';
  /** The id passed to {@link RaftNode.read}. */
  readonly readId: ReadId;
  /**
   * `NOT_LEADER` when the node is not the leader and has no leader to ask (or is a candidate); `LEADERSHIP_LOST`
   * when the leader stepped down, or the leader this node asked changed or refused, before the read was confirmed,
   * or the leader could not confirm it within `electionTicks` heartbeats. Both are retryable.
   */
  readonly error: RaftErrorCode;
}

/**
 * Leader side of snapshot transfer: read up to `maxBytes` bytes at `offset` of the snapshot described by
 * `snapshot`, then call {@link RaftNode.sendSnapshotChunk} with them (the core turns them into an
 * {@link InstallSnapshot} message). If the runtime no longer has that snapshot it may ignore the action; the core
 * retries with its newest snapshot on a later heartbeat.
 */
export interface ReadSnapshotChunkAction {
  readonly type: 'readSnapshotChunk';
  /** The follower the chunk is for; pass it back to {@link RaftNode.sendSnapshotChunk}. */
  readonly to: NodeId;
  /** Which snapshot to read (its index and term identify it). */
  readonly snapshot: SnapshotMeta;
  /** Byte offset in the snapshot's data where the chunk starts: 0 for the first, then what the follower acked. */
  readonly offset: number;
  /**
   * Most bytes to read ({@link RaftOptions.snapshotChunkBytes}, default 1 MiB). Whether the bytes read end the
   * snapshot is the runtime's to say, through the `done` argument of {@link RaftNode.sendSnapshotChunk}.
   */
  readonly maxBytes: number;
}

/**
 * Follower side of snapshot transfer: store `data` at `offset` of the incoming snapshot `snapshot` (chunks arrive in
 * order; `offset` 0 starts a new transfer and discards any partial one).
 */
export interface SaveSnapshotChunkAction {
  readonly type: 'saveSnapshotChunk';
  /** The snapshot being received (index, term and configuration it covers). */
  readonly snapshot: SnapshotMeta;
  /** Byte offset of `data` in the snapshot: always the number of bytes saved so far in this transfer. */
  readonly offset: number;
  /** The chunk's bytes (at most the leader's chunk size; may be empty on the last chunk). Save them at `offset`. */
  readonly data: Uint8Array;
  /** True on the last chunk; an `installSnapshot` action for the same snapshot follows it. */
  readonly done: boolean;
}

/**
 * Follower side: every chunk of `snapshot` has been saved; make it durable, restore the state machine from it,
 * discard the whole log, then call {@link RaftNode.snapshotInstalled}. Until then the node ignores appends.
 */
export interface InstallSnapshotAction {
  readonly type: 'installSnapshot';
  /** The snapshot whose chunks were saved; pass it to {@link RaftNode.snapshotInstalled} once installed. */
  readonly snapshot: SnapshotMeta;
}

/** Role, term or known leader changed. Informational: a runtime may use it to fail or redirect pending requests. */
export interface StateChangedAction {
  readonly type: 'stateChanged';
  /** The node's role now (a PreVote round reports `candidate`). */
  readonly role: Role;
  /** The node's current term now (the Raft paper's `currentTerm`). */
  readonly term: Term;
  /** The leader the node now follows (its own id when leader), or `null` when it knows none. */
  readonly leaderId: NodeId | null;
}

/** Every action the core asks a runtime to perform. Perform them in order. */
export type Action<C = Uint8Array> =
  | PersistHardStateAction
  | AppendEntriesAction<C>
  | SendAction<C>
  | SetTimerAction
  | ApplyAction<C>
  | ReadReadyAction
  | ReadFailedAction
  | ReadSnapshotChunkAction
  | SaveSnapshotChunkAction
  | InstallSnapshotAction
  | StateChangedAction;

// ---------------------------------------------------------------------------------------------------------------
// Errors and options
// ---------------------------------------------------------------------------------------------------------------

/** Machine-readable reasons an input was refused. */
export type RaftErrorCode =
  /** The request needs the leader and this node is not it (see `leaderId` for a hint). */
  | 'NOT_LEADER'
  /** A leadership transfer is in progress; proposals are paused until it ends. */
  | 'TRANSFER_IN_PROGRESS'
  /** A configuration change is already in progress (uncommitted, or joint). */
  | 'CONFIG_CHANGE_IN_PROGRESS'
  /** The requested configuration is invalid (empty voters, overlapping sets, unknown member, ...). */
  | 'INVALID_CONFIG'
  /** The cluster was already created on this node, or the node already has a log. */
  | 'ALREADY_INITIALIZED'
  /**
   * The leader has not committed an entry in its term yet, or lost leadership (or could not confirm it within
   * `electionTicks` heartbeats) before confirming a read.
   */
  | 'LEADERSHIP_LOST'
  /** A snapshot or compaction request refers to an index this node cannot use. */
  | 'INVALID_INDEX'
  /** The target of a leadership transfer is not a voter. */
  | 'INVALID_TARGET';

/** Tunables of the core. Every field has a default; time is expressed in heartbeat intervals ("ticks"). */
export interface RaftOptions {
  /**
   * How many heartbeat intervals fit in the **minimum** election timeout. Used by CheckQuorum (a leader that has not
   * heard from a quorum within this many heartbeats steps down), to time out leadership transfers, and to bound
   * pending reads (a follower resends, a leader fails, reads unanswered after this many heartbeats). Default 10.
   */
  electionTicks?: number;
  /** Run a PreVote round before a real election. Default true. */
  preVote?: boolean;
  /** A leader steps down if it has not heard from a quorum within `electionTicks` heartbeats. Default true. */
  checkQuorum?: boolean;
  /** Most entries in one AppendEntries message. Default 4096. */
  maxEntriesPerMessage?: number;
  /** Most in-flight (unacknowledged) AppendEntries messages per follower: the pipelining window. Default 64. */
  maxInflightMessages?: number;
  /** Bytes per InstallSnapshot chunk. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /**
   * How reads are confirmed. `readIndex` (default): a quorum heartbeat round per batch of reads.
   * `lease`: served without a round trip while the leader's lease (see `leaseTicks`) holds. Lease reads assume
   * bounded clock drift; see docs/core.md.
   */
  readMode?: 'readIndex' | 'lease';
  /**
   * Lease length in heartbeat intervals for `readMode: 'lease'`; must be below `electionTicks` by a margin that
   * covers clock drift between nodes. Default `electionTicks - 2`.
   */
  leaseTicks?: number;
  /**
   * Promote every learner to voter once it has caught up with the commit index, whoever added it and across leader
   * changes (a new leader arms all learners of its configuration). Without it (the default), only learners added
   * with `addServer` on the current leader are promoted, and a new leader forgets those: use it when learners are
   * only ever voters in the making, as in the TCP server. Default false.
   */
  autoPromoteLearners?: boolean;
  /**
   * @internal Test-only switches that plant known protocol bugs, so the simulator's property tests can show they
   * catch them. Never set these outside tests.
   */
  unsafeBugs?: UnsafeBugs;
}

/** @internal Known bugs the simulator must catch (see {@link RaftOptions.unsafeBugs}). */
export interface UnsafeBugs {
  /** Commit an entry of an earlier term by counting replicas (the Raft paper's Figure 8). */
  commitOldTermByCount?: boolean;
  /** Decide joint-phase votes and commits with the new majority only. */
  jointNewMajorityOnly?: boolean;
  /** Grant votes without checking that the candidate's log is at least as up to date. */
  grantVoteIgnoringLog?: boolean;
  /** Serve ReadIndex reads without a quorum heartbeat round. */
  readWithoutConfirmation?: boolean;
  /** Acknowledge appended entries before they are persisted. */
  ackUnpersisted?: boolean;
  /** Count learners towards the commit quorum as if they were voters. */
  learnersCountInQuorum?: boolean;
  /** Describe a snapshot with the latest configuration instead of the one in effect at its index. */
  snapshotLatestConfig?: boolean;
  /** Keep serving lease reads while a leadership transfer is under way. */
  leaseDuringTransfer?: boolean;
  /**
   * Never send a forwarded read's ReadIndexRequest again, and never fail a leader's unconfirmed reads after their
   * bound: a lost request or answer then leaves the read unanswered for ever (the liveness check must notice).
   */
  forgetUnansweredReads?: boolean;
}
