// A tiny synchronous cluster for the core's unit tests: messages are delivered in FIFO order, writes are durable
// at once (unless a node is told to hold them), timers fire only when a test says so. The random-schedule
// property tests live in @raft/sim; this harness keeps hand-written scenarios short and readable.
import {
  type Action,
  type Entry,
  type Message,
  type NodeId,
  RaftNode,
  type RaftOptions,
  type SnapshotMeta,
} from '../src/index.js';

export interface Disk {
  term: number;
  votedFor: NodeId | null;
  entries: Entry<string>[];
  snapshot: { meta: SnapshotMeta; data: Uint8Array } | null;
}

export class Harness {
  nodes = new Map<NodeId, RaftNode<string>>();
  disks = new Map<NodeId, Disk>();
  applied = new Map<NodeId, Entry<string>[]>();
  state = new Map<NodeId, string[]>();
  reads: { node: NodeId; readId: unknown; index?: number; failed?: string }[] = [];
  queue: Message<string>[] = [];
  down = new Set<NodeId>();
  blocked = new Set<string>();
  holdWrites = new Set<NodeId>();
  held = new Map<NodeId, Entry<string>[][]>();
  trace: string[] = [];
  incoming = new Map<NodeId, Uint8Array[]>();

  constructor(
    ids: NodeId[],
    readonly options: RaftOptions = {},
  ) {
    for (const id of ids) this.add(id);
  }

  add(id: NodeId): RaftNode<string> {
    const node = RaftNode.start<string>(id, this.options);
    this.nodes.set(id, node);
    this.disks.set(id, { term: 0, votedFor: null, entries: [], snapshot: null });
    this.applied.set(id, []);
    this.state.set(id, []);
    this.drain(id);
    return node;
  }

  node(id: NodeId): RaftNode<string> {
    return this.nodes.get(id)!;
  }

  leader(): RaftNode<string> | undefined {
    const leaders = [...this.nodes.values()].filter((n) => n.role === 'leader' && !this.down.has(n.id));
    return leaders.sort((a, b) => b.currentTerm - a.currentTerm)[0];
  }

  drain(id: NodeId): void {
    const node = this.nodes.get(id)!;
    const disk = this.disks.get(id)!;
    // Performing an action can feed an input back (persisted, snapshotInstalled), so drain until quiet.
    for (let round = 0; round < 100; round++) {
      const actions = node.takeActions();
      if (actions.length === 0) return;
      for (const a of actions) this.perform(id, node, disk, a);
    }
    throw new Error(`${id} keeps producing actions`);
  }

  private perform(id: NodeId, node: RaftNode<string>, disk: Disk, a: Action<string>): void {
    this.trace.push(`${id} ${a.type}`);
    switch (a.type) {
      case 'persistHardState':
        disk.term = a.hardState.term;
        disk.votedFor = a.hardState.votedFor;
        break;
      case 'appendEntries': {
        if (this.holdWrites.has(id)) {
          const h = this.held.get(id) ?? [];
          h.push([...a.entries]);
          this.held.set(id, h);
          // Keep the node's view consistent: nothing is durable until flushed.
          break;
        }
        this.writeEntries(disk, a.entries);
        const last = a.entries[a.entries.length - 1];
        node.persisted(last.index, last.term);
        break;
      }
      case 'send':
        this.queue.push(a.message);
        break;
      case 'apply':
        for (const e of a.entries) {
          this.applied.get(id)!.push(e);
          if (e.type === 'command') this.state.get(id)!.push(e.command);
        }
        break;
      case 'readReady':
        this.reads.push({ node: id, readId: a.readId, index: a.index });
        break;
      case 'readFailed':
        this.reads.push({ node: id, readId: a.readId, failed: a.error });
        break;
      case 'readSnapshotChunk': {
        const s = disk.snapshot;
        if (!s || s.meta.index !== a.snapshot.index) break;
        const data = s.data.subarray(a.offset, a.offset + a.maxBytes);
        node.sendSnapshotChunk(a.to, a.snapshot, a.offset, data, a.offset + data.length >= s.data.length);
        break;
      }
      case 'saveSnapshotChunk': {
        const parts = a.offset === 0 ? [] : (this.incoming.get(id) ?? []);
        parts.push(a.data);
        this.incoming.set(id, parts);
        break;
      }
      case 'installSnapshot': {
        const parts = this.incoming.get(id) ?? [];
        const total = parts.reduce((n, p) => n + p.length, 0);
        const data = new Uint8Array(total);
        let off = 0;
        for (const p of parts) {
          data.set(p, off);
          off += p.length;
        }
        disk.snapshot = { meta: a.snapshot, data };
        disk.entries = [];
        this.state.set(id, JSON.parse(new TextDecoder().decode(data)));
        node.snapshotInstalled(a.snapshot);
        break;
      }
      case 'setTimer':
      case 'stateChanged':
        break;
    }
  }

  private writeEntries(disk: Disk, entries: readonly Entry<string>[]): void {
    const first = entries[0].index;
    disk.entries = disk.entries.filter((e) => e.index < first).concat(entries);
  }

  flushWrites(id: NodeId): void {
    const node = this.nodes.get(id)!;
    const disk = this.disks.get(id)!;
    for (const batch of this.held.get(id) ?? []) {
      this.writeEntries(disk, batch);
      const last = batch[batch.length - 1];
      node.persisted(last.index, last.term);
    }
    this.held.set(id, []);
    this.drain(id);
  }

  /** Delivers queued messages (and the messages they cause) until none remain or `limit` are delivered. */
  deliverAll(limit = 100_000): number {
    let n = 0;
    while (this.queue.length > 0 && n < limit) {
      const m = this.queue.shift()!;
      n++;
      if (this.down.has(m.to) || this.down.has(m.from) || this.blocked.has(`${m.from}>${m.to}`)) continue;
      const node = this.nodes.get(m.to);
      if (!node) continue;
      node.handleMessage(m);
      this.drain(m.to);
    }
    return n;
  }

  timeout(id: NodeId): void {
    this.nodes.get(id)!.handleTimeout();
    this.drain(id);
  }

  /** Fires `id`'s timer and delivers everything that follows. */
  fire(id: NodeId): void {
    this.timeout(id);
    this.deliverAll();
  }

  /**
   * Elects `id`: the other live nodes' election timers fire first (so they stop following an old leader, as
   * they would in real time), then `id`'s.
   */
  elect(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id || this.down.has(other)) continue;
      this.timeout(other);
      this.queue = this.queue.filter((m) => m.from !== other);
    }
    this.fire(id);
  }

  /** Heartbeats from the current leader, `n` times. */
  heartbeats(n = 1): void {
    for (let i = 0; i < n; i++) {
      const l = this.leader();
      if (!l) return;
      this.fire(l.id);
    }
  }

  propose(cmd: string, id = this.leader()?.id): number {
    const node = this.nodes.get(id!)!;
    const r = node.propose(cmd);
    if (!r.ok) throw r.error;
    this.drain(node.id);
    this.deliverAll();
    return r.value.index;
  }

  crash(id: NodeId): void {
    this.down.add(id);
    this.held.set(id, []);
  }

  restart(id: NodeId): void {
    const disk = this.disks.get(id)!;
    const node = RaftNode.restart<string>(
      id,
      {
        hardState: { term: disk.term, votedFor: disk.votedFor },
        snapshot: disk.snapshot?.meta ?? null,
        entries: disk.entries,
      },
      this.options,
    );
    this.nodes.set(id, node);
    this.down.delete(id);
    this.state.set(id, disk.snapshot ? JSON.parse(new TextDecoder().decode(disk.snapshot.data)) : []);
    this.applied.set(id, []);
    this.drain(id);
  }

  /** Takes a local snapshot at the node's applied index and compacts its log. */
  snapshot(id: NodeId): SnapshotMeta {
    const node = this.nodes.get(id)!;
    const meta = node.snapshotMeta(node.lastApplied);
    const disk = this.disks.get(id)!;
    disk.snapshot = { meta, data: new TextEncoder().encode(JSON.stringify(this.state.get(id))) };
    disk.entries = disk.entries.filter((e) => e.index > meta.index);
    const r = node.compactLog(meta);
    if (!r.ok) throw r.error;
    return meta;
  }
}

/** Bootstraps `ids` as one cluster (every node calls createCluster) and elects `first`. */
export function cluster(ids: NodeId[], options: RaftOptions = {}, first = ids[0]): Harness {
  const h = new Harness(ids, options);
  for (const id of ids) {
    const r = h.node(id).createCluster(ids);
    if (!r.ok) throw r.error;
    h.drain(id);
  }
  h.fire(first);
  if (options.preVote !== false) h.deliverAll();
  return h;
}
