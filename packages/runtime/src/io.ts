/**
 * The contracts between the runtime and the outside world: the storage, the transport and the clock. A runtime
 * author implements these three (plus a {@link Machine}) and gets the whole driver: durability gates, snapshots,
 * forwarding, membership waits and client answers. `@raft/storage-jsonl` implements {@link RaftStorage},
 * `@raft/node-tcp` the TCP transport and real timers, `@raft/sim` all three on a simulated disk, network and clock.
 *
 * Completions are `PromiseLike`, and the runtime only ever calls `.then(onDone, onError)` on them (never `await`):
 * a real storage returns ordinary promises, while a simulator may return a thenable that it completes synchronously
 * from its own event queue, so that every I/O completion is an ordered, replayable event. A completion must not
 * be settled during the call that returned it.
 *
 * @packageDocumentation
 */

import type { Entry, HardState, Index, Message, NodeId, PersistedState, SnapshotMeta } from '@raft/core';
import type { Command } from './machine.js';

export type { PersistedState };

/** Chunked reception of a snapshot sent by a leader (see {@link RaftStorage.beginSnapshotReceive}). */
export interface SnapshotReceiver {
  /**
   * Store a chunk. `offset` equals the bytes received so far, or is 0 to restart the transfer. Nothing needs to be
   * durable until {@link SnapshotReceiver.finish}.
   */
  write(offset: number, data: Uint8Array): PromiseLike<void>;
  /**
   * Make the snapshot durable and install it (the whole log is dropped), ordered with the storage's other writes.
   * Settles once all of that is on disk: only then does the runtime restore the machine and tell the core.
   */
  finish(): PromiseLike<void>;
  /** Abandon the transfer. */
  abort(): PromiseLike<void>;
  /** @internal The bytes received so far, where the storage keeps them in memory (a planted-bug test uses it). */
  bytes?(): Uint8Array | null;
}

/**
 * The durable storage of one node: term and vote, the log, and snapshots. Every write settles only once it is
 * durable; writes are durable in call order (a later `appendEntries` may replace entries of an earlier one).
 *
 * @typeParam C - the log's command type (the runtime uses {@link Command})
 */
export interface RaftStorage<C = Command> {
  /** What was durable when the storage was opened: what the node restarts from. */
  readonly state: PersistedState<C>;
  /** Durably record the term and vote. */
  saveHardState(hs: HardState): PromiseLike<void>;
  /**
   * Durably store entries, replacing any stored entry at or after `entries[0].index` (that is how a conflicting
   * suffix is truncated). Settles once these and every earlier write are durable.
   */
  appendEntries(entries: readonly Entry<C>[]): PromiseLike<void>;
  /**
   * Durably save a snapshot of this node's own state machine. The log is kept (the runtime calls `compact`
   * afterwards) unless it does not hold the snapshot's last entry with the same term, in which case it is dropped.
   */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array): PromiseLike<void>;
  /** Forget log entries at or below `upTo` (at most the snapshot's index). May keep some; must keep none above. */
  compact(upTo: Index): PromiseLike<void>;
  /** Start receiving a leader's snapshot in chunks; a previous unfinished reception is abandoned. */
  beginSnapshotReceive(meta: SnapshotMeta): SnapshotReceiver;
  /** The latest durable snapshot with its data, or `null`. */
  readSnapshot(): PromiseLike<{ meta: SnapshotMeta; data: Uint8Array } | null>;
  /**
   * Up to `maxBytes` bytes at `offset` of the durable snapshot at `index` (fewer at the end). Rejects when the
   * durable snapshot is not at `index` any more (the core then restarts the transfer with the newer one).
   */
  readSnapshotChunk(offset: number, maxBytes: number, index: Index): PromiseLike<Uint8Array>;
  /** Finish queued writes and release the storage. */
  close(): PromiseLike<void>;
}

/** A client request a non-leader forwards to the leader. */
export type ForwardOp =
  | { readonly t: 'command'; readonly input: string; readonly clientId?: string; readonly seq?: number }
  | { readonly t: 'addServer'; readonly addr: string }
  | { readonly t: 'removeServer'; readonly addr: string }
  | { readonly t: 'transfer'; readonly addr?: string };

/** `[requestId, op, timeoutMs, hops]`: a forwarded request as it travels. */
export type ForwardRequest = [id: number, op: ForwardOp, timeoutMs: number, hops: number];

/** `[requestId, 1, outputJsonText]` or `[requestId, 0, errorCode, message, data]`: the leader's answer. */
export type ForwardReply =
  | [id: number, ok: 1, json: string]
  | [id: number, ok: 0, code: number, message: string, data: Record<string, unknown> | null];

/**
 * The runtime's way out to its peers. Delivery is best effort: Raft tolerates loss, duplication and reordering of
 * messages. For forwarded requests the transport reports back through the runtime's inputs
 * ({@link RaftRuntime.forwardReplies}, {@link RaftRuntime.forwardsUnsent}, {@link RaftRuntime.forwardsLost}).
 */
export interface Transport<C = Command> {
  /** Send a Raft message to `message.to`. */
  send(message: Message<C>): void;
  /**
   * Send a client request to the leader `to`. Its reply must reach only this runtime, never a later one on the
   * same node (a restarted runtime numbers its forwards from 1 again): a transport that carries the reply on the
   * connection the request came on, as the TCP transport does, has this for free.
   */
  forward(to: NodeId, request: ForwardRequest): void;
  /**
   * Called once at the end of every turn of the runtime, after its sends: a transport that batches may write what
   * the turn produced now. Optional.
   */
  flush?(): void;
}

/** A timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/** Time, timers and the scheduling of turns. The runtime never reads a real clock or calls `setTimeout` itself. */
export interface Clock {
  /** Milliseconds (any origin; only differences are used). */
  now(): number;
  /** Call `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancel a timer (a no-op for one that fired or was cancelled). */
  clearTimeout(handle: TimerHandle): void;
  /**
   * Run `fn` soon, after the current turn: inputs that arrive meanwhile are batched into the same drain of the
   * core (Node: `setImmediate`; a simulator: an event at the same virtual time).
   */
  defer(fn: () => void): void;
  /** A number in [0, 1) for the election timeout's jitter (a simulator returns a seeded one). */
  random(): number;
}

/** A {@link Clock} on the host's timers (`setTimeout`, `setImmediate` where it exists) and `Math.random`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  defer: (fn) => {
    const g = globalThis as { setImmediate?: (f: () => void) => unknown };
    if (g.setImmediate !== undefined) g.setImmediate(fn);
    else setTimeout(fn, 0);
  },
  random: () => Math.random(),
};
