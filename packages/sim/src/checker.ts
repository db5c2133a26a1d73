/**
 * The Raft safety properties, checked incrementally as a runtime performs a node's actions.
 *
 * The checker is independent of the simulator: any runtime can feed it (see {@link SafetyChecker}).
 *
 * @packageDocumentation
 */
import type {
  Action,
  ClusterConfig,
  Entry,
  HardState,
  Index,
  NodeId,
  ReadId,
  Role,
  SnapshotMeta,
  Term,
} from '@raft/core';
import type { StateMachine } from './state-machine.js';

/** The properties the {@link SafetyChecker} enforces. */
export type SafetyProperty =
  /** At most one leader per term, across the whole history (and a node never changes its vote within a term). */
  | 'election-safety'
  /** A leader never overwrites or deletes entries of its own log during its term. */
  | 'leader-append-only'
  /** Two logs with an entry of the same index and term are identical up to that entry. */
  | 'log-matching'
  /** A leader's log contains every entry committed in earlier terms. */
  | 'leader-completeness'
  /** No two nodes commit or apply different entries at the same index; each node applies in order, without gaps. */
  | 'state-machine-safety'
  /** Every applied command was proposed (and, by default, is applied at one index only). */
  | 'applied-was-proposed'
  /** A read is served at an index >= every commit index observed when it was issued, after that index was applied. */
  | 'linearizable-read'
  /** A leader never has more than one uncommitted configuration entry in its log. */
  | 'single-config-change'
  /** A snapshot holds exactly the state of the committed prefix it claims (term, configuration, state bytes). */
  | 'snapshot-safety'
  /** The runtime contract of the core was broken (state and actions disagree, invalid action sequence, ...). */
  | 'runtime-contract'
  /**
   * What a node says is on its disk: every message it sends speaks in a term its disk holds, a vote it grants is
   * on its disk, and an entry it acknowledges is durable (simulator only: it sees each node's disk).
   */
  | 'durability'
  /** A client told its command was certainly not applied finds it applied (simulator only). */
  | 'client-answer'
  /** After faults stopped, no leader emerged or a new proposal did not commit within the bound (schedules only). */
  | 'liveness';

/** Where a violation happened. */
export interface ViolationDetails {
  /** The node concerned, when there is one. */
  node?: NodeId;
  /** The log index concerned. */
  index?: Index;
  /** The term concerned. */
  term?: Term;
}

/** Thrown by the {@link SafetyChecker} when a property does not hold. The message says what differed. */
export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation';
  /**
   * @param property - which property was violated
   * @param description - what differed
   * @param details - node, index and term concerned
   */
  constructor(
    readonly property: SafetyProperty,
    description: string,
    readonly details: ViolationDetails = {},
  ) {
    super(`[${property}] ${description}`);
  }
}

/** What the checker needs to know about a node after each input (a subset of `RaftNode`'s read-only state). */
export interface NodeView {
  /** Current role. */
  readonly role: Role;
  /** Current term. */
  readonly currentTerm: Term;
  /** Highest index known committed. */
  readonly commitIndex: Index;
  /** Index of the last log entry (the snapshot index when the log is empty). */
  readonly lastLogIndex: Index;
  /** Term of the last log entry. */
  readonly lastLogTerm: Term;
}

/** Options of {@link SafetyChecker}. */
export interface SafetyCheckerOptions<C> {
  /** A canonical string identifying a command (default `JSON.stringify`). Equal keys mean equal commands. */
  commandKey?: (command: C) => string;
  /**
   * Makes a fresh state machine. When given, every snapshot's bytes are compared with a reference machine that
   * replayed the committed log up to the snapshot's index.
   */
  stateMachine?: () => StateMachine<C>;
  /** Fail when one command is applied at two different indexes (true unless your clients retry). Default true. */
  uniqueCommands?: boolean;
  /**
   * Commands that may legitimately appear at several indexes (a retried exactly-once command: the runtime's session
   * table applies it once, whatever the log holds). Default: none.
   */
  mayRepeat?: (command: C) => boolean;
  /** Compare the node's reported last log index/term with the log implied by its actions. Default true. */
  checkContract?: boolean;
}

/** The log of one node as implied by its actions: a base (snapshot) followed by entries. */
class ShadowLog<C> {
  base = 0;
  baseTerm = 0;
  entries: Entry<C>[] = [];
  /** Indexes of config entries in `entries`, ascending. */
  configs: Index[] = [];

  get last(): Index {
    return this.base + this.entries.length;
  }

  get lastTerm(): Term {
    const n = this.entries.length;
    return n > 0 ? this.entries[n - 1].term : this.baseTerm;
  }

  termAt(i: Index): Term | undefined {
    if (i === this.base) return this.baseTerm;
    if (i < this.base) return i === 0 ? 0 : undefined;
    return this.entries[i - this.base - 1]?.term;
  }

  at(i: Index): Entry<C> | undefined {
    return i > this.base ? this.entries[i - this.base - 1] : undefined;
  }

  reset(base: Index, baseTerm: Term, entries: readonly Entry<C>[]): void {
    this.base = base;
    this.baseTerm = baseTerm;
    this.entries = [];
    this.configs = [];
    for (const e of entries) this.push(e);
  }

  truncateFrom(i: Index): void {
    const keep = Math.max(0, i - this.base - 1);
    if (keep < this.entries.length) this.entries.length = keep;
    while (this.configs.length > 0 && this.configs[this.configs.length - 1] >= i) this.configs.pop();
  }

  push(e: Entry<C>): void {
    this.entries.push(e);
    if (e.type === 'config') this.configs.push(e.index);
  }

  compact(index: Index, term: Term): void {
    if (index <= this.base) return;
    const drop = Math.min(this.entries.length, index - this.base);
    this.entries = this.entries.slice(drop);
    this.base = index;
    this.baseTerm = term;
    while (this.configs.length > 0 && this.configs[0] <= index) this.configs.shift();
  }

  lastConfigBefore(i: Index): Index {
    for (let k = this.configs.length - 1; k >= 0; k--) if (this.configs[k] < i) return this.configs[k];
    return -1;
  }
}

interface NodeRecord<C> {
  readonly log: ShadowLog<C>;
  incarnation: number;
  applied: Index;
  commitIndex: Index;
  leaderTerm: Term;
  leaderLast: Index;
  hardTerm: Term;
  hardVote: NodeId | null;
  reads: Map<ReadId, Index>;
}

interface Variant {
  term: Term;
  key: string;
  prevTerm: Term;
  /** The first node seen holding it (for messages). */
  node: NodeId;
  /** Every node whose log held it at some point (a crash that loses it from a node's disk removes that node). */
  holders: Set<NodeId>;
}

/**
 * Checks Raft's safety properties incrementally, from the events a runtime observes while performing a node's
 * actions. Every method throws a {@link SafetyViolation} as soon as a property fails.
 *
 * Feeding it from your own runtime:
 * 1. `nodeStarted` on start, restart (with what was loaded from disk) and after a disk wipe.
 * 2. For each action, in order: `hardStatePersisted`, `logAppended`, `applied`, `readReady` / `readFailed`,
 *    `snapshotInstalled`; for local snapshots `snapshotTaken` then `logCompacted`.
 * 3. `proposed` before every `propose`, `readIssued` before every `read`.
 * 4. `observe` after each input once its actions are performed; `audit` whenever you like (e.g. after each step).
 *
 * @typeParam C - the command type
 */
export class SafetyChecker<C = unknown> {
  private readonly nodes = new Map<NodeId, NodeRecord<C>>();
  private readonly leaders = new Map<Term, NodeId>();
  /** index -> the (term, content, previous term) variants seen in any log. */
  private readonly variants: (Variant[] | undefined)[] = [];
  private readonly committedTerm: Term[] = [0];
  private readonly committedKey: string[] = [''];
  private readonly committedEntry: (Entry<C> | null)[] = [null];
  /** The term of the first node observed to commit each index (the term it was committed in). */
  private readonly commitTerm: Term[] = [0];
  private readonly appliedKey: (string | undefined)[] = [];
  private readonly appliedTerm: Term[] = [];
  private readonly proposedKeys = new Set<string>();
  private readonly commandIndex = new Map<string, Index>();
  private maxCommit = 0;
  private readonly commandKey: (command: C) => string;
  private readonly uniqueCommands: boolean;
  private readonly mayRepeat: (command: C) => boolean;
  private readonly checkContract: boolean;
  private readonly makeStateMachine: (() => StateMachine<C>) | undefined;
  private reference: { index: Index; sm: StateMachine<C> } | null = null;

  /** Counters of what was checked (for reports). */
  readonly stats = { entriesChecked: 0, applied: 0, reads: 0, snapshots: 0, elections: 0, audits: 0 };

  /** @param options - see {@link SafetyCheckerOptions} */
  constructor(options: SafetyCheckerOptions<C> = {}) {
    this.commandKey = options.commandKey ?? ((c) => JSON.stringify(c));
    this.uniqueCommands = options.uniqueCommands ?? true;
    this.mayRepeat = options.mayRepeat ?? (() => false);
    this.checkContract = options.checkContract ?? true;
    this.makeStateMachine = options.stateMachine;
  }

  /** The highest commit index any node has been observed with. */
  get highestCommitIndex(): Index {
    return this.maxCommit;
  }

  /** Length of the committed log known to the checker (entries 1..length are known). */
  get committedLength(): Index {
    return this.committedTerm.length - 1;
  }

  /** @returns the committed entry at `index` (or undefined if not (yet) known to be committed). */
  committedAt(index: Index): Entry<C> | undefined {
    return this.committedEntry[index] ?? undefined;
  }

  /** @returns the node that was leader of `term`, if any was observed. */
  leaderOf(term: Term): NodeId | undefined {
    return this.leaders.get(term);
  }

  /** @returns every observed (term, leader) pair, by term. */
  leaderHistory(): [Term, NodeId][] {
    return [...this.leaders.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** A canonical string of an entry's content (not its index or term). */
  entryKey(e: Entry<C>): string {
    switch (e.type) {
      case 'command':
        return `c${this.commandKey(e.command)}`;
      case 'noop':
        return 'n';
      case 'config':
        return `g${configKey(e.config)}`;
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Lifecycle
  // -------------------------------------------------------------------------------------------------------------

  /**
   * A node (re)started: `snapshot` and `entries` are what it loaded from its disk (nothing for a fresh node),
   * `hardState` its durable term and vote. Volatile per-node tracking (apply cursor, commit index, leadership,
   * pending reads) starts over.
   */
  nodeStarted(
    node: NodeId,
    persisted: { hardState?: HardState; snapshot?: SnapshotMeta | null; entries?: readonly Entry<C>[] } = {},
  ): void {
    const prev = this.nodes.get(node);
    const rec: NodeRecord<C> = {
      log: prev?.log ?? new ShadowLog<C>(),
      incarnation: (prev?.incarnation ?? 0) + 1,
      applied: persisted.snapshot?.index ?? 0,
      commitIndex: 0,
      leaderTerm: -1,
      leaderLast: 0,
      hardTerm: persisted.hardState?.term ?? 0,
      hardVote: persisted.hardState?.votedFor ?? null,
      reads: new Map(),
    };
    const snap = persisted.snapshot ?? null;
    rec.log.reset(snap?.index ?? 0, snap?.term ?? 0, []);
    this.nodes.set(node, rec);
    if (snap !== null && snap.index > 0 && snap.index <= this.committedLength) {
      if (this.committedTerm[snap.index] !== snap.term) {
        throw new SafetyViolation(
          'snapshot-safety',
          `node ${node} restarted from a snapshot at index ${snap.index} term ${snap.term}, but the committed entry there has term ${this.committedTerm[snap.index]}`,
          { node, index: snap.index, term: snap.term },
        );
      }
    }
    const entries = persisted.entries ?? [];
    if (entries.length > 0) this.appendToShadow(node, rec, entries, 'restored from disk');
  }

  /** Records that `command` was proposed (call before `propose`, whether or not the proposal is accepted). */
  proposed(command: C): void {
    this.proposedKeys.add(this.commandKey(command));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Actions
  // -------------------------------------------------------------------------------------------------------------

  /** A `persistHardState` action was performed. The term never decreases; the vote never changes within a term. */
  hardStatePersisted(node: NodeId, hs: HardState): void {
    const rec = this.rec(node);
    if (hs.term < rec.hardTerm) {
      throw new SafetyViolation(
        'election-safety',
        `node ${node} persisted term ${hs.term} after term ${rec.hardTerm}: terms must not decrease`,
        { node, term: hs.term },
      );
    }
    if (hs.term === rec.hardTerm && rec.hardVote !== null && hs.votedFor !== rec.hardVote) {
      throw new SafetyViolation(
        'election-safety',
        `node ${node} changed its vote in term ${hs.term} from ${rec.hardVote} to ${hs.votedFor}`,
        { node, term: hs.term },
      );
    }
    rec.hardTerm = hs.term;
    rec.hardVote = hs.votedFor;
  }

  /**
   * An `appendEntries` action was performed (entries replace the log from `entries[0].index` on).
   *
   * @param leader - when the node was leader both before and after the input that produced the action, its term
   *   (the append must then extend the log: leader append-only); otherwise -1
   * @param leaderCommit - when the node is leader after that input, its commit index (for the single-config-change
   *   rule); otherwise -1
   */
  logAppended(node: NodeId, entries: readonly Entry<C>[], leader: Term = -1, leaderCommit: Index = -1): void {
    if (entries.length === 0) return;
    const rec = this.rec(node);
    const log = rec.log;
    const first = entries[0].index;
    if (leader >= 0 && first !== log.last + 1) {
      const old = log.at(first);
      throw new SafetyViolation(
        'leader-append-only',
        `leader ${node} (term ${leader}) rewrote its log from index ${first} (its last index was ${log.last}` +
          `${old ? `, entry ${first} had term ${old.term}` : ''}), new entry has term ${entries[0].term}`,
        { node, index: first, term: leader },
      );
    }
    if (leader >= 0) {
      for (const e of entries) {
        if (e.term !== leader) {
          throw new SafetyViolation(
            'leader-append-only',
            `leader ${node} of term ${leader} appended entry ${e.index} with term ${e.term}`,
            { node, index: e.index, term: e.term },
          );
        }
      }
    }
    if (leaderCommit >= 0) {
      const committed = Math.max(leaderCommit, this.committedLength);
      let prev = log.lastConfigBefore(first);
      for (const e of entries) {
        if (e.type !== 'config') continue;
        if (prev > committed) {
          throw new SafetyViolation(
            'single-config-change',
            `leader ${node} appended config entry ${e.index} (${configKey(e.config)}) while config entry ${prev} ` +
              `was still uncommitted (commit index ${leaderCommit})`,
            { node, index: e.index, term: e.term },
          );
        }
        prev = e.index;
      }
    }
    this.appendToShadow(node, rec, entries, 'appended');
  }

  private appendToShadow(node: NodeId, rec: NodeRecord<C>, entries: readonly Entry<C>[], how: string): void {
    const log = rec.log;
    let start = 0;
    // Entries at or below the snapshot base are already covered by the snapshot: they must match, then are skipped.
    while (start < entries.length && entries[start].index <= log.base) {
      const e = entries[start];
      if (e.index === log.base && e.term !== log.baseTerm) {
        throw new SafetyViolation(
          'log-matching',
          `node ${node} ${how} entry ${e.index} term ${e.term}, but its snapshot ends there with term ${log.baseTerm}`,
          { node, index: e.index, term: e.term },
        );
      }
      if (e.index <= this.committedLength && this.committedTerm[e.index] !== e.term) {
        throw new SafetyViolation(
          'state-machine-safety',
          `node ${node} ${how} entry ${e.index} term ${e.term} below its snapshot, but the committed entry there has term ${this.committedTerm[e.index]}`,
          { node, index: e.index, term: e.term },
        );
      }
      start++;
    }
    if (start === entries.length) return;
    const first = entries[start].index;
    if (first > log.last + 1) {
      throw new SafetyViolation(
        'runtime-contract',
        `node ${node} ${how} entries from index ${first} but its log ends at ${log.last} (gap)`,
        { node, index: first },
      );
    }
    log.truncateFrom(first);
    let prevTerm = log.termAt(first - 1) ?? 0;
    for (let k = start; k < entries.length; k++) {
      const e = entries[k];
      if (e.index !== log.last + 1) {
        throw new SafetyViolation(
          'runtime-contract',
          `node ${node} ${how} non-contiguous entries: ${e.index} after ${log.last}`,
          { node, index: e.index },
        );
      }
      if (e.term < prevTerm) {
        throw new SafetyViolation(
          'log-matching',
          `node ${node} ${how} entry ${e.index} with term ${e.term} after an entry of term ${prevTerm}: terms in a log never decrease`,
          { node, index: e.index, term: e.term },
        );
      }
      this.checkVariant(node, e, prevTerm);
      log.push(e);
      prevTerm = e.term;
    }
  }

  private checkVariant(node: NodeId, e: Entry<C>, prevTerm: Term): void {
    this.stats.entriesChecked++;
    const key = this.entryKey(e);
    let list = this.variants[e.index];
    if (list === undefined) this.variants[e.index] = list = [];
    for (const v of list) {
      if (v.term !== e.term) continue;
      if (v.key !== key) {
        throw new SafetyViolation(
          'log-matching',
          `entry ${e.index} term ${e.term} differs between nodes: ${v.node} has ${describeKey(v.key)}, ${node} has ${describeKey(key)}`,
          { node, index: e.index, term: e.term },
        );
      }
      if (v.prevTerm !== prevTerm) {
        throw new SafetyViolation(
          'log-matching',
          `entry ${e.index} term ${e.term} is preceded by an entry of term ${v.prevTerm} on ${v.node} but of term ${prevTerm} on ${node}`,
          { node, index: e.index - 1, term: e.term },
        );
      }
      v.holders.add(node);
      return;
    }
    list.push({ term: e.term, key, prevTerm, node, holders: new Set([node]) });
  }

  /**
   * A node crashed, keeping only `durable` on its disk. Entries that existed only in its memory (never durable, and
   * never appended by another node, which they would have been had they left it) are forgotten, and so is a
   * leadership in a term its disk never held: with its term and vote lost too, the node (or another) may lead the
   * same term again and write other entries there, which is safe because nothing of the lost ones escaped. Call it
   * before `nodeStarted` for the restart.
   */
  nodeCrashed(
    node: NodeId,
    durable: { hardState?: HardState; snapshot?: SnapshotMeta | null; entries?: readonly Entry<C>[] } = {},
  ): void {
    // A leadership in a term its disk never held had no effect outside the node (every message of that term waits
    // for the term to be durable, which the simulator's durability check enforces): another node may win that term.
    const durableTerm = durable.hardState?.term ?? 0;
    for (const [term, leader] of this.leaders) if (leader === node && term > durableTerm) this.leaders.delete(term);
    const kept = new Map<Index, string>();
    for (const e of durable.entries ?? []) kept.set(e.index, `${e.term}:${this.entryKey(e)}`);
    const base = durable.snapshot?.index ?? 0;
    for (let i = base + 1; i < this.variants.length; i++) {
      const list = this.variants[i];
      if (list === undefined) continue;
      const keep = list.filter((v) => {
        if (!v.holders.has(node) || kept.get(i) === `${v.term}:${v.key}`) return true;
        v.holders.delete(node);
        return v.holders.size > 0;
      });
      this.variants[i] = keep.length > 0 ? keep : undefined;
    }
  }

  /** An `apply` action was performed: each node applies every index once, in order, with the committed entry. */
  applied(node: NodeId, entries: readonly Entry<C>[]): void {
    const rec = this.rec(node);
    for (const e of entries) {
      this.stats.applied++;
      if (e.index !== rec.applied + 1) {
        throw new SafetyViolation(
          'state-machine-safety',
          `node ${node} applied entry ${e.index} (term ${e.term}) but its last applied index was ${rec.applied}`,
          { node, index: e.index, term: e.term },
        );
      }
      rec.applied = e.index;
      const key = this.entryKey(e);
      const prevKey = this.appliedKey[e.index];
      if (prevKey !== undefined) {
        if (prevKey !== key || this.appliedTerm[e.index] !== e.term) {
          throw new SafetyViolation(
            'state-machine-safety',
            `node ${node} applied ${describeKey(key)} (term ${e.term}) at index ${e.index}, but another node applied ` +
              `${describeKey(prevKey)} (term ${this.appliedTerm[e.index]}) there`,
            { node, index: e.index, term: e.term },
          );
        }
      } else {
        this.appliedKey[e.index] = key;
        this.appliedTerm[e.index] = e.term;
      }
      if (
        e.index <= this.committedLength &&
        (this.committedTerm[e.index] !== e.term || this.committedKey[e.index] !== key)
      ) {
        throw new SafetyViolation(
          'state-machine-safety',
          `node ${node} applied ${describeKey(key)} (term ${e.term}) at index ${e.index}, but the committed entry there is ` +
            `${describeKey(this.committedKey[e.index])} (term ${this.committedTerm[e.index]})`,
          { node, index: e.index, term: e.term },
        );
      }
      const t = rec.log.termAt(e.index);
      if (t !== undefined && t !== e.term && e.index > rec.log.base) {
        throw new SafetyViolation(
          'runtime-contract',
          `node ${node} applied entry ${e.index} with term ${e.term} but its log has term ${t} there`,
          { node, index: e.index, term: e.term },
        );
      }
      if (e.type === 'command') {
        const ck = key.slice(1);
        if (!this.proposedKeys.has(ck)) {
          throw new SafetyViolation(
            'applied-was-proposed',
            `node ${node} applied command ${ck} at index ${e.index}, which nobody proposed`,
            { node, index: e.index, term: e.term },
          );
        }
        if (this.uniqueCommands && !(e.type === 'command' && this.mayRepeat(e.command))) {
          const at = this.commandIndex.get(ck);
          if (at === undefined) this.commandIndex.set(ck, e.index);
          else if (at !== e.index) {
            throw new SafetyViolation(
              'applied-was-proposed',
              `command ${ck} was proposed once but applied at indexes ${at} and ${e.index} (node ${node})`,
              { node, index: e.index, term: e.term },
            );
          }
        }
      }
    }
  }

  /** Whether a command with this key is in the committed log known to the checker. */
  isCommitted(command: C): boolean {
    const key = `c${this.commandKey(command)}`;
    for (let i = 1; i < this.committedKey.length; i++) if (this.committedKey[i] === key) return true;
    return false;
  }

  /**
   * Feeds one action to the checks that follow actions, right before a runtime carries it out (a runtime's
   * `tap.action`): term and vote, appends (with the leader-append-only and single-config-change context), applies,
   * role changes. Reads, snapshots and restarts have their own methods. `leaderTermBefore` is the term the node led
   * at the end of its previous turn (-1 when it did not lead).
   */
  observeAction(
    node: NodeId,
    a: Action<C>,
    view: { readonly role: Role; readonly currentTerm: Term; readonly commitIndex: Index },
    leaderTermBefore: Term,
  ): void {
    if (a.type === 'persistHardState') this.hardStatePersisted(node, a.hardState);
    else if (a.type === 'appendEntries') {
      if (a.entries.length === 0) return;
      const isLeader = view.role === 'leader';
      const steady = isLeader && view.currentTerm === leaderTermBefore ? leaderTermBefore : -1;
      this.logAppended(node, a.entries, steady, isLeader ? view.commitIndex : -1);
    } else if (a.type === 'apply') {
      if (a.entries.length > 0) this.applied(node, a.entries);
    } else if (a.type === 'stateChanged') this.stateChanged(node, a.role, a.term);
  }

  /** A read was issued on `node` (call before `read`): it must see every write committed so far. */
  readIssued(node: NodeId, readId: ReadId): void {
    this.rec(node).reads.set(readId, this.maxCommit);
  }

  /**
   * A `readReady` action was performed.
   *
   * @param appliedIndex - the node's applied index when the action was performed (must be >= `index`)
   */
  readReady(node: NodeId, readId: ReadId, index: Index, appliedIndex: Index): void {
    const rec = this.rec(node);
    const min = rec.reads.get(readId);
    if (min === undefined) {
      throw new SafetyViolation(
        'runtime-contract',
        `node ${node} answered read ${String(readId)} it never got (or twice)`,
        {
          node,
          index,
        },
      );
    }
    rec.reads.delete(readId);
    this.stats.reads++;
    if (index < min) {
      throw new SafetyViolation(
        'linearizable-read',
        `node ${node} served read ${String(readId)} at index ${index}, but index ${min} was already committed when the read was issued (stale read)`,
        { node, index },
      );
    }
    if (appliedIndex < index) {
      throw new SafetyViolation(
        'linearizable-read',
        `node ${node} served read ${String(readId)} at index ${index} before applying it (applied index ${appliedIndex})`,
        { node, index },
      );
    }
  }

  /** A `readFailed` action was performed. */
  readFailed(node: NodeId, readId: ReadId): void {
    this.rec(node).reads.delete(readId);
  }

  /** The runtime took a local snapshot `meta` whose state machine bytes are `data` (before `compactLog`). */
  snapshotTaken(node: NodeId, meta: SnapshotMeta, data: Uint8Array | null): void {
    this.checkSnapshot(node, meta, data, 'took');
    const rec = this.rec(node);
    if (meta.index !== rec.applied) {
      throw new SafetyViolation(
        'runtime-contract',
        `node ${node} took a snapshot at ${meta.index} but its state machine has applied up to ${rec.applied}`,
        { node, index: meta.index },
      );
    }
    const t = rec.log.termAt(meta.index);
    if (t !== undefined && t !== meta.term) {
      throw new SafetyViolation(
        'snapshot-safety',
        `node ${node} snapshot meta at ${meta.index} has term ${meta.term} but its log has term ${t} there`,
        { node, index: meta.index, term: meta.term },
      );
    }
  }

  /** `compactLog(meta)` succeeded: the node's log now starts after `meta.index`. */
  logCompacted(node: NodeId, meta: SnapshotMeta): void {
    this.rec(node).log.compact(meta.index, meta.term);
  }

  /** An `installSnapshot` action was performed: `data` replaced the state machine and the whole log was dropped. */
  snapshotInstalled(node: NodeId, meta: SnapshotMeta, data: Uint8Array | null): void {
    this.checkSnapshot(node, meta, data, 'installed');
    const rec = this.rec(node);
    if (meta.index < rec.applied) {
      throw new SafetyViolation(
        'state-machine-safety',
        `node ${node} installed a snapshot at ${meta.index}, rolling its state machine back from applied index ${rec.applied}`,
        { node, index: meta.index, term: meta.term },
      );
    }
    rec.applied = meta.index;
    rec.log.reset(meta.index, meta.term, []);
    if (rec.commitIndex < meta.index) rec.commitIndex = meta.index;
  }

  private checkSnapshot(node: NodeId, meta: SnapshotMeta, data: Uint8Array | null, how: string): void {
    this.stats.snapshots++;
    const at = { node, index: meta.index, term: meta.term };
    if (meta.index > this.committedLength) {
      throw new SafetyViolation(
        'snapshot-safety',
        `node ${node} ${how} a snapshot at index ${meta.index}, beyond the committed log (${this.committedLength})`,
        at,
      );
    }
    if (meta.index > 0 && this.committedTerm[meta.index] !== meta.term) {
      throw new SafetyViolation(
        'snapshot-safety',
        `node ${node} ${how} a snapshot at index ${meta.index} with term ${meta.term}, but the committed entry there has term ${this.committedTerm[meta.index]}`,
        at,
      );
    }
    const expected = this.committedConfigAt(meta.index);
    if (expected !== null && configKey(expected) !== configKey(meta.config)) {
      throw new SafetyViolation(
        'snapshot-safety',
        `node ${node} ${how} a snapshot at index ${meta.index} with config ${configKey(meta.config)}, but the committed config there is ${configKey(expected)}`,
        at,
      );
    }
    if (data !== null && this.makeStateMachine !== undefined) {
      const want = this.referenceState(meta.index);
      if (!bytesEqual(want, data)) {
        throw new SafetyViolation(
          'snapshot-safety',
          `node ${node} ${how} a snapshot at index ${meta.index} whose state differs from the committed prefix: ` +
            `expected ${preview(want)}, got ${preview(data)}`,
          at,
        );
      }
    }
  }

  /** @returns the configuration in effect at `index` according to the committed log (null if none). */
  committedConfigAt(index: Index): ClusterConfig | null {
    for (let i = Math.min(index, this.committedLength); i >= 1; i--) {
      const e = this.committedEntry[i];
      if (e && e.type === 'config') return e.config;
    }
    return null;
  }

  /** @returns the serialized state of a reference machine that applied the committed log up to `index`. */
  referenceState(index: Index): Uint8Array {
    const make = this.makeStateMachine;
    if (make === undefined) throw new Error('referenceState needs the stateMachine option');
    if (this.reference === null || this.reference.index > index) this.reference = { index: 0, sm: make() };
    const ref = this.reference;
    for (let i = ref.index + 1; i <= index; i++) {
      const e = this.committedEntry[i];
      if (!e) throw new Error(`committed entry ${i} unknown`);
      if (e.type === 'command') ref.sm.apply(e.command, i);
    }
    ref.index = index;
    return ref.sm.snapshot();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Observation
  // -------------------------------------------------------------------------------------------------------------

  /** A `stateChanged` action was performed. */
  stateChanged(node: NodeId, role: Role, term: Term): void {
    if (role === 'leader') this.claimLeadership(node, term);
  }

  /**
   * Call after each input, once its actions are performed: checks election safety, leader completeness (on a new
   * leadership), commit-index monotonicity and extends the committed log.
   */
  observe(node: NodeId, view: NodeView): void {
    const rec = this.rec(node);
    const log = rec.log;
    if (this.checkContract && (view.lastLogIndex !== log.last || view.lastLogTerm !== log.lastTerm)) {
      throw new SafetyViolation(
        'runtime-contract',
        `node ${node} reports last log ${view.lastLogIndex}/${view.lastLogTerm} but its actions imply ${log.last}/${log.lastTerm}`,
        { node, index: view.lastLogIndex, term: view.lastLogTerm },
      );
    }
    if (view.role === 'leader') {
      this.claimLeadership(node, view.currentTerm);
      if (rec.leaderTerm !== view.currentTerm) {
        rec.leaderTerm = view.currentTerm;
        rec.leaderLast = view.lastLogIndex;
        this.checkCompleteness(node, rec, view.currentTerm);
      } else if (view.lastLogIndex < rec.leaderLast) {
        throw new SafetyViolation(
          'leader-append-only',
          `leader ${node} (term ${view.currentTerm}) shrank its log from ${rec.leaderLast} to ${view.lastLogIndex}`,
          { node, index: view.lastLogIndex, term: view.currentTerm },
        );
      }
      rec.leaderLast = view.lastLogIndex;
    } else {
      rec.leaderTerm = -1;
    }
    const commit = view.commitIndex;
    if (commit < rec.commitIndex) {
      throw new SafetyViolation(
        'state-machine-safety',
        `node ${node} commit index went back from ${rec.commitIndex} to ${commit}`,
        { node, index: commit },
      );
    }
    if (commit > rec.commitIndex) {
      if (commit > log.last) {
        throw new SafetyViolation(
          'runtime-contract',
          `node ${node} commit index ${commit} is beyond its last log index ${log.last}`,
          { node, index: commit },
        );
      }
      this.extendCommitted(node, rec, commit, view.currentTerm);
      rec.commitIndex = commit;
      if (commit > this.maxCommit) this.maxCommit = commit;
    }
  }

  private claimLeadership(node: NodeId, term: Term): void {
    const prev = this.leaders.get(term);
    if (prev === undefined) {
      this.leaders.set(term, node);
      this.stats.elections++;
    } else if (prev !== node) {
      throw new SafetyViolation('election-safety', `two leaders in term ${term}: ${prev} and ${node}`, { node, term });
    }
  }

  private checkCompleteness(node: NodeId, rec: NodeRecord<C>, term: Term): void {
    const log = rec.log;
    const n = this.committedLength;
    for (let i = Math.max(1, log.base); i <= n; i++) {
      if (this.commitTerm[i] >= term) continue;
      if (i === log.base) {
        if (log.baseTerm !== this.committedTerm[i]) {
          throw new SafetyViolation(
            'leader-completeness',
            `node ${node} became leader of term ${term} with a snapshot at ${i} of term ${log.baseTerm}, but committed entry ${i} has term ${this.committedTerm[i]}`,
            { node, index: i, term },
          );
        }
        continue;
      }
      const e = log.at(i);
      if (e === undefined) {
        throw new SafetyViolation(
          'leader-completeness',
          `node ${node} became leader of term ${term} but its log (last index ${log.last}) lacks committed entry ${i} ` +
            `(term ${this.committedTerm[i]}, ${describeKey(this.committedKey[i])}, committed in term ${this.commitTerm[i]})`,
          { node, index: i, term },
        );
      }
      if (e.term !== this.committedTerm[i] || this.entryKey(e) !== this.committedKey[i]) {
        throw new SafetyViolation(
          'leader-completeness',
          `node ${node} became leader of term ${term} with entry ${i} = ${describeKey(this.entryKey(e))} (term ${e.term}), ` +
            `but the committed entry ${i} is ${describeKey(this.committedKey[i])} (term ${this.committedTerm[i]}, committed in term ${this.commitTerm[i]})`,
          { node, index: i, term },
        );
      }
    }
  }

  private extendCommitted(node: NodeId, rec: NodeRecord<C>, commit: Index, term: Term): void {
    const log = rec.log;
    for (let i = Math.max(rec.commitIndex + 1, log.base); i <= commit; i++) {
      if (i === 0) continue;
      const n = this.committedLength;
      if (i === log.base) {
        if (i <= n && this.committedTerm[i] !== log.baseTerm) {
          throw new SafetyViolation(
            'state-machine-safety',
            `node ${node} committed up to its snapshot at ${i} (term ${log.baseTerm}) but committed entry ${i} has term ${this.committedTerm[i]}`,
            { node, index: i, term: log.baseTerm },
          );
        }
        continue;
      }
      const e = log.at(i);
      if (e === undefined) break;
      const key = this.entryKey(e);
      if (i <= n) {
        if (this.committedTerm[i] !== e.term || this.committedKey[i] !== key) {
          throw new SafetyViolation(
            'state-machine-safety',
            `node ${node} committed ${describeKey(key)} (term ${e.term}) at index ${i}, but ${describeKey(this.committedKey[i])} ` +
              `(term ${this.committedTerm[i]}) was committed there before (in term ${this.commitTerm[i]})`,
            { node, index: i, term: e.term },
          );
        }
      } else if (i === n + 1) {
        const ak = this.appliedKey[i];
        if (ak !== undefined && (ak !== key || this.appliedTerm[i] !== e.term)) {
          throw new SafetyViolation(
            'state-machine-safety',
            `node ${node} committed ${describeKey(key)} (term ${e.term}) at index ${i}, but ${describeKey(ak)} (term ${this.appliedTerm[i]}) was applied there`,
            { node, index: i, term: e.term },
          );
        }
        this.committedTerm.push(e.term);
        this.committedKey.push(key);
        this.committedEntry.push(e);
        this.commitTerm.push(term);
      } else {
        break;
      }
    }
  }

  /**
   * Whole-state checks, cheap enough to run after every step: no leader has two uncommitted configuration entries,
   * and (when `entries` is given for a node) its real log equals the log implied by its actions.
   *
   * @param views - the live nodes: their view, and optionally their in-memory log (every retained entry, in order)
   */
  audit(views: Iterable<{ id: NodeId; view: NodeView; entries?: readonly Entry<C>[] }>): void {
    this.stats.audits++;
    for (const { id, view, entries } of views) {
      const rec = this.rec(id);
      const log = rec.log;
      if (view.role === 'leader') {
        // A new leader learns the commit index only once its no-op commits, so count against the cluster-wide
        // committed log (which this leader's log contains, by leader completeness).
        const committed = Math.max(view.commitIndex, this.committedLength);
        let uncommitted = 0;
        for (let k = log.configs.length - 1; k >= 0 && log.configs[k] > committed; k--) uncommitted++;
        if (uncommitted > 1) {
          throw new SafetyViolation(
            'single-config-change',
            `leader ${id} (term ${view.currentTerm}) has ${uncommitted} uncommitted config entries (commit index ${view.commitIndex})`,
            { node: id, term: view.currentTerm },
          );
        }
      }
      if (entries !== undefined && this.checkContract) {
        const expected = log.entries;
        const from = entries.length > 0 ? entries[0].index : log.base + 1;
        const offset = from - log.base - 1;
        for (let k = 0; k < entries.length; k++) {
          const mine = expected[offset + k];
          const theirs = entries[k];
          if (mine === undefined || mine.term !== theirs.term || mine.index !== theirs.index) {
            throw new SafetyViolation(
              'runtime-contract',
              `node ${id} holds entry ${theirs.index}/${theirs.term} in memory, but its actions imply ${mine ? `${mine.index}/${mine.term}` : 'nothing'} there`,
              { node: id, index: theirs.index, term: theirs.term },
            );
          }
        }
      }
    }
  }

  private rec(node: NodeId): NodeRecord<C> {
    let rec = this.nodes.get(node);
    if (rec === undefined) {
      this.nodeStarted(node);
      rec = this.nodes.get(node) as NodeRecord<C>;
    }
    return rec;
  }
}

/** A canonical string for a configuration (sorted members). */
export function configKey(c: ClusterConfig): string {
  const v = [...c.voters].sort().join(',');
  const l = [...c.learners].sort().join(',');
  const o = c.oldVoters ? `|old:${[...c.oldVoters].sort().join(',')}` : '';
  return `{voters:${v}${l ? `|learners:${l}` : ''}${o}}`;
}

function describeKey(key: string | undefined): string {
  if (key === undefined) return '(nothing)';
  if (key === 'n') return 'noop';
  if (key.startsWith('g')) return `config ${key.slice(1)}`;
  return `command ${key.slice(1)}`;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function preview(b: Uint8Array): string {
  const s = new TextDecoder().decode(b.subarray(0, 160));
  return b.length > 160 ? `${s}…` : s;
}
