// Interaction transcripts for the core (in the style of etcd-io/raft's datadriven testdata): a scripted scenario
// and, under every command, everything the nodes did in order, one line per action or delivered message.
//
// A transcript file (test/testdata/*.txt) is a sequence of cases. Lines starting with `#` and blank lines between
// cases are comments. A case is one command line, a `----` line, then the expected output up to the next blank line
// (or the end of the file); a command with no output prints `ok`. interaction.test.ts runs every file and compares.
// After a deliberate change of behaviour, regenerate every expected output (then read the diff!) with
//
//   RAFT_TESTDATA_REWRITE=1 pnpm --filter @raft/core test -- interaction
//
// Output lines (see docs/core.md, "Testing"): entries are `index@term:payload` (payload `noop`, a command's text, or
// `conf(v=1,2,3;old=...;l=...)`); `N: <action>` is an action node N produced; `> <message>` is the delivery of a
// queued message, followed (indented) by the recipient's actions. Messages read `from->to Type tTERM fields...`.
//
// Commands (IDs are 1, 2, 3, ...; `k=v` arguments are optional):
//   add-nodes N [voters=1,2,3] [pre-vote=false] [check-quorum=false] [election-ticks=N] [read-mode=lease]
//             [lease-ticks=N] [chunk=BYTES] [max-entries=N] [persist=manual]
//       Adds N nodes. The first add-nodes bootstraps them all as one cluster (createCluster on each) unless
//       `voters` says otherwise; later ones add blank nodes that wait to be added with change-config.
//       persist=manual holds their log writes until `persist ID` (hard state is always written at once).
//   tick ID [N]          fires ID's timer N times (a follower's election timeout, a leader's heartbeat)
//   campaign ID          fires a non-leader's election timer once (PreVote first when enabled)
//   stabilize            delivers queued messages, and the ones they cause, until none are left
//   deliver [from=] [to=] [type=] [max=]   delivers the queued messages that match, not the ones they cause
//   drop [from=] [to=] [type=]             discards the queued messages that match
//   msgs                 lists the queued messages
//   partition A B ...    cuts the network between groups (comma-separated IDs; unlisted nodes form one more group)
//   heal                 removes every cut
//   crash ID             stops ID: unpersisted writes and messages queued to it are lost
//   restart ID           restarts ID from what it persisted
//   persist ID           makes ID's held log writes durable and tells the node (persist=manual only)
//   propose ID DATA...   proposes commands (all before the node's actions are drained, so they are batched)
//   read ID READID...    starts linearizable reads (likewise batched)
//   transfer ID TARGET   starts a leadership transfer
//   change-config ID voters=1,2,4 [learners=5]
//   snapshot ID          snapshots ID's state machine at its applied index and compacts its log
//   status [ID...]       role, term, vote, leader, commit, applied, log, snapshot, state machine
//   progress ID          the leader's view of each follower
import {
  type Action,
  type ClusterConfig,
  type Entry,
  type Message,
  type NodeId,
  RaftNode,
  type RaftOptions,
  type SnapshotMeta,
} from '../src/index.js';

/** A transcript that cannot be run (unknown command, bad argument, missing `----`). */
export class ScriptError extends Error {
  /** Always `BAD_SCRIPT`: the transcript, not the node, is wrong. */
  readonly code = 'BAD_SCRIPT';
  constructor(message: string) {
    super(message);
    this.name = 'ScriptError';
  }
}

interface Disk {
  term: number;
  vote: NodeId | null;
  entries: Entry<string>[];
  snapshot: { meta: SnapshotMeta; data: Uint8Array } | null;
}

interface Node {
  id: NodeId;
  raft: RaftNode<string>;
  opts: RaftOptions;
  manual: boolean;
  disk: Disk;
  held: Entry<string>[][];
  sm: string[];
  incoming: Uint8Array[];
  down: boolean;
}

/** One case of a transcript: where it is, what it runs, what it should print, what it printed. */
export interface Case {
  line: number;
  command: string;
  expected: string;
  actual: string;
}

const TYPE: Record<Message['type'], string> = {
  RequestVote: 'Vote',
  RequestVoteResponse: 'VoteResp',
  AppendEntries: 'App',
  AppendEntriesResponse: 'AppResp',
  InstallSnapshot: 'Snap',
  InstallSnapshotResponse: 'SnapResp',
  TimeoutNow: 'TimeoutNow',
  ReadIndexRequest: 'ReadIndex',
  ReadIndexResponse: 'ReadIndexResp',
};

const enc = new TextEncoder();
const dec = new TextDecoder();

function fmtConfig(c: ClusterConfig): string {
  let s = `v=${c.voters.join(',')}`;
  if (c.oldVoters) s += `;old=${c.oldVoters.join(',')}`;
  if (c.learners.length > 0) s += `;l=${c.learners.join(',')}`;
  return `conf(${s})`;
}

function fmtEntry(e: Entry<string>): string {
  const payload = e.type === 'noop' ? 'noop' : e.type === 'config' ? fmtConfig(e.config) : e.command;
  return `${e.index}@${e.term}:${payload}`;
}

const fmtEntries = (es: readonly Entry<string>[]): string => es.map(fmtEntry).join(' ');
const fmtSnap = (m: SnapshotMeta): string => `${m.index}@${m.term}`;

/** The name a transcript uses for a message's type (a pre-vote is `PreVote` / `PreVoteResp`). */
function typeName(m: Message<string>): string {
  const t = TYPE[m.type];
  return (m.type === 'RequestVote' || m.type === 'RequestVoteResponse') && m.preVote ? `Pre${t}` : t;
}

/** One line per message: `from->to Type tTERM fields`. */
export function fmtMessage(m: Message<string>): string {
  const head = `${m.from}->${m.to} ${typeName(m)} t${m.term}`;
  switch (m.type) {
    case 'RequestVote':
      return `${head} last=${m.lastLogIndex}@${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'RequestVoteResponse':
      return `${head} ${m.granted ? 'granted' : 'rejected'}`;
    case 'AppendEntries':
      return `${head} prev=${m.prevLogIndex}@${m.prevLogTerm} commit=${m.leaderCommit} seq=${m.seq} [${fmtEntries(m.entries)}]`;
    case 'AppendEntriesResponse':
      return m.success
        ? `${head} ok match=${m.matchIndex} seq=${m.seq}`
        : `${head} reject prev=${m.matchIndex} hint=${m.hintIndex}@${m.hintTerm} seq=${m.seq}`;
    case 'InstallSnapshot':
      return `${head} snap=${fmtSnap(m.snapshot)} off=${m.offset} len=${m.data.length}${m.done ? ' done' : ''}`;
    case 'InstallSnapshotResponse':
      return `${head} snap=${m.snapshotIndex} next=${m.nextOffset}`;
    case 'TimeoutNow':
      return head;
    case 'ReadIndexRequest':
      return `${head} ids=${m.readIds.join(',')}`;
    case 'ReadIndexResponse':
      return `${head} ids=${m.readIds.join(',')} index=${m.readIndex}`;
  }
}

/** One line per action (without the node prefix). */
function fmtAction(a: Action<string>): string {
  switch (a.type) {
    case 'persistHardState':
      return `hardState t${a.hardState.term} vote=${a.hardState.votedFor ?? '-'}`;
    case 'appendEntries':
      return `append ${fmtEntries(a.entries)}`;
    case 'send':
      return `send ${fmtMessage(a.message)}`;
    case 'setTimer':
      return `timer ${a.kind}`;
    case 'apply':
      return `apply ${fmtEntries(a.entries)}`;
    case 'readReady':
      return `readReady ${a.readId} index=${a.index}`;
    case 'readFailed':
      return `readFailed ${a.readId} ${a.error}`;
    case 'readSnapshotChunk':
      return `readSnapshotChunk to=${a.to} snap=${fmtSnap(a.snapshot)} off=${a.offset}`;
    case 'saveSnapshotChunk':
      return `saveSnapshotChunk snap=${fmtSnap(a.snapshot)} off=${a.offset} len=${a.data.length}${a.done ? ' done' : ''}`;
    case 'installSnapshot':
      return `installSnapshot snap=${fmtSnap(a.snapshot)} ${fmtConfig(a.snapshot.config)}`;
    case 'stateChanged':
      return `state ${a.role} t${a.term} leader=${a.leaderId ?? '-'}`;
  }
}

/** A cluster of core nodes driven by transcript commands: synchronous, one global FIFO message queue. */
export class Interpreter {
  private nodes = new Map<NodeId, Node>();
  private queue: Message<string>[] = [];
  private cuts = new Set<string>();
  private out: string[] = [];
  private indent = '';

  /** Runs one command line and returns what it printed (`ok` when nothing). */
  exec(line: string): string {
    this.out = [];
    const [cmd, ...rest] = line.trim().split(/\s+/);
    const pos = rest.filter((t) => !t.includes('='));
    const kv = new Map(rest.filter((t) => t.includes('=')).map((t) => t.split('=', 2) as [string, string]));
    const node = (k = 0) => this.node(pos[k]);
    switch (cmd) {
      case 'add-nodes':
        this.addNodes(Number(pos[0]), kv);
        break;
      case 'tick':
        for (let i = 0; i < Number(pos[1] ?? 1); i++) this.input(node(), (r) => r.handleTimeout());
        break;
      case 'campaign':
        if (node().raft.role === 'leader') throw new ScriptError(`campaign: ${pos[0]} is the leader`);
        this.input(node(), (r) => r.handleTimeout());
        break;
      case 'stabilize':
        for (let n = 0; this.queue.length > 0; n++) {
          if (n >= 10_000) throw new ScriptError('stabilize: still busy after 10000 messages');
          this.deliverOne(this.queue.shift()!);
        }
        break;
      case 'deliver': {
        const picked = this.take(kv, Number(kv.get('max') ?? Number.POSITIVE_INFINITY));
        for (const m of picked) this.deliverOne(m);
        break;
      }
      case 'drop':
        for (const m of this.take(kv, Number.POSITIVE_INFINITY)) this.out.push(`dropped ${fmtMessage(m)}`);
        break;
      case 'msgs':
        for (const m of this.queue) this.out.push(fmtMessage(m));
        break;
      case 'partition':
        this.partition(pos.map((g) => g.split(',')));
        break;
      case 'heal':
        this.cuts.clear();
        break;
      case 'crash':
        this.crash(node());
        break;
      case 'restart':
        this.restart(node());
        break;
      case 'persist':
        this.persist(node());
        break;
      case 'propose':
        this.input(node(), (r, n) => {
          for (const data of pos.slice(1)) {
            const res = r.propose(data);
            this.out.push(
              `${n.id}: ${res.ok ? `proposed ${res.value.index}@${res.value.term}` : `refused ${res.error.code}`}`,
            );
          }
        });
        break;
      case 'read':
        this.input(node(), (r) => {
          for (const id of pos.slice(1)) r.read(id);
        });
        break;
      case 'transfer':
        this.input(node(), (r, n) => {
          const res = r.transferLeadership(pos[1]);
          if (!res.ok) this.out.push(`${n.id}: refused ${res.error.code}`);
        });
        break;
      case 'change-config':
        this.input(node(), (r, n) => {
          const list = (k: string) => (kv.get(k) ?? '').split(',').filter((s) => s !== '');
          const res = r.changeConfig({ voters: list('voters'), learners: list('learners') });
          this.out.push(`${n.id}: ${res.ok ? `config change at ${res.value.index}` : `refused ${res.error.code}`}`);
        });
        break;
      case 'snapshot':
        this.snapshot(node());
        break;
      case 'status':
        for (const id of pos.length > 0 ? pos : [...this.nodes.keys()]) this.out.push(this.status(this.node(id)));
        break;
      case 'progress':
        for (const [id, p] of node().raft.progress()) {
          const extra = `${p.inflight > 0 ? ` inflight=${p.inflight}` : ''}${p.recentActive ? ' active' : ''}`;
          this.out.push(`${pos[0]}: ${id} ${p.state} match=${p.matchIndex} next=${p.nextIndex}${extra}`);
        }
        break;
      default:
        throw new ScriptError(`unknown command: ${line}`);
    }
    return this.out.length === 0 ? 'ok' : this.out.join('\n');
  }

  private node(id: string | undefined): Node {
    const n = id === undefined ? undefined : this.nodes.get(id);
    if (n === undefined) throw new ScriptError(`no such node: ${id}`);
    return n;
  }

  private addNodes(count: number, kv: Map<string, string>): void {
    if (!(count > 0)) throw new ScriptError('add-nodes: how many?');
    const opts: RaftOptions = {};
    for (const [k, v] of kv) {
      if (k === 'pre-vote') opts.preVote = v === 'true';
      else if (k === 'check-quorum') opts.checkQuorum = v === 'true';
      else if (k === 'election-ticks') opts.electionTicks = Number(v);
      else if (k === 'read-mode') opts.readMode = v === 'lease' ? 'lease' : 'readIndex';
      else if (k === 'lease-ticks') opts.leaseTicks = Number(v);
      else if (k === 'chunk') opts.snapshotChunkBytes = Number(v);
      else if (k === 'max-entries') opts.maxEntriesPerMessage = Number(v);
      else if (k !== 'voters' && k !== 'persist') throw new ScriptError(`add-nodes: unknown option ${k}`);
    }
    const first = this.nodes.size === 0;
    const ids: NodeId[] = [];
    for (let i = 0; i < count; i++) ids.push(String(this.nodes.size + 1 + i));
    const voters = kv.get('voters')?.split(',') ?? (first ? ids : []);
    for (const id of ids) {
      const raft = RaftNode.start<string>(id, opts);
      const disk: Disk = { term: 0, vote: null, entries: [], snapshot: null };
      const manual = kv.get('persist') === 'manual';
      const n: Node = { id, raft, opts, manual, disk, held: [], sm: [], incoming: [], down: false };
      this.nodes.set(id, n);
      if (voters.includes(id)) {
        const r = raft.createCluster(voters);
        if (!r.ok) throw new ScriptError(`createCluster on ${id}: ${r.error.code}`);
      }
      this.drain(n);
    }
  }

  /** Feeds one input to a live node and performs what it asked for. */
  private input(n: Node, f: (r: RaftNode<string>, n: Node) => void): void {
    if (n.down) throw new ScriptError(`${n.id} is down`);
    f(n.raft, n);
    this.drain(n);
  }

  private drain(n: Node): void {
    // Performing an action can feed an input back (persisted, sendSnapshotChunk, snapshotInstalled): drain again.
    for (let round = 0; round < 100; round++) {
      const actions = n.raft.takeActions();
      if (actions.length === 0) return;
      for (const a of actions) {
        this.out.push(`${this.indent}${n.id}: ${fmtAction(a)}`);
        this.perform(n, a);
      }
    }
    throw new ScriptError(`${n.id} keeps producing actions`);
  }

  private perform(n: Node, a: Action<string>): void {
    switch (a.type) {
      case 'persistHardState':
        n.disk.term = a.hardState.term;
        n.disk.vote = a.hardState.votedFor;
        break;
      case 'appendEntries':
        if (n.manual) n.held.push([...a.entries]);
        else this.write(n, a.entries);
        break;
      case 'send':
        this.queue.push(a.message);
        break;
      case 'apply':
        for (const e of a.entries) if (e.type === 'command') n.sm.push(e.command);
        break;
      case 'readSnapshotChunk': {
        const s = n.disk.snapshot;
        if (s === null || s.meta.index !== a.snapshot.index) break;
        const data = s.data.subarray(a.offset, a.offset + a.maxBytes);
        n.raft.sendSnapshotChunk(a.to, a.snapshot, a.offset, data, a.offset + data.length >= s.data.length);
        break;
      }
      case 'saveSnapshotChunk':
        if (a.offset === 0) n.incoming = [];
        n.incoming.push(a.data);
        break;
      case 'installSnapshot': {
        const data = new Uint8Array(n.incoming.reduce((k, c) => k + c.length, 0));
        let off = 0;
        for (const c of n.incoming) {
          data.set(c, off);
          off += c.length;
        }
        n.disk.snapshot = { meta: a.snapshot, data };
        n.disk.entries = [];
        n.held = [];
        n.sm = JSON.parse(dec.decode(data));
        n.incoming = [];
        n.raft.snapshotInstalled(a.snapshot);
        break;
      }
      default:
        break;
    }
  }

  /** Makes entries durable (replacing any stored suffix from their first index) and tells the node. */
  private write(n: Node, entries: readonly Entry<string>[]): void {
    n.disk.entries = n.disk.entries.filter((e) => e.index < entries[0].index).concat(entries);
    const last = entries[entries.length - 1];
    n.raft.persisted(last.index, last.term);
  }

  private persist(n: Node): void {
    if (n.down) throw new ScriptError(`${n.id} is down`);
    for (const batch of n.held) {
      this.out.push(`${n.id}: persisted ${fmtEntries(batch)}`);
      this.write(n, batch);
    }
    n.held = [];
    this.drain(n);
  }

  /** Removes and returns (at most `max` of) the queued messages matching `from`, `to` and `type`. */
  private take(kv: Map<string, string>, max: number): Message<string>[] {
    // A misspelt filter would silently match everything (or nothing): refuse it instead.
    for (const k of kv.keys()) if (!['from', 'to', 'type', 'max'].includes(k)) throw new ScriptError(`bad filter ${k}`);
    const type = kv.get('type');
    const known = Object.values(TYPE).flatMap((t) => [t, `Pre${t}`]);
    if (type !== undefined && !known.includes(type)) throw new ScriptError(`unknown message type ${type}`);
    const picked: Message<string>[] = [];
    this.queue = this.queue.filter((m) => {
      const match =
        picked.length < max &&
        (!kv.has('from') || kv.get('from') === m.from) &&
        (!kv.has('to') || kv.get('to') === m.to) &&
        (!kv.has('type') || kv.get('type') === typeName(m));
      if (match) picked.push(m);
      return !match;
    });
    return picked;
  }

  private deliverOne(m: Message<string>): void {
    const to = this.nodes.get(m.to);
    if (to === undefined || to.down) {
      this.out.push(`> ${fmtMessage(m)} (dropped: ${m.to} is down)`);
      return;
    }
    if (this.cuts.has(`${m.from}>${m.to}`)) {
      this.out.push(`> ${fmtMessage(m)} (dropped: partitioned)`);
      return;
    }
    this.out.push(`> ${fmtMessage(m)}`);
    to.raft.handleMessage(m);
    this.indent = '  ';
    try {
      this.drain(to);
    } finally {
      this.indent = '';
    }
  }

  private partition(groups: string[][]): void {
    const listed = groups.flat();
    const rest = [...this.nodes.keys()].filter((id) => !listed.includes(id));
    const all = rest.length > 0 ? [...groups, rest] : groups;
    for (const id of listed) this.node(id);
    const group = (id: NodeId) => all.findIndex((g) => g.includes(id));
    for (const x of this.nodes.keys()) {
      for (const y of this.nodes.keys()) if (group(x) !== group(y)) this.cuts.add(`${x}>${y}`);
    }
  }

  private crash(n: Node): void {
    if (n.down) throw new ScriptError(`${n.id} is already down`);
    n.down = true;
    for (const batch of n.held) this.out.push(`${n.id}: lost unpersisted ${fmtEntries(batch)}`);
    n.held = [];
    n.incoming = [];
    for (const m of this.take(new Map([['to', n.id]]), Number.POSITIVE_INFINITY)) {
      this.out.push(`dropped ${fmtMessage(m)}`);
    }
    this.out.push(`${n.id}: crashed`);
  }

  private restart(n: Node): void {
    if (!n.down) throw new ScriptError(`${n.id} is not down`);
    const d = n.disk;
    n.raft = RaftNode.restart<string>(
      n.id,
      { hardState: { term: d.term, votedFor: d.vote }, snapshot: d.snapshot?.meta ?? null, entries: d.entries },
      n.opts,
    );
    n.sm = d.snapshot ? JSON.parse(dec.decode(d.snapshot.data)) : [];
    n.down = false;
    const snap = d.snapshot ? ` snap=${fmtSnap(d.snapshot.meta)}` : '';
    this.out.push(`${n.id}: restarted t${d.term} vote=${d.vote ?? '-'}${snap} log=[${fmtEntries(d.entries)}]`);
    this.drain(n);
  }

  private snapshot(n: Node): void {
    const meta = n.raft.snapshotMeta(n.raft.lastApplied);
    n.disk.snapshot = { meta, data: enc.encode(JSON.stringify(n.sm)) };
    // The stored entry at the snapshot's index may belong to a replaced history: then no stored entry is kept.
    const at = n.disk.entries.find((e) => e.index === meta.index);
    n.disk.entries = at && at.term !== meta.term ? [] : n.disk.entries.filter((e) => e.index > meta.index);
    const r = n.raft.compactLog(meta);
    if (!r.ok) throw new ScriptError(`compactLog on ${n.id}: ${r.error.code}`);
    this.out.push(`${n.id}: snapshot ${fmtSnap(meta)} ${fmtConfig(meta.config)} size=${n.disk.snapshot.data.length}`);
    this.drain(n);
  }

  private status(n: Node): string {
    if (n.down) return `${n.id}: down`;
    const r = n.raft;
    const snap = r.snapshot ? ` snap=${fmtSnap(r.snapshot)}` : '';
    return (
      `${n.id}: ${r.role} t${r.currentTerm} vote=${r.votedFor ?? '-'} leader=${r.leaderId ?? '-'} ` +
      `commit=${r.commitIndex} applied=${r.lastApplied}${snap} log=[${fmtEntries(r.entries(r.firstLogIndex))}] ` +
      `sm=[${n.sm.join(',')}]`
    );
  }
}

/**
 * Runs a transcript and returns every case with its actual output, plus the file as it would be with the actual
 * outputs in place (what the rewrite flag writes back). A command that cannot run stops the transcript: `error` is
 * set and `cases` holds the cases before it, so that a caller can report an earlier divergence (the likely cause)
 * first.
 */
export function runTranscript(text: string): { cases: Case[]; rendered: string; error?: Error } {
  const lines = text.replace(/\n+$/, '').split('\n');
  const interp = new Interpreter();
  const cases: Case[] = [];
  const rendered: string[] = [];
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    if (line.trim() === '' || line.startsWith('#')) {
      rendered.push(line);
      i++;
      continue;
    }
    const start = i + 1;
    const expected: string[] = [];
    for (i += 2; i < lines.length && lines[i].trim() !== ''; i++) expected.push(lines[i]);
    try {
      if (lines[start] !== '----') throw new ScriptError(`expected ---- after "${line}"`);
      const actual = interp.exec(line);
      cases.push({ line: start, command: line, expected: expected.join('\n'), actual });
      rendered.push(line, '----', actual);
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      error.message = `line ${start}: ${error.message}`;
      return { cases, rendered: text, error };
    }
  }
  return { cases, rendered: `${rendered.join('\n')}\n` };
}
