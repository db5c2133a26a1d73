import {
  EMPTY_CONFIG,
  hasQuorum,
  isJoint,
  isVoter,
  members,
  quorumValue,
  sameMembers,
  validateConfig,
} from './config.js';
import { err, ok, RaftError, type Result } from './errors.js';
import { RaftLog } from './log.js';
import { acknowledge, becomeProbe, becomeReplicate, newProgress, type Progress } from './progress.js';
import type {
  Action,
  AppendEntries,
  AppendEntriesResponse,
  ClusterConfig,
  Entry,
  HardState,
  Index,
  InstallSnapshot,
  InstallSnapshotResponse,
  Message,
  NodeId,
  RaftErrorCode,
  RaftOptions,
  ReadId,
  ReadIndexRequest,
  ReadIndexResponse,
  RequestVote,
  RequestVoteResponse,
  Role,
  SnapshotMeta,
  Term,
  UnsafeBugs,
} from './types.js';

/** What a node had on disk when it restarted: feed this to {@link RaftNode.restart}. */
export interface PersistedState<C = Uint8Array> {
  /** The last durable term and vote. */
  readonly hardState: HardState;
  /** The latest durable snapshot, if any. */
  readonly snapshot: SnapshotMeta | null;
  /** The durable log entries after the snapshot, in index order. */
  readonly entries: readonly Entry<C>[];
}

/** A read-only view of a follower's replication state, for operators and dashboards. */
export interface ProgressView {
  /**
   * Highest index known to be replicated and persisted on the follower (the Raft paper's `matchIndex[]`); 0 until
   * it first acknowledges in this leader's term.
   */
  readonly matchIndex: Index;
  /**
   * Index of the next entry to send it (the paper's `nextIndex[]`). Starts at the leader's last index + 1; in
   * `replicate` it runs ahead of `matchIndex + 1` by the entries in flight.
   */
  readonly nextIndex: Index;
  /**
   * `probe`: its log end is unknown, one AppendEntries at a time; `replicate`: it matches, entries are pipelined;
   * `snapshot`: it needs compacted entries and a snapshot is being sent.
   */
  readonly state: 'probe' | 'replicate' | 'snapshot';
  /** Unacknowledged AppendEntries messages (in `replicate` only), at most {@link RaftOptions.maxInflightMessages}. */
  readonly inflight: number;
  /**
   * Whether the follower answered since the last CheckQuorum round (rounds are `electionTicks` heartbeats apart);
   * a leader steps down when too few are active.
   */
  readonly recentActive: boolean;
}

type ResolvedOptions = Required<Omit<RaftOptions, 'unsafeBugs'>>;

/**
 * Reads waiting for their confirmation round (leader side). `from` is null for this node's own reads. `tick` is the
 * leader's heartbeat count when the read was registered: a read still unconfirmed `electionTicks` heartbeats later
 * fails (see `expireReads`).
 */
interface PendingRead {
  readonly readIds: readonly ReadId[];
  readonly from: NodeId | null;
  readonly index: Index;
  readonly seq: number;
  readonly tick: number;
}

/**
 * A Raft node as a pure state machine (in the style of raftbare and etcd's raft).
 *
 * Inputs are method calls; outputs are {@link Action}s collected in a queue that the runtime drains with
 * {@link RaftNode.takeActions} and performs in order. The node never performs I/O, reads a clock or draws a random
 * number, so the same inputs always produce the same actions: a runtime, a test or a simulator can drive it.
 *
 * Batching: inputs only mark what needs sending; messages are built when the queue is drained. So a runtime that
 * feeds many inputs (say every proposal and message of one event-loop turn) and then drains once gets one
 * AppendEntries per follower carrying every new entry, and one heartbeat round for every read issued meanwhile.
 *
 * @typeParam C - the command payload type; opaque to the core.
 */
export class RaftNode<C = Uint8Array> {
  /** This node's identifier. */
  readonly id: NodeId;

  private readonly opts: ResolvedOptions;
  private readonly bugs: UnsafeBugs;
  private readonly log = new RaftLog<C>();

  // Persistent state (mirrored to disk through persistHardState / appendEntries actions).
  private term: Term = 0;
  private vote: NodeId | null = null;

  // Volatile state.
  private _role: Role = 'follower';
  private preCandidate = false;
  private leader: NodeId | null = null;
  private commit: Index = 0;
  private applied: Index = 0;
  private durable: Index = 0;
  private snap: SnapshotMeta | null = null;
  private snapshotConfig: ClusterConfig = EMPTY_CONFIG;
  private configEntries: { index: Index; config: ClusterConfig }[] = [];

  // Candidate state.
  private votes = new Set<NodeId>();

  // Leader state.
  private progressMap = new Map<NodeId, Progress>();
  private seq = 0;
  private readRoundOpen = false;
  private ticks = 0;
  private ticksSinceQuorumCheck = 0;
  private seqStartTick = new Map<number, number>();
  private transfer: { target: NodeId; startTick: number } | null = null;
  private autoPromote = new Set<NodeId>();
  private pendingReads: PendingRead[] = [];
  private readsAwaitingNoop: { readIds: readonly ReadId[]; from: NodeId | null; tick: number }[] = [];

  // Follower state.
  private verified: Index = 0;
  private leaderSeq = 0;
  private ackDirty = false;
  private lastAck: Index = -1;
  private forwardQueue: ReadId[] = [];
  /**
   * Reads forwarded to the leader and not answered yet, each with the leader's heartbeat round (`leaderSeq`) when
   * its request was last sent. Insertion order is sending order, so the rounds never decrease along the map: the
   * overdue ones (to send again) are a prefix.
   */
  private forwarded = new Map<ReadId, number>();
  private receiving: { meta: SnapshotMeta; nextOffset: number } | null = null;
  private installing: SnapshotMeta | null = null;

  // Output.
  private readyReads: { readId: ReadId; index: Index }[] = [];
  private actions: Action<C>[] = [];
  private timer: 'election' | 'heartbeat' | null = null;
  private replicateDirty = false;
  private broadcastDirty = false;
  private reported: { role: Role; term: Term; leader: NodeId | null } = { role: 'follower', term: 0, leader: null };

  private constructor(id: NodeId, options: RaftOptions) {
    this.id = id;
    const electionTicks = Math.max(2, options.electionTicks ?? 10);
    this.opts = {
      electionTicks,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxEntriesPerMessage: Math.max(1, options.maxEntriesPerMessage ?? 4096),
      maxInflightMessages: Math.max(1, options.maxInflightMessages ?? 64),
      snapshotChunkBytes: Math.max(1, options.snapshotChunkBytes ?? 1 << 20),
      readMode: options.readMode ?? 'readIndex',
      leaseTicks: Math.max(1, Math.min(options.leaseTicks ?? electionTicks - 2, electionTicks - 1)),
      autoPromoteLearners: options.autoPromoteLearners ?? false,
    };
    this.bugs = options.unsafeBugs ?? {};
    this.timer = 'election';
  }

  // -------------------------------------------------------------------------------------------------------------
  // Construction
  // -------------------------------------------------------------------------------------------------------------

  /**
   * A brand-new node with an empty log. It does nothing until it is bootstrapped with {@link createCluster} or a
   * leader adds it to an existing cluster. Drain its actions once (it arms its timer).
   */
  static start<C = Uint8Array>(id: NodeId, options: RaftOptions = {}): RaftNode<C> {
    return new RaftNode<C>(id, options);
  }

  /**
   * A node rebuilt from what it had persisted. The runtime must restore its state machine from `state.snapshot`
   * (if any) itself; entries after the snapshot are applied again as the node learns they are committed.
   */
  static restart<C = Uint8Array>(id: NodeId, state: PersistedState<C>, options: RaftOptions = {}): RaftNode<C> {
    const node = new RaftNode<C>(id, options);
    node.term = state.hardState.term;
    node.vote = state.hardState.votedFor;
    if (state.snapshot) {
      node.snap = state.snapshot;
      node.snapshotConfig = state.snapshot.config;
      node.log.reset(state.snapshot.index, state.snapshot.term);
      node.commit = node.applied = node.verified = state.snapshot.index;
    }
    for (const e of state.entries) {
      if (e.index <= node.log.lastIndex) continue;
      if (e.index !== node.log.lastIndex + 1) {
        throw new RaftError('INVALID_INDEX', `restart: entry ${e.index} does not follow ${node.log.lastIndex}`);
      }
      node.log.push(e);
      if (e.type === 'config') node.configEntries.push({ index: e.index, config: e.config });
    }
    node.durable = node.log.lastIndex;
    node.reported = { role: 'follower', term: node.term, leader: null };
    return node;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Read-only state
  // -------------------------------------------------------------------------------------------------------------

  /** The current role. A pre-candidate (PreVote round) reports `candidate`. */
  get role(): Role {
    return this._role;
  }
  /** The latest term this node has seen. */
  get currentTerm(): Term {
    return this.term;
  }
  /** Whom this node voted for in the current term. */
  get votedFor(): NodeId | null {
    return this.vote;
  }
  /** The leader this node currently follows (itself when leader), or null. */
  get leaderId(): NodeId | null {
    return this.leader;
  }
  /** Highest index known to be committed. */
  get commitIndex(): Index {
    return this.commit;
  }
  /** Highest index handed out in `apply` actions (or restored from a snapshot). */
  get lastApplied(): Index {
    return this.applied;
  }
  /** Index of the last log entry. */
  get lastLogIndex(): Index {
    return this.log.lastIndex;
  }
  /** Term of the last log entry. */
  get lastLogTerm(): Term {
    return this.log.lastTerm;
  }
  /** The first index held in the log (entries before it are in the snapshot). */
  get firstLogIndex(): Index {
    return this.log.firstIndex;
  }
  /** Highest log index reported durable through {@link persisted}. */
  get persistedIndex(): Index {
    return this.durable;
  }
  /** The latest snapshot this node knows of (taken locally or installed), or null. */
  get snapshot(): SnapshotMeta | null {
    return this.snap;
  }
  /** The latest configuration in the log (in effect as soon as it is appended, as the Raft paper prescribes). */
  get config(): ClusterConfig {
    const n = this.configEntries.length;
    return n === 0 ? this.snapshotConfig : this.configEntries[n - 1].config;
  }
  /** The latest committed configuration. */
  get committedConfig(): ClusterConfig {
    return this.configAt(this.commit);
  }
  /** Whether a leadership transfer is under way (proposals are refused meanwhile). */
  get transferTarget(): NodeId | null {
    return this.transfer?.target ?? null;
  }

  /** The log entries from `from` to `to` inclusive that are still held in memory. */
  entries(from: Index, to: Index = this.log.lastIndex): Entry<C>[] {
    const lo = Math.max(from, this.log.firstIndex);
    const hi = Math.min(to, this.log.lastIndex);
    return lo > hi ? [] : this.log.slice(lo, hi);
  }

  /** The term of the entry at `index`, if this node still knows it. */
  termAt(index: Index): Term | undefined {
    return this.log.term(index);
  }

  /** The leader's view of every follower's replication (empty unless leader). */
  progress(): Map<NodeId, ProgressView> {
    const out = new Map<NodeId, ProgressView>();
    for (const [id, pr] of this.progressMap) {
      out.set(id, {
        matchIndex: pr.matchIndex,
        nextIndex: pr.nextIndex,
        state: pr.state,
        inflight: pr.inflight.length,
        recentActive: pr.recentActive,
      });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Output
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Drains the action queue. Perform the actions in order (see docs/core.md for the durability rules). Messages
   * for followers, acknowledgements, committed entries and ready reads are produced here, which is what batches
   * everything that happened since the previous call.
   */
  takeActions(): Action<C>[] {
    if (this._role === 'leader') this.flushLeader();
    else this.flushFollower();
    this.flushApply();
    if (this.timer !== null) {
      this.actions.push({ type: 'setTimer', kind: this.timer });
      this.timer = null;
    }
    const r = this.reported;
    if (r.role !== this._role || r.term !== this.term || r.leader !== this.leader) {
      this.reported = { role: this._role, term: this.term, leader: this.leader };
      this.actions.push({ type: 'stateChanged', role: this._role, term: this.term, leaderId: this.leader });
    }
    const out = this.actions;
    this.actions = [];
    return out;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Inputs: bootstrap, proposals, timers, persistence
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Bootstraps a new cluster whose initial voters are `voters` (default: just this node). Every initial voter
   * must make the same call; a single-voter cluster elects this node at once. Refused (`ALREADY_INITIALIZED`) if
   * the node already has a log, a term above 1, or a vote for another node; accepted again after a crash that kept
   * only the hard state of an earlier `createCluster` (term 1, no vote or its own), so the call can be retried.
   */
  createCluster(voters: readonly NodeId[] = [this.id]): Result<void> {
    // What an interrupted bootstrap leaves behind may bootstrap again: the hard state (term 1, and the vote for
    // itself in a one-voter cluster) is persisted separately from the configuration entry, so a crash between the two
    // leaves term 1 and an empty log. Refusing then would strand the node for good (it has no configuration to campaign
    // with, and every retry of createCluster would fail). Anything more (a log, a later term, a vote for another
    // node) means it already took part in a cluster.
    const interrupted = this.term === 1 && (this.vote === null || this.vote === this.id);
    if ((this.term > 0 && !interrupted) || this.log.lastIndex > 0) {
      return err('ALREADY_INITIALIZED', 'this node already belongs to a cluster (it has a term or a log)');
    }
    const problem = validateConfig(voters, []);
    if (problem) return err('INVALID_CONFIG', problem);
    if (!voters.includes(this.id))
      return err('INVALID_CONFIG', `the initial voters must include this node (${this.id})`);
    const config: ClusterConfig = { voters: [...voters], learners: [] };
    this.term = 1;
    this.vote = voters.length === 1 ? this.id : null;
    this.pushHardState();
    this.appendLocal({ term: 1, index: 1, type: 'config', config });
    if (voters.length === 1) this.becomeLeader();
    else this.timer = 'election';
    return ok(undefined);
  }

  /**
   * Proposes a command. On the leader it is appended at once and committed once a quorum has persisted it; watch
   * `apply` actions for the returned index (if that index is applied with a different term, the proposal was lost
   * in a leader change).
   */
  propose(command: C): Result<{ index: Index; term: Term }> {
    const refused = this.refuseUnlessLeader();
    if (refused) return refused;
    const index = this.log.lastIndex + 1;
    this.appendLocal({ term: this.term, index, type: 'command', command });
    return { ok: true, value: { index, term: this.term } };
  }

  /** The timer set by the last `setTimer` action expired. */
  handleTimeout(): void {
    if (this._role === 'leader') this.heartbeatTick();
    else this.electionTimeout();
  }

  /**
   * Log entries up to `index` are durable, and the entry at `index` has term `term` (the term guards against a
   * late notification for entries that were since replaced).
   */
  persisted(index: Index, term: Term): void {
    if (index > this.log.snapshotIndex && this.log.term(index) !== term) return;
    if (index <= this.durable) return;
    this.durable = Math.min(index, this.log.lastIndex);
    if (this._role === 'leader') this.maybeCommit();
    else if (this.ackIndex() > this.lastAck) this.ackDirty = true;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Inputs: messages
  // -------------------------------------------------------------------------------------------------------------

  /** A message arrived from a peer. Stale, duplicated and reordered messages are handled. */
  handleMessage(m: Message<C>): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (m.term > this.term) {
      if (m.type === 'RequestVote') {
        if (!m.preVote) {
          // A leader (or a follower that hears from one) ignores a disruptive candidate: it was probably
          // partitioned away and should not depose a healthy leader. Transfers are exempt: they are on purpose.
          if (this.inLease() && !m.transfer) return;
          this.becomeFollower(m.term, null);
        }
      } else if (!(m.type === 'RequestVoteResponse' && m.preVote && m.granted)) {
        const fromLeader =
          m.type === 'AppendEntries' ||
          m.type === 'InstallSnapshot' ||
          m.type === 'TimeoutNow' ||
          m.type === 'ReadIndexResponse';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      this.answerStale(m);
      return;
    }
    switch (m.type) {
      case 'RequestVote':
        this.onRequestVote(m);
        break;
      case 'RequestVoteResponse':
        this.onRequestVoteResponse(m);
        break;
      case 'AppendEntries':
        this.onAppendEntries(m);
        break;
      case 'AppendEntriesResponse':
        this.onAppendEntriesResponse(m);
        break;
      case 'InstallSnapshot':
        this.onInstallSnapshot(m);
        break;
      case 'InstallSnapshotResponse':
        this.onInstallSnapshotResponse(m);
        break;
      case 'TimeoutNow':
        if (this._role !== 'leader' && this.leaderFrom(m.from)) this.campaign(false, true);
        break;
      case 'ReadIndexRequest':
        this.onReadIndexRequest(m);
        break;
      case 'ReadIndexResponse':
        this.onReadIndexResponse(m);
        break;
    }
  }

  /** Tells a sender from an older term about the newer one, so a deposed leader or stale candidate steps down. */
  private answerStale(m: Message<C>): void {
    if (m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow') {
      this.send({
        type: 'AppendEntriesResponse',
        term: this.term,
        from: this.id,
        to: m.from,
        success: false,
        matchIndex: 0,
        seq: 0,
        hintIndex: 0,
        hintTerm: 0,
      });
    } else if (m.type === 'RequestVote') {
      this.send({
        type: 'RequestVoteResponse',
        term: this.term,
        from: this.id,
        to: m.from,
        preVote: m.preVote,
        granted: false,
      });
    } else if (m.type === 'ReadIndexRequest') {
      this.send({
        type: 'ReadIndexResponse',
        term: this.term,
        from: this.id,
        to: m.from,
        readIds: m.readIds,
        readIndex: -1,
      });
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Elections
  // -------------------------------------------------------------------------------------------------------------

  private electionTimeout(): void {
    this.timer = 'election';
    this.setLeader(null);
    // Learners, nodes whose removal is committed and nodes that have not joined yet never campaign; neither does
    // a node busy installing a snapshot (its log is about to be replaced).
    if (!this.mayCampaign() || this.installing) {
      if (this._role === 'candidate') this.setRole('follower');
      return;
    }
    this.campaign(this.opts.preVote, false);
  }

  /**
   * Whether this node may start an election: it votes in its latest configuration, or in any configuration that is
   * not known to be committed yet. The second case is the Raft dissertation's section 4.1 rule ("a server that is
   * not part of its own latest configuration should still start new elections, as it might still be needed until
   * C_new is committed"): a leader removed by C_new that loses leadership before C_new commits may be the only node
   * whose log lets the remaining voters make progress; without it the cluster can deadlock.
   */
  private mayCampaign(): boolean {
    if (isVoter(this.config, this.id)) return true;
    if (this.latestConfigIndex() <= this.commit) return false;
    if (isVoter(this.configAt(this.commit), this.id)) return true;
    for (const c of this.configEntries) if (c.index > this.commit && isVoter(c.config, this.id)) return true;
    return false;
  }

  /** Starts a PreVote round (`preVote`) or a real election. `transfer` marks elections asked for by TimeoutNow. */
  private campaign(preVote: boolean, transfer: boolean): void {
    if (!this.mayCampaign() || this.installing) return;
    this.setLeader(null);
    this.setRole('candidate');
    this.preCandidate = preVote;
    if (!preVote) {
      this.term += 1;
      this.vote = this.id;
      this.pushHardState();
      // A new term means a new leader: what matched the previous leader's log proves nothing about the next one's
      // (without this reset a candidate that loses could take a heartbeat's leaderCommit as committing its stale
      // suffix; the simulator found that as two different entries applied at one index).
      this.verified = Math.max(this.commit, this.log.snapshotIndex);
      this.leaderSeq = 0;
    }
    this.votes = new Set([this.id]);
    this.timer = 'election';
    if (this.hasVoteQuorum()) {
      if (preVote) this.campaign(false, transfer);
      else this.becomeLeader();
      return;
    }
    const config = this.config;
    for (const peer of members(config)) {
      if (peer === this.id || !isVoter(config, peer)) continue;
      this.send({
        type: 'RequestVote',
        term: preVote ? this.term + 1 : this.term,
        from: this.id,
        to: peer,
        preVote,
        lastLogIndex: this.log.lastIndex,
        lastLogTerm: this.log.lastTerm,
        transfer,
      });
    }
  }

  private onRequestVote(m: RequestVote): void {
    const upToDate =
      this.bugs.grantVoteIgnoringLog ||
      m.lastLogTerm > this.log.lastTerm ||
      (m.lastLogTerm === this.log.lastTerm && m.lastLogIndex >= this.log.lastIndex);
    let granted: boolean;
    if (m.preVote) {
      // Grant only if a real election would succeed and nobody is leading: a node that still hears from a leader
      // refuses, so a node returning from a partition cannot force an election.
      granted = m.term > this.term && upToDate && (this.leader === null || m.transfer);
    } else {
      granted = m.term === this.term && (this.vote === null || this.vote === m.from) && upToDate;
      if (granted) {
        this.vote = m.from;
        this.pushHardState();
        this.timer = 'election';
      }
    }
    this.send({
      type: 'RequestVoteResponse',
      term: granted && m.preVote ? m.term : this.term,
      from: this.id,
      to: m.from,
      preVote: m.preVote,
      granted,
    });
  }

  private onRequestVoteResponse(m: RequestVoteResponse): void {
    if (this._role !== 'candidate' || m.preVote !== this.preCandidate || !m.granted) return;
    if (m.term !== (this.preCandidate ? this.term + 1 : this.term)) return;
    this.votes.add(m.from);
    if (!this.hasVoteQuorum()) return;
    if (this.preCandidate) this.campaign(false, false);
    else this.becomeLeader();
  }

  private hasVoteQuorum(): boolean {
    return hasQuorum(this.quorumConfig(this.config), (id) => this.votes.has(id));
  }

  /** True while this node follows (or is) a leader: CheckQuorum makes that a promise no other leader exists. */
  private inLease(): boolean {
    return this.opts.checkQuorum && this.leader !== null;
  }

  private becomeLeader(): void {
    this.setRole('leader');
    this.preCandidate = false;
    this.setLeader(this.id);
    this.progressMap = new Map();
    this.seq = 0;
    this.seqStartTick = new Map();
    this.readRoundOpen = false;
    this.ticks = 0;
    this.ticksSinceQuorumCheck = 0;
    this.transfer = null;
    // Pending promotions belong to the leader that armed them, unless every learner is a voter in the making.
    this.autoPromote = new Set(this.opts.autoPromoteLearners ? this.config.learners : []);
    this.pendingReads = [];
    this.readsAwaitingNoop = [];
    this.syncProgress();
    // A no-op entry in the new term lets the leader commit (and learn the commit index of) earlier entries.
    this.appendLocal({ term: this.term, index: this.log.lastIndex + 1, type: 'noop' });
    this.timer = 'heartbeat';
    this.broadcastDirty = true;
  }

  /** Steps down to follower in `term` (persisting a new term), following `leader` if known. */
  private becomeFollower(term: Term, leader: NodeId | null): void {
    if (term > this.term) {
      this.term = term;
      this.vote = null;
      this.pushHardState();
      this.leaderSeq = 0;
      this.verified = Math.max(this.commit, this.log.snapshotIndex);
      // Rounds restart with the new term. Forwarded reads survive only if the leader stays the same node (setLeader
      // fails them otherwise); they count their rounds from the start of the new term.
      for (const readId of this.forwarded.keys()) this.forwarded.set(readId, 0);
    }
    if (this._role === 'leader') this.stepDownCleanup();
    this.setRole('follower');
    this.preCandidate = false;
    this.setLeader(leader);
    this.timer = 'election';
  }

  private stepDownCleanup(): void {
    for (const r of [...this.readsAwaitingNoop, ...this.pendingReads]) this.failRead(r.readIds, r.from);
    this.pendingReads = [];
    this.readsAwaitingNoop = [];
    this.progressMap = new Map();
    this.transfer = null;
    this.autoPromote = new Set();
  }

  private setRole(role: Role): void {
    this._role = role;
  }

  private setLeader(leader: NodeId | null): void {
    if (this.leader === leader) return;
    this.leader = leader;
    this.lastAck = -1;
    // Reads forwarded to the previous leader will never be answered by it in a way we can trust to arrive.
    if (this.forwarded.size > 0) {
      for (const id of this.forwarded.keys()) {
        this.actions.push({ type: 'readFailed', readId: id, error: 'LEADERSHIP_LOST' });
      }
      this.forwarded.clear();
      this.forwardQueue = [];
    }
  }

  private leaderFrom(id: NodeId): boolean {
    return this.leader === id;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Log replication: follower side
  // -------------------------------------------------------------------------------------------------------------

  private followLeader(from: NodeId): void {
    if (this._role !== 'follower' || this.leader !== from) this.becomeFollower(this.term, from);
    this.timer = 'election';
  }

  private onAppendEntries(m: AppendEntries<C>): void {
    if (this._role === 'leader') return; // Two leaders in one term cannot happen; ignore defensively.
    this.followLeader(m.from);
    if (m.seq > this.leaderSeq) {
      this.leaderSeq = m.seq;
      if (this.forwarded.size > 0) this.resendOverdueReads();
    }
    if (this.installing) {
      this.ackDirty = true;
      return;
    }
    const log = this.log;
    const prev = m.prevLogIndex;
    if (prev > log.lastIndex) {
      this.rejectAppend(m, log.lastIndex + 1, 0);
      return;
    }
    if (prev >= log.snapshotIndex) {
      const t = log.term(prev)!;
      if (t !== m.prevLogTerm) {
        this.rejectAppend(m, log.firstIndexOfTerm(prev, t), t);
        return;
      }
    }
    // Entries before our snapshot are committed, hence identical to the leader's: skip them.
    const entries = m.entries;
    const n = entries.length;
    let k = 0;
    while (k < n && entries[k].index <= log.snapshotIndex) k++;
    while (k < n) {
      const e = entries[k];
      const t = log.term(e.index);
      if (t === undefined) break;
      if (t !== e.term) {
        this.truncateFrom(e.index);
        break;
      }
      k++;
    }
    if (k < n) {
      const fresh = k === 0 ? entries : entries.slice(k);
      for (const e of fresh) {
        log.push(e);
        if (e.type === 'config') this.configEntries.push({ index: e.index, config: e.config });
      }
      this.actions.push({ type: 'appendEntries', entries: fresh });
    }
    const last = prev + n;
    if (last > this.verified) this.verified = last;
    const commit = Math.min(m.leaderCommit, this.verified);
    if (commit > this.commit) this.commit = commit;
    this.ackDirty = true;
  }

  private rejectAppend(m: AppendEntries<C>, hintIndex: Index, hintTerm: Term): void {
    this.send({
      type: 'AppendEntriesResponse',
      term: this.term,
      from: this.id,
      to: m.from,
      success: false,
      matchIndex: m.prevLogIndex,
      seq: this.leaderSeq,
      hintIndex,
      hintTerm,
    });
  }

  private truncateFrom(index: Index): void {
    this.log.truncateFrom(index);
    if (this.durable >= index) this.durable = index - 1;
    while (this.configEntries.length > 0 && this.configEntries[this.configEntries.length - 1].index >= index) {
      this.configEntries.pop();
    }
  }

  /** The highest index a follower may acknowledge: durable here and known to match the leader's log. */
  private ackIndex(): Index {
    return this.bugs.ackUnpersisted ? this.verified : Math.min(this.durable, this.verified);
  }

  private flushFollower(): void {
    const leader = this.leader;
    if (leader === null || this._role !== 'follower') {
      this.ackDirty = false;
      return;
    }
    if (this.ackDirty) {
      this.ackDirty = false;
      const matchIndex = this.ackIndex();
      this.lastAck = matchIndex;
      this.send({
        type: 'AppendEntriesResponse',
        term: this.term,
        from: this.id,
        to: leader,
        success: true,
        matchIndex,
        seq: this.leaderSeq,
        hintIndex: 0,
        hintTerm: 0,
      });
    }
    if (this.forwardQueue.length > 0) {
      this.send({
        type: 'ReadIndexRequest',
        term: this.term,
        from: this.id,
        to: leader,
        readIds: this.forwardQueue,
      });
      this.forwardQueue = [];
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Log replication: leader side
  // -------------------------------------------------------------------------------------------------------------

  /** Appends an entry created by this node (leader proposals, no-ops, config changes, the bootstrap entry). */
  private appendLocal(entry: Entry<C>): void {
    this.log.push(entry);
    // Coalesce consecutive appends into one action so a batch of proposals becomes one storage write.
    const lastAction = this.actions[this.actions.length - 1];
    if (lastAction !== undefined && lastAction.type === 'appendEntries') {
      const list = lastAction.entries as Entry<C>[];
      if (list[list.length - 1].index === entry.index - 1) list.push(entry);
      else this.actions.push({ type: 'appendEntries', entries: [entry] });
    } else {
      this.actions.push({ type: 'appendEntries', entries: [entry] });
    }
    if (entry.type === 'config') {
      this.configEntries.push({ index: entry.index, config: entry.config });
      if (this._role === 'leader') this.syncProgress();
    }
    this.replicateDirty = true;
  }

  /** Makes the leader's progress map match the latest configuration's members. */
  private syncProgress(): void {
    const wanted = members(this.config).filter((id) => id !== this.id);
    for (const id of [...this.progressMap.keys()]) if (!wanted.includes(id)) this.progressMap.delete(id);
    for (const id of wanted) {
      if (!this.progressMap.has(id)) this.progressMap.set(id, newProgress(this.log.lastIndex + 1));
    }
  }

  private flushLeader(): void {
    const broadcast = this.broadcastDirty || this.readRoundOpen;
    if (this.replicateDirty || broadcast) {
      for (const [id, pr] of this.progressMap) {
        const sent = this.sendAppends(id, pr);
        if (!sent && broadcast) this.sendHeartbeat(id, pr);
      }
    }
    this.replicateDirty = false;
    this.broadcastDirty = false;
    this.readRoundOpen = false;
    // A single-voter cluster confirms reads by itself.
    if (this.pendingReads.length > 0) this.checkReads();
  }

  /** Sends whatever the follower's state allows; returns whether anything was sent. */
  private sendAppends(id: NodeId, pr: Progress): boolean {
    if (pr.state === 'snapshot') return false;
    const log = this.log;
    if (log.term(pr.nextIndex - 1) === undefined) {
      this.startSnapshot(id, pr);
      return false;
    }
    const last = log.lastIndex;
    const max = this.opts.maxEntriesPerMessage;
    if (pr.state === 'probe') {
      if (pr.probeSent) return false;
      const to = Math.min(last, pr.nextIndex + max - 1);
      this.sendAppend(id, pr.nextIndex - 1, to >= pr.nextIndex ? log.slice(pr.nextIndex, to) : []);
      pr.probeSent = true;
      return true;
    }
    let sent = false;
    while (pr.inflight.length < this.opts.maxInflightMessages && pr.nextIndex <= last) {
      const to = Math.min(last, pr.nextIndex + max - 1);
      this.sendAppend(id, pr.nextIndex - 1, log.slice(pr.nextIndex, to));
      pr.inflight.push(to);
      pr.nextIndex = to + 1;
      sent = true;
    }
    return sent;
  }

  /** An empty AppendEntries anchored at what the follower is known to hold, so it cannot be rejected spuriously. */
  private sendHeartbeat(id: NodeId, pr: Progress): void {
    let prev = pr.matchIndex;
    if (this.log.term(prev) === undefined) prev = this.log.snapshotIndex;
    this.sendAppend(id, prev, []);
  }

  private sendAppend(to: NodeId, prev: Index, entries: Entry<C>[]): void {
    this.send({
      type: 'AppendEntries',
      term: this.term,
      from: this.id,
      to,
      prevLogIndex: prev,
      prevLogTerm: this.log.term(prev)!,
      entries,
      leaderCommit: this.commit,
      seq: this.seq,
    });
  }

  private onAppendEntriesResponse(m: AppendEntriesResponse): void {
    if (this._role !== 'leader') return;
    const pr = this.progressMap.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.seq > pr.ackedSeq) {
      pr.ackedSeq = m.seq;
      if (this.pendingReads.length > 0) this.checkReads();
    }
    if (m.success) {
      if (pr.state === 'snapshot') {
        if (m.matchIndex < pr.snapshot!.meta.index) return;
        acknowledge(pr, m.matchIndex);
        becomeReplicate(pr);
      } else {
        const moved = acknowledge(pr, m.matchIndex);
        if (pr.state === 'probe') {
          pr.nextIndex = pr.matchIndex + 1;
          becomeReplicate(pr);
        }
        if (!moved) {
          if (pr.inflight.length < this.opts.maxInflightMessages) this.replicateDirty = true;
          return;
        }
      }
      this.replicateDirty = true;
      this.maybeCommit();
      if (this.transfer?.target === m.from) this.maybeSendTimeoutNow();
      if (this.autoPromote.has(m.from)) this.maybePromote(m.from);
      return;
    }
    // Rejected. Ignore stale answers: to a snapshot transfer, or about a position already known to match.
    if (pr.state === 'snapshot' || m.matchIndex <= pr.matchIndex) return;
    let next = m.hintIndex;
    if (m.hintTerm > 0) {
      const j = this.log.lastIndexOfTerm(m.hintTerm);
      if (j >= 0) next = j + 1;
    }
    next = Math.min(next, m.matchIndex, this.log.lastIndex + 1);
    becomeProbe(pr, Math.max(next, 1));
    this.replicateDirty = true;
  }

  /** Advances the commit index to the highest current-term entry a quorum has persisted (the paper's §5.4.2). */
  private maybeCommit(): void {
    const c = this.config;
    const n = quorumValue(
      this.quorumConfig(this.bugs.learnersCountInQuorum ? { ...c, voters: [...c.voters, ...c.learners] } : c),
      (id) => (id === this.id ? this.durable : (this.progressMap.get(id)?.matchIndex ?? 0)),
    );
    if (n <= this.commit) return;
    // Only entries of the current term are committed by counting replicas; earlier ones follow (Figure 8).
    if (!this.bugs.commitOldTermByCount && this.log.term(n) !== this.term) return;
    this.commitTo(n);
  }

  private commitTo(n: Index): void {
    this.commit = n;
    this.broadcastDirty = true;
    // Reads that waited for the first commit of this term can now take a read index.
    if (this.readsAwaitingNoop.length > 0 && this.log.term(this.commit) === this.term) {
      const waiting = this.readsAwaitingNoop;
      this.readsAwaitingNoop = [];
      for (const r of waiting) this.registerRead(r.readIds, r.from, r.tick);
    }
    const config = this.config;
    const configIndex = this.configEntries.length > 0 ? this.configEntries[this.configEntries.length - 1].index : 0;
    if (configIndex > n) return;
    if (isJoint(config)) {
      // C(old,new) is committed: move on to C(new).
      this.appendLocal({
        term: this.term,
        index: this.log.lastIndex + 1,
        type: 'config',
        config: { voters: config.voters, learners: config.learners },
      });
    } else if (!config.voters.includes(this.id)) {
      // C(new) without this node is committed: hand over by stepping down (the paper's section 6). The remaining
      // voters still follow this node and would refuse PreVotes until their own election timeouts expire, so tell
      // the most up-to-date one to campaign at once (TimeoutNow is only a hint: votes still decide).
      let target: NodeId | null = null;
      let best = -1;
      for (const id of config.voters) {
        const match = this.progressMap.get(id)?.matchIndex ?? -1;
        if (match > best) {
          best = match;
          target = id;
        }
      }
      if (target !== null && best >= n) this.send({ type: 'TimeoutNow', term: this.term, from: this.id, to: target });
      this.becomeFollower(this.term, null);
      return;
    }
    for (const id of this.autoPromote) this.maybePromote(id);
  }

  private heartbeatTick(): void {
    this.timer = 'heartbeat';
    this.ticks++;
    // Every heartbeat is a new confirmation round; lease reads measure from when the round started.
    this.seq++;
    this.seqStartTick.set(this.seq, this.ticks);
    this.broadcastDirty = true;
    for (const [id, pr] of this.progressMap) {
      if (pr.state === 'probe') {
        pr.probeSent = false;
      } else if (pr.state === 'replicate') {
        // Lost messages stall a full pipeline: if nothing was acknowledged for two heartbeats, resend.
        if (pr.inflight.length > 0 && pr.matchIndex === pr.matchAtLastTick) {
          if (++pr.stallTicks >= 2) becomeProbe(pr, pr.matchIndex + 1);
        } else {
          pr.stallTicks = 0;
        }
        pr.matchAtLastTick = pr.matchIndex;
      } else if (pr.snapshot !== null && ++pr.snapshot.idleTicks >= 3) {
        this.resumeSnapshot(id, pr);
      }
    }
    if (++this.ticksSinceQuorumCheck >= this.opts.electionTicks) {
      this.ticksSinceQuorumCheck = 0;
      const active = (id: NodeId) => id === this.id || (this.progressMap.get(id)?.recentActive ?? false);
      if (this.opts.checkQuorum && !hasQuorum(this.quorumConfig(this.config), active)) {
        this.becomeFollower(this.term, null);
        return;
      }
      for (const pr of this.progressMap.values()) pr.recentActive = false;
    }
    this.expireReads();
    if (this.transfer !== null) {
      if (this.ticks - this.transfer.startTick >= this.opts.electionTicks) this.transfer = null;
      else this.maybeSendTimeoutNow();
    }
    for (const id of this.autoPromote) this.maybePromote(id);
    this.pruneSeqTicks();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Membership
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Changes the configuration to `next`. If the voters change this goes through joint consensus: C(old,new) is
   * appended, and once it commits the leader appends C(new) by itself. Learner-only changes take one step.
   * Refused while another change is in progress.
   */
  changeConfig(next: { voters: readonly NodeId[]; learners: readonly NodeId[] }): Result<{ index: Index }> {
    const refused = this.refuseUnlessLeader();
    if (refused) return refused;
    if (this.configChangePending()) {
      return err('CONFIG_CHANGE_IN_PROGRESS', 'a configuration change is already in progress; retry once it commits');
    }
    if (this.log.term(this.commit) !== this.term) {
      return err('CONFIG_CHANGE_IN_PROGRESS', 'the new leader has not committed an entry in its term yet; retry');
    }
    const problem = validateConfig(next.voters, next.learners);
    if (problem) return err('INVALID_CONFIG', problem);
    const current = this.config;
    const config: ClusterConfig = sameMembers(current.voters, next.voters)
      ? { voters: [...current.voters], learners: [...next.learners] }
      : { voters: [...next.voters], learners: [...next.learners], oldVoters: [...current.voters] };
    const index = this.log.lastIndex + 1;
    this.appendLocal({ term: this.term, index, type: 'config', config });
    return ok({ index });
  }

  /** Adds `id` as a learner. */
  addLearner(id: NodeId): Result<{ index: Index }> {
    const c = this.config;
    if (isVoter(c, id) || c.learners.includes(id)) return err('INVALID_CONFIG', `${id} is already a member`);
    const r = this.changeConfig({ voters: c.voters, learners: [...c.learners, id] });
    if (r.ok && this.opts.autoPromoteLearners) this.autoPromote.add(id);
    return r;
  }

  /**
   * Adds `id` the safe way: as a learner first, promoted to voter by the leader once it has caught up with the
   * commit index (so a slow new node never stalls commits). Calling it again for a learner re-arms the promotion
   * (useful after a leader change, which forgets pending promotions).
   */
  addServer(id: NodeId): Result<{ index: Index }> {
    const c = this.config;
    if (c.learners.includes(id)) {
      const refused = this.refuseUnlessLeader();
      if (refused) return refused;
      this.autoPromote.add(id);
      this.maybePromote(id);
      return ok({ index: this.latestConfigIndex() });
    }
    const r = this.addLearner(id);
    if (r.ok) this.autoPromote.add(id);
    return r;
  }

  /** Promotes learner `id` to voter (through joint consensus). */
  promote(id: NodeId): Result<{ index: Index }> {
    const c = this.config;
    if (!c.learners.includes(id)) return err('INVALID_CONFIG', `${id} is not a learner`);
    return this.changeConfig({ voters: [...c.voters, id], learners: c.learners.filter((l) => l !== id) });
  }

  /** Removes `id` (voter or learner). Removing the leader itself makes it step down once C(new) commits. */
  removeServer(id: NodeId): Result<{ index: Index }> {
    const c = this.config;
    if (!isVoter(c, id) && !c.learners.includes(id)) return err('INVALID_CONFIG', `${id} is not a member`);
    return this.changeConfig({
      voters: c.voters.filter((v) => v !== id),
      learners: c.learners.filter((l) => l !== id),
    });
  }

  private maybePromote(id: NodeId): void {
    if (this._role !== 'leader') return;
    const pr = this.progressMap.get(id);
    if (!this.config.learners.includes(id) || pr === undefined) {
      if (!this.config.learners.includes(id) && !isVoter(this.config, id)) this.autoPromote.delete(id);
      return;
    }
    if (this.configChangePending() || this.transfer !== null || this.log.term(this.commit) !== this.term) return;
    if (pr.matchIndex < this.commit) return;
    this.autoPromote.delete(id);
    this.promote(id);
  }

  private latestConfigIndex(): Index {
    const n = this.configEntries.length;
    return n === 0 ? this.log.snapshotIndex : this.configEntries[n - 1].index;
  }

  private configChangePending(): boolean {
    return this.latestConfigIndex() > this.commit || isJoint(this.config);
  }

  private configAt(index: Index): ClusterConfig {
    for (let i = this.configEntries.length - 1; i >= 0; i--) {
      if (this.configEntries[i].index <= index) return this.configEntries[i].config;
    }
    return this.snapshotConfig;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Snapshots
  // -------------------------------------------------------------------------------------------------------------

  /**
   * The metadata of a snapshot of the state machine at `index` (which must be applied and still in the log):
   * its term and the configuration in effect there. Throws a {@link RaftError} (`INVALID_INDEX`) otherwise.
   */
  snapshotMeta(index: Index): SnapshotMeta {
    const term = this.log.term(index);
    if (index > this.applied || term === undefined) {
      throw new RaftError(
        'INVALID_INDEX',
        `cannot snapshot at ${index}: must be applied (<= ${this.applied}) and in the log (>= ${this.log.snapshotIndex})`,
      );
    }
    return { index, term, config: this.bugs.snapshotLatestConfig ? this.config : this.configAt(index) };
  }

  /**
   * The runtime has durably saved a snapshot described by `meta` (from {@link snapshotMeta}); the log up to
   * `meta.index` is dropped from memory. The runtime drops it from storage too.
   */
  compactLog(meta: SnapshotMeta): Result<void> {
    if (meta.index <= this.log.snapshotIndex) return ok(undefined);
    if (meta.index > this.applied || this.log.term(meta.index) !== meta.term) {
      return err('INVALID_INDEX', `cannot compact to ${meta.index}: not applied or term mismatch`);
    }
    this.log.compact(meta.index, meta.term);
    this.snap = meta;
    this.snapshotConfig = meta.config;
    this.configEntries = this.configEntries.filter((c) => c.index > meta.index);
    if (this.durable < meta.index) this.durable = meta.index;
    return ok(undefined);
  }

  private startSnapshot(id: NodeId, pr: Progress): void {
    const meta = this.snap;
    if (meta === null) return;
    pr.state = 'snapshot';
    pr.inflight.length = 0;
    pr.snapshot = { meta, offset: 0, waiting: true, sentLast: false, idleTicks: 0 };
    this.requestChunk(id, meta, 0);
  }

  private resumeSnapshot(id: NodeId, pr: Progress): void {
    const t = pr.snapshot!;
    t.idleTicks = 0;
    if (this.snap !== null && this.snap.index > t.meta.index) {
      // The runtime may have discarded the old snapshot: start over with the newest one.
      t.meta = this.snap;
      t.offset = 0;
    }
    t.sentLast = false;
    t.waiting = true;
    this.requestChunk(id, t.meta, t.offset);
  }

  private requestChunk(to: NodeId, snapshot: SnapshotMeta, offset: number): void {
    this.actions.push({ type: 'readSnapshotChunk', to, snapshot, offset, maxBytes: this.opts.snapshotChunkBytes });
  }

  /**
   * The runtime's answer to a `readSnapshotChunk` action: the bytes at `offset` of snapshot `meta`, and whether
   * they are the last ones. The core wraps them in an {@link InstallSnapshot} message (if still relevant).
   */
  sendSnapshotChunk(to: NodeId, meta: SnapshotMeta, offset: number, data: Uint8Array, done: boolean): void {
    if (this._role !== 'leader') return;
    const t = this.progressMap.get(to)?.snapshot;
    if (!t || t.meta.index !== meta.index || t.meta.term !== meta.term || t.offset !== offset) return;
    t.sentLast = done;
    t.idleTicks = 0;
    this.send({ type: 'InstallSnapshot', term: this.term, from: this.id, to, snapshot: meta, offset, data, done });
  }

  private onInstallSnapshotResponse(m: InstallSnapshotResponse): void {
    if (this._role !== 'leader') return;
    const pr = this.progressMap.get(m.from);
    const t = pr?.snapshot;
    if (!pr || !t || t.meta.index !== m.snapshotIndex) return;
    pr.recentActive = true;
    t.idleTicks = 0;
    if (m.nextOffset < t.offset) {
      t.offset = m.nextOffset;
    } else if (m.nextOffset > t.offset) {
      t.offset = m.nextOffset;
      if (t.sentLast) return; // Everything sent and received: wait for the follower to install it.
    } else if (t.sentLast) {
      return;
    }
    this.requestChunk(m.from, t.meta, t.offset);
  }

  private onInstallSnapshot(m: InstallSnapshot): void {
    if (this._role === 'leader') return;
    this.followLeader(m.from);
    if (this.installing) return;
    const meta = m.snapshot;
    if (meta.index <= this.commit || this.log.term(meta.index) === meta.term) {
      // Nothing to install: everything the snapshot holds is already here. Acknowledge what matches.
      if (this.log.term(meta.index) === meta.term) {
        this.verified = Math.max(this.verified, meta.index);
        this.commit = Math.max(this.commit, Math.min(meta.index, this.log.lastIndex));
      }
      this.receiving = null;
      this.ackDirty = true;
      return;
    }
    if (m.offset === 0) this.receiving = { meta, nextOffset: 0 };
    const r = this.receiving;
    const same = r !== null && r.meta.index === meta.index && r.meta.term === meta.term;
    if (!same || m.offset !== r.nextOffset) {
      this.answerChunk(m, same ? r.nextOffset : 0);
      return;
    }
    this.actions.push({ type: 'saveSnapshotChunk', snapshot: meta, offset: m.offset, data: m.data, done: m.done });
    r.nextOffset += m.data.length;
    this.answerChunk(m, r.nextOffset);
    if (m.done) {
      this.installing = meta;
      this.receiving = null;
      this.actions.push({ type: 'installSnapshot', snapshot: meta });
    }
  }

  private answerChunk(m: InstallSnapshot, nextOffset: number): void {
    this.send({
      type: 'InstallSnapshotResponse',
      term: this.term,
      from: this.id,
      to: m.from,
      snapshotIndex: m.snapshot.index,
      nextOffset,
    });
  }

  /**
   * The runtime finished an `installSnapshot` action: the snapshot is durable, the state machine restored from
   * it and the stored log discarded. The node continues from the snapshot.
   */
  snapshotInstalled(meta: SnapshotMeta): void {
    const inst = this.installing;
    if (inst === null || inst.index !== meta.index || inst.term !== meta.term) return;
    this.installing = null;
    this.log.reset(meta.index, meta.term);
    this.snap = meta;
    this.snapshotConfig = meta.config;
    this.configEntries = [];
    this.commit = Math.max(this.commit, meta.index);
    this.applied = Math.max(this.applied, meta.index);
    this.durable = meta.index;
    // A snapshot holds only committed entries, which match every future leader's log.
    this.verified = Math.max(this.verified, meta.index);
    this.ackDirty = true;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Starts a linearizable read. When it is safe to read the state machine (this node has applied every entry up to
   * the confirmed read index) a `readReady` action with `readId` is emitted; if it cannot be confirmed, a
   * `readFailed` action. On the leader this is ReadIndex (or a lease read if configured); on a follower the read
   * index is requested from the leader. Reads issued before the next drain share one confirmation round.
   *
   * Every read ends: a follower sends its request again after `electionTicks` of the leader's heartbeat rounds
   * without an answer (the request or the answer was lost), and a leader fails a read it could not confirm within
   * `electionTicks` heartbeats (`LEADERSHIP_LOST`). See docs/core.md, "Reads".
   */
  read(readId: ReadId): void {
    if (this._role === 'leader') {
      this.registerRead([readId], null);
    } else if (this.leader !== null && this._role === 'follower') {
      this.forwardQueue.push(readId);
      this.forwarded.delete(readId);
      this.forwarded.set(readId, this.leaderSeq);
    } else {
      this.actions.push({ type: 'readFailed', readId, error: 'NOT_LEADER' });
    }
  }

  private registerRead(readIds: readonly ReadId[], from: NodeId | null, tick = this.ticks): void {
    if (this.log.term(this.commit) !== this.term) {
      // The leader does not know the latest commit index until its no-op commits (the paper's section 8).
      this.readsAwaitingNoop.push({ readIds, from, tick });
      return;
    }
    if (this.bugs.readWithoutConfirmation || (this.opts.readMode === 'lease' && this.leaseValid())) {
      this.confirmRead(readIds, from, this.commit);
      return;
    }
    if (!this.readRoundOpen) {
      this.readRoundOpen = true;
      this.seq++;
      this.seqStartTick.set(this.seq, this.ticks);
    }
    this.pendingReads.push({ readIds, from, index: this.commit, seq: this.seq, tick });
  }

  /** Confirms reads whose heartbeat round a quorum has acknowledged. */
  private checkReads(): void {
    const acked = this.quorumAckedSeq();
    let k = 0;
    while (k < this.pendingReads.length && this.pendingReads[k].seq <= acked) {
      const r = this.pendingReads[k++];
      this.confirmRead(r.readIds, r.from, r.index);
    }
    if (k > 0) this.pendingReads.splice(0, k);
  }

  private quorumAckedSeq(): number {
    return quorumValue(this.quorumConfig(this.config), (id) =>
      id === this.id ? this.seq : (this.progressMap.get(id)?.ackedSeq ?? 0),
    );
  }

  /** The configuration quorums are counted in: `c`, unless a test planted the joint-majority bug (C_new only). */
  private quorumConfig(c: ClusterConfig): ClusterConfig {
    return this.bugs.jointNewMajorityOnly && c.oldVoters !== undefined ? { voters: c.voters, learners: c.learners } : c;
  }

  /**
   * A lease holds while a quorum acknowledged a round that started less than `leaseTicks` heartbeats ago: those
   * followers will not vote for anyone else until their own (longer) election timeout expires. Never during a
   * transfer, which deliberately lets another node win at once.
   */
  private leaseValid(): boolean {
    if (this.transfer !== null && !this.bugs.leaseDuringTransfer) return false;
    const start = this.seqStartTick.get(this.quorumAckedSeq());
    return start !== undefined && this.ticks - start < this.opts.leaseTicks;
  }

  private pruneSeqTicks(): void {
    let low = this.quorumAckedSeq();
    for (const pr of this.progressMap.values()) low = Math.min(low, pr.ackedSeq);
    for (const s of this.seqStartTick.keys()) {
      if (s >= low) break;
      this.seqStartTick.delete(s);
    }
  }

  /**
   * Fails reads that have waited `electionTicks` heartbeats for their confirmation round (or for the leader's no-op
   * to commit). CheckQuorum would depose a leader cut off from its quorum about as fast, but not when it is
   * disabled, nor when followers answer heartbeats while their disks stall the no-op: without this bound such reads
   * would wait for ever. Failing is safe (nothing was read) and the error is retryable.
   */
  private expireReads(): void {
    if (this.bugs.forgetUnansweredReads) return;
    const bound = this.opts.electionTicks;
    let k = 0;
    while (k < this.pendingReads.length && this.ticks - this.pendingReads[k].tick >= bound) {
      const r = this.pendingReads[k++];
      this.failRead(r.readIds, r.from);
    }
    if (k > 0) this.pendingReads.splice(0, k);
    k = 0;
    while (k < this.readsAwaitingNoop.length && this.ticks - this.readsAwaitingNoop[k].tick >= bound) {
      const r = this.readsAwaitingNoop[k++];
      this.failRead(r.readIds, r.from);
    }
    if (k > 0) this.readsAwaitingNoop.splice(0, k);
  }

  /**
   * Queues again, for the next drain, the forwarded reads whose request went out `electionTicks` or more of the
   * leader's heartbeat rounds ago and are still unanswered: the request or its answer was lost. The follower has no
   * clock, so it counts the rounds (`seq`) in the leader's AppendEntries. Sending again is safe: any read index the
   * leader confirms after the read was issued is linearizable, and only the first answer counts.
   */
  private resendOverdueReads(): void {
    if (this.bugs.forgetUnansweredReads) return;
    const bound = this.opts.electionTicks;
    const overdue: ReadId[] = [];
    for (const [readId, sentAt] of this.forwarded) {
      if (this.leaderSeq - sentAt < bound) break;
      overdue.push(readId);
    }
    for (const readId of overdue) {
      this.forwarded.delete(readId);
      this.forwarded.set(readId, this.leaderSeq);
      this.forwardQueue.push(readId);
    }
  }

  private confirmRead(readIds: readonly ReadId[], from: NodeId | null, index: Index): void {
    if (from === null) {
      for (const readId of readIds) this.readyReads.push({ readId, index });
    } else {
      this.send({ type: 'ReadIndexResponse', term: this.term, from: this.id, to: from, readIds, readIndex: index });
    }
  }

  private failRead(readIds: readonly ReadId[], from: NodeId | null): void {
    if (from === null) {
      for (const readId of readIds) this.actions.push({ type: 'readFailed', readId, error: 'LEADERSHIP_LOST' });
    } else {
      this.send({ type: 'ReadIndexResponse', term: this.term, from: this.id, to: from, readIds, readIndex: -1 });
    }
  }

  private onReadIndexRequest(m: ReadIndexRequest): void {
    if (this._role !== 'leader') {
      this.send({
        type: 'ReadIndexResponse',
        term: this.term,
        from: this.id,
        to: m.from,
        readIds: m.readIds,
        readIndex: -1,
      });
      return;
    }
    this.registerRead(m.readIds, m.from);
  }

  private onReadIndexResponse(m: ReadIndexResponse): void {
    for (const readId of m.readIds) {
      if (!this.forwarded.delete(readId)) continue;
      if (m.readIndex < 0) this.actions.push({ type: 'readFailed', readId, error: 'LEADERSHIP_LOST' });
      else this.readyReads.push({ readId, index: m.readIndex });
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Leadership transfer
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Hands leadership to voter `target`: proposals are refused meanwhile, the target is brought up to date, then
   * told to campaign at once (TimeoutNow). If it has not won within an election timeout the transfer is abandoned
   * and this leader carries on.
   */
  transferLeadership(target: NodeId): Result<void> {
    if (this._role !== 'leader') return err('NOT_LEADER', 'only the leader can transfer leadership', this.leader);
    if (target === this.id) return ok(undefined);
    if (!this.config.voters.includes(target) || !this.progressMap.has(target)) {
      return err('INVALID_TARGET', `${target} is not a voter of the current configuration`);
    }
    this.transfer = { target, startTick: this.ticks };
    this.maybeSendTimeoutNow();
    this.replicateDirty = true;
    return ok(undefined);
  }

  private maybeSendTimeoutNow(): void {
    const t = this.transfer;
    if (t === null) return;
    const pr = this.progressMap.get(t.target);
    if (pr === undefined || pr.matchIndex !== this.log.lastIndex) return;
    this.send({ type: 'TimeoutNow', term: this.term, from: this.id, to: t.target });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------------------------------------------

  private refuseUnlessLeader(): { ok: false; error: RaftError } | null {
    if (this._role !== 'leader') {
      return { ok: false, error: new RaftError('NOT_LEADER', 'this node is not the leader', this.leader) };
    }
    if (this.transfer !== null) {
      const message = `leadership is being transferred to ${this.transfer.target}`;
      return { ok: false, error: new RaftError('TRANSFER_IN_PROGRESS', message, this.id) };
    }
    return null;
  }

  private flushApply(): void {
    if (this.installing === null && this.applied < this.commit) {
      const entries = this.log.slice(this.applied + 1, this.commit);
      this.applied = this.commit;
      this.actions.push({ type: 'apply', entries });
    }
    if (this.readyReads.length > 0) {
      const waiting: { readId: ReadId; index: Index }[] = [];
      for (const r of this.readyReads) {
        if (r.index <= this.applied) this.actions.push({ type: 'readReady', readId: r.readId, index: r.index });
        else waiting.push(r);
      }
      this.readyReads = waiting;
    }
  }

  private pushHardState(): void {
    this.actions.push({ type: 'persistHardState', hardState: { term: this.term, votedFor: this.vote } });
  }

  private send(message: Message<C>): void {
    this.actions.push({ type: 'send', message });
  }
}

/** Re-exported so callers can name the codes without importing types. */
export type { RaftErrorCode };
