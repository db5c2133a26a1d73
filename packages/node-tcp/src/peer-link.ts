/**
 * One peer connection and its outgoing queue: what a turn queued for the peer (`items`), frames encoded while the
 * connection is still in its handshake (`preFrames`), and the pending queue of ordered, entry-carrying items that
 * is written only while the socket's backlog is under the low-water mark (backpressure), cut into frames of about
 * `softFrameBytes`. Also the size estimates used to cut frames and bound queues. Separate from `transport.ts`, which
 * decides what goes to which link and manages connections, because this is the part that bounds memory per peer.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import type { Entry, Message, NodeId } from '@raft/core';
import type { Command } from '@raft/runtime';
import type { ForwardReply, ForwardRequest, WireItem } from './wire.js';

/** Where a link is in its life. */
export type LinkState = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

type AppendEntries = Extract<Message<Command>, { type: 'AppendEntries' }>;

/** What a link needs from the transport that owns it. */
export interface LinkHost {
  /** Pending bulk is written while the socket holds fewer unsent bytes than this. */
  readonly lowWaterBytes: number;
  /** Target frame size when cutting pending bulk. */
  readonly softFrameBytes: number;
  /** Counters the link updates when it writes. */
  readonly counters: { messagesSent: number; framesSent: number; bytesSent: number };
  /** Schedule a flush of this link's `items` at the end of the turn. */
  markDirty(link: PeerLink): void;
  /** Encode items into frames that fit `maxFrameBytes` (what cannot fit is dropped and counted). */
  encode(items: WireItem[]): Buffer[];
}

/** Whether an item must not overtake items queued before it to the same peer. */
export function isOrdered(it: WireItem): boolean {
  if (it[0] === 1) return true;
  if (it[0] === 2) return false;
  const m = it[1];
  return m.type === 'InstallSnapshot' || (m.type === 'AppendEntries' && m.entries.length > 0);
}

/** Rough encoded size of a log entry (its command text dominates). */
export function entryBytes(e: Entry<Command>): number {
  return e.type === 'command' ? 48 + e.command.input.length + (e.command.clientId?.length ?? 0) : 256;
}

/** Rough encoded size of a frame item, to cut frames and bound queues without encoding first. */
export function itemBytes(it: WireItem): number {
  if (it[0] === 0) {
    const m = it[1];
    if (m.type === 'AppendEntries') {
      let b = 96;
      for (const e of m.entries) b += entryBytes(e);
      return b;
    }
    if (m.type === 'InstallSnapshot') return 256 + m.data.length;
    if (m.type === 'ReadIndexRequest' || m.type === 'ReadIndexResponse') return 96 + 16 * m.readIds.length;
    return 96;
  }
  if (it[0] === 1) {
    const op = it[1][1];
    return 96 + (op.t === 'command' ? op.input.length + (op.clientId?.length ?? 0) : 64);
  }
  const r = it[1];
  return 64 + (r[1] === 1 ? r[2].length : r[3].length + 128);
}

/** One peer connection, outgoing (to `peer`) or incoming (from a peer that identified itself). */
export class PeerLink {
  /** Items to send at the end of this turn. */
  items: WireItem[] = [];
  socket: Socket | null = null;
  state: LinkState = 'idle';
  /** Frames encoded while the connection was being set up; sent once it is ready. */
  preFrames: Buffer[] = [];
  preBytes = 0;
  attempts = 0;
  retryAt = 0;
  dirty = false;
  /** Forwarded requests written (or queued to be written) on the current socket and not answered yet. */
  readonly forwarded = new Map<number, ForwardRequest>();
  /**
   * Items accepted for this (ready) connection but not written yet: they are encoded and written only while the
   * socket holds less than the transport's low-water mark, so a slow reader does not make this server encode (and
   * hold) megabytes of frames ahead, and small messages queued later can still go first.
   */
  pending: WireItem[] = [];
  pendingHead = 0;
  /** Estimated bytes of `pending` (see `itemBytes`). */
  pendingBytes = 0;
  /** Term and heartbeat round (`seq`) of the latest AppendEntries queued for this peer. */
  aeTerm = -1;
  aeSeq = -1;
  /** A commit-only AppendEntries held back, and the timer that sends it if nothing supersedes it. */
  heldCommit: Message<Command> | null = null;
  heldTimer: ReturnType<typeof setTimeout> | undefined;
  /** The socket whose `drain` listener will resume writing `pending`, if any. */
  drainSocket: Socket | null = null;

  constructor(
    /** The peer's id: the dialed address, or the id an incoming peer announced (null until its hello). */
    public peer: NodeId | null,
    readonly outgoing: boolean,
    private readonly host: LinkHost,
  ) {}

  /** Queue an answer to a forwarded request (sent at the end of the turn on this socket). */
  reply(r: ForwardReply): void {
    if (this.state === 'closed') return;
    this.items.push([2, r]);
    this.host.markDirty(this);
  }

  /** Encode and write items now (on a ready connection). */
  write(items: WireItem[]): void {
    const socket = this.socket as Socket;
    for (const it of items) if (it[0] === 1) this.forwarded.set(it[1][0], it[1]);
    for (const f of this.host.encode(items)) {
      socket.write(f);
      this.host.counters.framesSent++;
      this.host.counters.bytesSent += f.length;
    }
    this.host.counters.messagesSent += items.length;
  }

  /** Write pending items, about `softFrameBytes` per frame, while the socket's backlog is under the low-water mark. */
  pump(): void {
    const socket = this.socket;
    if (socket === null || this.state !== 'ready') return;
    const q = this.pending;
    while (this.pendingHead < q.length && socket.writableLength < this.host.lowWaterBytes) {
      const batch: WireItem[] = [];
      let bytes = 0;
      while (this.pendingHead < q.length && (batch.length === 0 || bytes < this.host.softFrameBytes)) {
        const it = q[this.pendingHead];
        const b = itemBytes(it);
        if (batch.length > 0 && bytes + b > this.host.softFrameBytes) break;
        q[this.pendingHead++] = undefined as unknown as WireItem;
        batch.push(it);
        bytes += b;
      }
      this.pendingBytes = Math.max(0, this.pendingBytes - bytes);
      this.write(batch);
    }
    if (this.pendingHead >= q.length) {
      this.pending = [];
      this.pendingHead = 0;
      this.pendingBytes = 0;
    } else if (this.pendingHead > 1024 && this.pendingHead * 2 > q.length) {
      this.pending = q.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    // One listener per socket: after a reconnection the old socket's listener is gone with it.
    if (this.pendingHead < this.pending.length && this.drainSocket !== socket) {
      this.drainSocket = socket;
      socket.once('drain', () => {
        if (this.drainSocket === socket) this.drainSocket = null;
        if (this.socket === socket) this.pump();
      });
    }
  }

  /** Items queued but never written (the connection closed): returned so forwarded requests count as unsent. */
  takePending(): WireItem[] {
    const rest = this.pending.slice(this.pendingHead);
    this.pending = [];
    this.pendingHead = 0;
    this.pendingBytes = 0;
    return rest;
  }
}

/**
 * Cut an AppendEntries into consecutive valid ones of about `limit` bytes of entries each (the second's prev is
 * the first's last entry; the follower acknowledges each). Smaller frames let a follower decode and persist a
 * large batch piece by piece, and let heartbeats and votes interleave instead of waiting behind one huge frame.
 */
export function splitAppend(m: AppendEntries, limit: number): AppendEntries[] {
  const es = m.entries;
  let total = 0;
  for (const e of es) total += entryBytes(e);
  if (total <= limit || es.length < 2) return [m];
  const out: AppendEntries[] = [];
  let from = 0;
  let bytes = 0;
  let prevIndex = m.prevLogIndex;
  let prevTerm = m.prevLogTerm;
  for (let i = 0; i < es.length; i++) {
    bytes += entryBytes(es[i]);
    if (bytes >= limit || i === es.length - 1) {
      const part = es.slice(from, i + 1);
      out.push({ ...m, prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: part });
      prevIndex = es[i].index;
      prevTerm = es[i].term;
      from = i + 1;
      bytes = 0;
    }
  }
  return out;
}
