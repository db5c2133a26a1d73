import type { Action, Message, NodeId, SnapshotMeta } from '@raft/core';
import { RaftNode } from '@raft/core';
import { type JsonlStorage, openStorage, type SnapshotReceiver } from '@raft/storage-jsonl';

/** The application: applies commands and turns its whole state into bytes and back. */
export interface StateMachine {
  apply(command: Uint8Array, index: number): void;
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
}

/** One node whose persist actions go to a JSON Lines data directory. */
export class DurableNode {
  private hardStateDurable: Promise<void> = Promise.resolve();
  private receiver: SnapshotReceiver | null = null;
  private scheduled = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  private constructor(
    readonly node: RaftNode<Uint8Array>,
    readonly storage: JsonlStorage<Uint8Array>,
    private readonly sm: StateMachine,
    private readonly send: (m: Message<Uint8Array>) => void,
  ) {}

  /** Open (or create) `dir`, restore the state machine from the latest snapshot, restart the node from disk. */
  static async open(
    id: NodeId,
    dir: string,
    sm: StateMachine,
    send: (m: Message<Uint8Array>) => void,
  ): Promise<DurableNode> {
    const storage = await openStorage<Uint8Array>(dir);
    const snap = await storage.readSnapshot();
    if (snap) sm.restore(snap.data);
    const node = RaftNode.restart<Uint8Array>(id, storage.state, { snapshotChunkBytes: 4096 });
    const d = new DurableNode(node, storage, sm, send);
    d.kick();
    return d;
  }

  /** Call after every input: the actions of one event-loop turn are carried out together. */
  kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      for (const a of this.node.takeActions()) this.perform(a);
    });
  }

  private perform(a: Action<Uint8Array>): void {
    const { node, storage } = this;
    switch (a.type) {
      case 'persistHardState': // sends after this wait until the term and vote are on disk
        this.hardStateDurable = storage.saveHardState(a.hardState);
        break;
      case 'appendEntries': {
        // Not awaited: written with the next group commit; the node learns when it is durable.
        const last = a.entries.at(-1);
        if (last === undefined) break;
        storage.appendEntries(a.entries).then(() => {
          node.persisted(last.index, last.term);
          this.kick();
        }, this.fail);
        break;
      }
      case 'send':
        this.hardStateDurable.then(() => this.send(a.message), this.fail);
        break;
      case 'apply':
        for (const e of a.entries) if (e.type === 'command') this.sm.apply(e.command, e.index);
        break;
      case 'setTimer':
        clearTimeout(this.timer);
        this.timer = setTimeout(
          () => {
            node.handleTimeout();
            this.kick();
          },
          a.kind === 'heartbeat' ? 10 : 50 + Math.random() * 50,
        );
        break;
      case 'readSnapshotChunk': {
        // Leader: send the durable snapshot in chunks. If it was replaced meanwhile the read rejects and the core
        // retries with the new one later.
        const { to, snapshot, offset, maxBytes } = a;
        storage.readSnapshotChunk(offset, maxBytes, snapshot.index).then((data) => {
          const size = storage.durableSnapshot?.bytes ?? 0;
          node.sendSnapshotChunk(to, snapshot, offset, data, offset + data.length >= size);
          this.kick();
        }, this.ignore);
        break;
      }
      case 'saveSnapshotChunk':
        // Follower: chunks arrive in order; offset 0 starts a new transfer (and abandons a partial one).
        if (a.offset === 0) this.receiver = storage.beginSnapshotReceive(a.snapshot);
        this.receiver?.write(a.offset, a.data).catch(this.ignore);
        break;
      case 'installSnapshot': {
        // Make it durable (this also drops the whole log on disk), restore the state machine, tell the node.
        const receiver = this.receiver;
        this.receiver = null;
        if (!receiver) break;
        receiver
          .finish()
          .then(() => storage.readSnapshot())
          .then((snap) => {
            if (snap) this.sm.restore(snap.data);
            node.snapshotInstalled(a.snapshot);
            this.kick();
          }, this.fail);
        break;
      }
      default: // readReady, readFailed, stateChanged: not used here
        break;
    }
  }

  /** Local snapshot: save the state machine at the applied index, then drop the log up to it (memory and disk). */
  async takeSnapshot(): Promise<SnapshotMeta> {
    const meta = this.node.snapshotMeta(this.node.lastApplied);
    await this.storage.saveSnapshot(meta, this.sm.snapshot());
    this.node.compactLog(meta);
    await this.storage.compact(meta.index);
    this.kick();
    return meta;
  }

  /** Delivers a message from a peer. */
  receive(m: Message<Uint8Array>): void {
    if (this.closed) return;
    this.node.handleMessage(m);
    this.kick();
  }

  /** Stops the timer and closes the storage (queued writes finish first). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.storage.close();
  }

  private readonly ignore = (): void => undefined;
  private readonly fail = (e: unknown): void => {
    // A storage error (IO_ERROR) means the disk can no longer be trusted: stop and let the process restart.
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    console.error(e);
  };
}
