import type { Entry, HardState, Message, NodeId, RaftNode } from '@raft/core';

/** What the driver needs from the outside world: a disk with ordered writes, a network, a state machine. */
export interface DriverIO<C> {
  saveHardState(hs: HardState): Promise<void>; // durable when resolved; writes complete in call order
  appendEntries(entries: readonly Entry<C>[]): Promise<void>; // replaces entries from entries[0].index on
  send(message: Message<C>): void; // best effort
  apply(command: C, index: number): void;
  readReady?(readId: number | string): void;
}

/** A complete runtime loop for one node: drain actions once per event-loop turn and carry them out. */
export class Driver<C> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private scheduled = false;
  private stopped = false;
  private hardStateDurable: Promise<void> = Promise.resolve();

  constructor(
    readonly node: RaftNode<C>,
    private readonly io: DriverIO<C>,
    private readonly timing = { heartbeatMs: 20, electionMinMs: 150, electionMaxMs: 300 },
  ) {}

  /**
   * Call once at start, and after every input (a message, a proposal, a read): everything of one turn is batched.
   * The first kick matters: `RaftNode.start` queues a `setTimer` action, and until it is carried out the node has
   * no election timer, so it never campaigns.
   */
  kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  /** Stops the timer and ignores later kicks (messages still in flight then change nothing). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private run(): void {
    this.scheduled = false;
    for (const a of this.node.takeActions()) {
      switch (a.type) {
        case 'persistHardState': // later sends must wait until the new term/vote is on disk
          this.hardStateDurable = this.io.saveHardState(a.hardState);
          break;
        case 'appendEntries': {
          const last = a.entries.at(-1); // written in the background; sends do not wait
          if (last === undefined) break;
          void this.io.appendEntries(a.entries).then(() => {
            this.node.persisted(last.index, last.term);
            this.kick();
          });
          break;
        }
        case 'send':
          void this.hardStateDurable.then(() => this.io.send(a.message));
          break;
        case 'setTimer': {
          const { heartbeatMs, electionMinMs, electionMaxMs } = this.timing;
          const ms =
            a.kind === 'heartbeat' ? heartbeatMs : electionMinMs + Math.random() * (electionMaxMs - electionMinMs);
          clearTimeout(this.timer);
          this.timer = setTimeout(() => {
            this.node.handleTimeout();
            this.kick();
          }, ms);
          break;
        }
        case 'apply':
          for (const e of a.entries) if (e.type === 'command') this.io.apply(e.command, e.index);
          break;
        case 'readReady':
          this.io.readReady?.(a.readId);
          break;
        default: // snapshots, failed reads and state changes: see docs/core.md
          break;
      }
    }
  }

  /** Delivers a message from a peer. */
  receive(message: Message<C>): void {
    this.node.handleMessage(message);
    this.kick();
  }

  /** The node's id, for routing. */
  get id(): NodeId {
    return this.node.id;
  }
}
