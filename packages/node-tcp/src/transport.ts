/**
 * The peer transport: one outgoing TCP connection per peer carrying length-prefixed MessagePack frames, with a
 * handshake, per-turn coalescing, bounded buffers and reconnection with backoff and jitter.
 *
 * Each server dials every peer it has something to send to and only *sends* Raft messages on that connection; the
 * peer's own messages come back on the connection the peer dialed. Forwarded client requests travel on the
 * requester's outgoing connection and are answered on the same socket.
 *
 * @packageDocumentation
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { Entry, Message, NodeId } from '@raft/core';
import type { Command, Logger } from '@raft/runtime';
import { splitAddress } from './address.js';
import { encodeFrame, FrameDecoder, PEER_MAGIC, PEER_VERSION } from './frame.js';
import {
  checkForwardReply,
  checkForwardRequest,
  checkMessage,
  type ForwardReply,
  type ForwardRequest,
  type WireItem,
} from './wire.js';

/** Counters the transport updates (a subset of the server's counters). */
export interface TransportCounters {
  messagesSent: number;
  messagesReceived: number;
  messagesDropped: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  peerConnectionsRejected: number;
}

/** What the transport needs from the server. */
export interface TransportOptions {
  /** This server's id (its address). */
  readonly id: NodeId;
  readonly clusterName: string;
  readonly secret: string | undefined;
  readonly maxFrameBytes: number;
  readonly maxBufferBytes: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** How long a new connection may take to finish its handshake. */
  readonly handshakeTimeoutMs: number;
  /**
   * How long a commit-only AppendEntries (see {@link PeerTransport.send}) may wait for a later AppendEntries to the
   * same peer that makes it redundant. 0 sends them at once.
   */
  readonly commitNotifyDelayMs: number;
  /** Pending bulk is written while the socket holds fewer unsent bytes than this. */
  readonly lowWaterBytes: number;
  /** Target frame size when cutting pending bulk (AppendEntries are split to about this many bytes of entries). */
  readonly softFrameBytes: number;
  readonly logger: Logger;
  readonly counters: TransportCounters;
  /** Valid Raft messages received in one frame. */
  onMessages(messages: Message<Command>[]): void;
  /** A forwarded request arrived; answer it with `link.reply(...)`. */
  onForward(link: PeerLink, request: ForwardRequest): void;
  /** Answers to this server's forwarded requests. */
  onReplies(replies: ForwardReply[]): void;
  /** Forwarded requests that were certainly not sent (the leader is unreachable): the server may retry them. */
  onUnsent(requests: ForwardRequest[]): void;
  /**
   * The connection carrying these forwarded requests (by id) closed before their answers arrived: they may or may
   * not have reached the leader.
   */
  onLost(ids: number[]): void;
}

type LinkState = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

function mac(secret: string, nonce: Uint8Array, cluster: string, id: string): Buffer {
  return createHmac('sha256', secret).update(nonce).update(`\0${cluster}\0${id}`).digest();
}

/** Whether an item must not overtake items queued before it to the same peer. */
function isOrdered(it: WireItem): boolean {
  if (it[0] === 1) return true;
  if (it[0] === 2) return false;
  const m = it[1];
  return m.type === 'InstallSnapshot' || (m.type === 'AppendEntries' && m.entries.length > 0);
}

/** Rough encoded size of a log entry (its command text dominates). */
function entryBytes(e: Entry<Command>): number {
  return e.type === 'command' ? 48 + e.command.input.length + (e.command.clientId?.length ?? 0) : 256;
}

/** Rough encoded size of a frame item, to cut frames and bound queues without encoding first. */
function itemBytes(it: WireItem): number {
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
    private readonly transport: PeerTransport,
  ) {}

  /** Queue an answer to a forwarded request (sent at the end of the turn on this socket). */
  reply(r: ForwardReply): void {
    if (this.state === 'closed') return;
    this.items.push([2, r]);
    this.transport.markDirty(this);
  }
}

/** The peer side of a server. See the module comment. */
export class PeerTransport {
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly incoming = new Set<PeerLink>();
  private readonly dirty: PeerLink[] = [];
  private flushScheduled = false;
  private closed = false;

  constructor(private readonly o: TransportOptions) {}

  /**
   * Queue a Raft message for `message.to`; it leaves with everything else queued this turn.
   *
   * One kind waits a little: an empty AppendEntries in the same term and heartbeat round (`seq`) as the previous
   * AppendEntries to that peer. It starts no new confirmation round (heartbeat ticks and read rounds raise `seq`),
   * so it only announces a new commit index (the core sends one to every follower after each commit) or re-probes.
   * Under a steady stream of commands the next AppendEntries carries the same commit index a moment later, and the
   * follower would answer both: holding it back until then (at most `commitNotifyDelayMs`) and dropping it once
   * superseded halves the frames, writes and wake-ups per command on every member. Raft tolerates a lost or late
   * message, so this only delays followers learning the commit index (they apply a little later); the leader's
   * commits and answers, reads and elections are unaffected.
   */
  send(message: Message<Command>): void {
    const link = this.outLink(message.to);
    if (message.type === 'AppendEntries') {
      if (
        this.o.commitNotifyDelayMs > 0 &&
        message.entries.length === 0 &&
        message.term === link.aeTerm &&
        message.seq === link.aeSeq
      ) {
        link.heldCommit = message;
        link.heldTimer ??= setTimeout(() => this.releaseHeld(link), this.o.commitNotifyDelayMs);
        return;
      }
      link.aeTerm = message.term;
      link.aeSeq = message.seq;
      const held = link.heldCommit;
      // The held message is redundant once a later one carries at least its commit index in the same term.
      if (
        held !== null &&
        held.term === message.term &&
        message.leaderCommit >= (held as typeof message).leaderCommit
      ) {
        this.clearHeld(link);
      }
    }
    link.items.push([0, message]);
    this.markDirty(link);
  }

  private releaseHeld(link: PeerLink): void {
    link.heldTimer = undefined;
    const held = link.heldCommit;
    link.heldCommit = null;
    if (held === null || this.closed || link.state === 'closed') return;
    link.items.push([0, held]);
    this.markDirty(link);
  }

  private clearHeld(link: PeerLink): void {
    link.heldCommit = null;
    clearTimeout(link.heldTimer);
    link.heldTimer = undefined;
  }

  /** Queue a forwarded request for `to` (the leader). */
  forward(to: NodeId, request: ForwardRequest): void {
    const link = this.outLink(to);
    link.items.push([1, request]);
    this.markDirty(link);
  }

  /** Close the outgoing connection to `peer` (it is no longer a member). */
  drop(peer: NodeId): void {
    const link = this.links.get(peer);
    if (link === undefined) return;
    this.links.delete(peer);
    link.state = 'closed';
    this.clearHeld(link);
    link.socket?.destroy();
  }

  /** Peers with an outgoing link. */
  peers(): NodeId[] {
    return [...this.links.keys()];
  }

  /** Close every connection; later sends are dropped. */
  close(): void {
    this.closed = true;
    for (const l of this.links.values()) {
      l.state = 'closed';
      this.clearHeld(l);
      l.socket?.destroy();
    }
    for (const l of this.incoming) {
      l.state = 'closed';
      l.socket?.destroy();
    }
    this.links.clear();
    this.incoming.clear();
  }

  /** @internal */
  markDirty(link: PeerLink): void {
    if (!link.dirty) {
      link.dirty = true;
      this.dirty.push(link);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private outLink(to: NodeId): PeerLink {
    let link = this.links.get(to);
    if (link === undefined) {
      link = new PeerLink(to, true, this);
      this.links.set(to, link);
    }
    return link;
  }

  /**
   * Send everything queued this turn. Small items (votes, responses, heartbeats, forwarded answers) are written at
   * once, in one frame per peer; entry-carrying AppendEntries and forwarded requests join the peer's pending queue,
   * cut into frames of about `softFrameBytes`, which is written while the socket's backlog stays under the low-water
   * mark (and resumes on `drain`).
   */
  flush(): void {
    this.flushScheduled = false;
    const dirty = this.dirty.splice(0);
    for (const link of dirty) {
      link.dirty = false;
      const items = link.items;
      if (items.length === 0) continue;
      link.items = [];
      if (this.closed || link.state === 'closed') {
        this.dropItems(items);
        continue;
      }
      if (link.outgoing && (link.state === 'idle' || (link.state === 'backoff' && Date.now() >= link.retryAt))) {
        this.dial(link);
      }
      if (link.state === 'backoff') {
        this.dropItems(items);
        continue;
      }
      const ready = link.state === 'ready' && link.socket !== null;
      if (!ready) {
        // Still connecting: keep encoded frames, within the same bound; the whole turn's batch is dropped or kept
        // together, so a forwarded request is either surely sent or surely not.
        if (link.preBytes > this.o.maxBufferBytes) {
          this.dropItems(items);
          continue;
        }
        for (const it of items) if (it[0] === 1) link.forwarded.set(it[1][0], it[1]);
        for (const f of this.encode(items)) {
          link.preFrames.push(f);
          link.preBytes += f.length;
        }
        this.o.counters.messagesSent += items.length;
        continue;
      }
      // Items that must reach the peer in the order they were queued (entry-carrying AppendEntries, snapshot
      // chunks, forwarded requests) go through the pending queue; the rest may overtake it.
      let urgent: WireItem[] | null = null;
      let bulk: WireItem[] | null = null;
      let bulkBytes = 0;
      let total = 0;
      for (const it of items) {
        const b = itemBytes(it);
        total += b;
        if (isOrdered(it)) {
          (bulk ??= []).push(it);
          bulkBytes += b;
        } else (urgent ??= []).push(it);
      }
      const socket = link.socket as Socket;
      if (
        link.pendingHead >= link.pending.length &&
        total <= this.o.softFrameBytes &&
        socket.writableLength < this.o.lowWaterBytes
      ) {
        // The common case: nothing waiting, a modest turn: one frame, in order.
        this.writeItems(link, items);
        continue;
      }
      if (urgent !== null) this.writeItems(link, urgent);
      if (bulk === null) continue;
      // Backpressure: a peer that does not read is not worth unbounded memory; Raft retransmits. The turn's ordered
      // items are dropped or kept together, so a forwarded request is either surely sent or surely not.
      if (link.pendingBytes > 0 && link.pendingBytes + socket.writableLength + bulkBytes > this.o.maxBufferBytes) {
        this.dropItems(bulk);
        continue;
      }
      for (const it of bulk) {
        if (it[0] === 1) link.forwarded.set(it[1][0], it[1]);
        if (it[0] === 0 && it[1].type === 'AppendEntries') {
          for (const part of this.splitAppend(it[1])) link.pending.push([0, part]);
        } else link.pending.push(it);
      }
      link.pendingBytes += bulkBytes;
      this.pump(link);
    }
  }

  /** Encode and write items now (on a ready connection). */
  private writeItems(link: PeerLink, items: WireItem[]): void {
    const socket = link.socket as Socket;
    for (const it of items) if (it[0] === 1) link.forwarded.set(it[1][0], it[1]);
    for (const f of this.encode(items)) {
      socket.write(f);
      this.o.counters.framesSent++;
      this.o.counters.bytesSent += f.length;
    }
    this.o.counters.messagesSent += items.length;
  }

  /** Write pending items, about `softFrameBytes` per frame, while the socket's backlog is under the low-water mark. */
  private pump(link: PeerLink): void {
    const socket = link.socket;
    if (socket === null || link.state !== 'ready') return;
    const q = link.pending;
    while (link.pendingHead < q.length && socket.writableLength < this.o.lowWaterBytes) {
      const batch: WireItem[] = [];
      let bytes = 0;
      while (link.pendingHead < q.length && (batch.length === 0 || bytes < this.o.softFrameBytes)) {
        const it = q[link.pendingHead];
        const b = itemBytes(it);
        if (batch.length > 0 && bytes + b > this.o.softFrameBytes) break;
        q[link.pendingHead++] = undefined as unknown as WireItem;
        batch.push(it);
        bytes += b;
      }
      link.pendingBytes = Math.max(0, link.pendingBytes - bytes);
      this.writeItems(link, batch);
    }
    if (link.pendingHead >= q.length) {
      link.pending = [];
      link.pendingHead = 0;
      link.pendingBytes = 0;
    } else if (link.pendingHead > 1024 && link.pendingHead * 2 > q.length) {
      link.pending = q.slice(link.pendingHead);
      link.pendingHead = 0;
    }
    // One listener per socket: after a reconnection the old socket's listener is gone with it.
    if (link.pendingHead < link.pending.length && link.drainSocket !== socket) {
      link.drainSocket = socket;
      socket.once('drain', () => {
        if (link.drainSocket === socket) link.drainSocket = null;
        if (link.socket === socket) this.pump(link);
      });
    }
  }

  /** Items queued but never written (the connection closed): returned so forwarded requests count as unsent. */
  private takePending(link: PeerLink): WireItem[] {
    const rest = link.pending.slice(link.pendingHead);
    link.pending = [];
    link.pendingHead = 0;
    link.pendingBytes = 0;
    return rest;
  }

  /**
   * Cut an AppendEntries into consecutive valid ones of about `softFrameBytes` of entries each (the second's prev is
   * the first's last entry; the follower acknowledges each). Smaller frames let a follower decode and persist a
   * large batch piece by piece, and let heartbeats and votes interleave instead of waiting behind one huge frame.
   */
  private splitAppend(m: Extract<Message<Command>, { type: 'AppendEntries' }>): (typeof m)[] {
    const es = m.entries;
    const limit = this.o.softFrameBytes;
    let total = 0;
    for (const e of es) total += entryBytes(e);
    if (total <= limit || es.length < 2) return [m];
    const out: (typeof m)[] = [];
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

  private dropItems(items: WireItem[]): void {
    const unsent: ForwardRequest[] = [];
    for (const it of items) {
      if (it[0] === 1) unsent.push(it[1]);
      else this.o.counters.messagesDropped++;
    }
    if (unsent.length > 0) this.o.onUnsent(unsent);
  }

  /** Encode items into as few frames as fit `maxFrameBytes`, splitting big AppendEntries if needed. */
  private encode(items: WireItem[]): Buffer[] {
    const f = encodeFrame(items, this.o.maxFrameBytes);
    if (f !== null) return [f];
    if (items.length > 1) {
      const half = items.length >> 1;
      return [...this.encode(items.slice(0, half)), ...this.encode(items.slice(half))];
    }
    const it = items[0];
    if (it[0] === 0 && it[1].type === 'AppendEntries' && it[1].entries.length > 1) {
      // Two valid AppendEntries: the second's prev is the first's last entry. The follower acknowledges both.
      const m = it[1];
      const half = m.entries.length >> 1;
      const a = { ...m, entries: m.entries.slice(0, half) };
      const last = m.entries[half - 1];
      const b = { ...m, prevLogIndex: last.index, prevLogTerm: last.term, entries: m.entries.slice(half) };
      return [...this.encode([[0, a]]), ...this.encode([[0, b]])];
    }
    this.o.logger.warn('dropped a peer message larger than maxFrameBytes', {
      kind: it[0] === 0 ? it[1].type : it[0] === 1 ? 'forward' : 'reply',
      maxFrameBytes: this.o.maxFrameBytes,
    });
    this.dropItems(items);
    return [];
  }

  private backoff(link: PeerLink): number {
    const base = Math.min(this.o.backoffMaxMs, this.o.backoffMinMs * 2 ** Math.min(link.attempts, 16));
    // Full jitter between half and the whole delay: peers that lost the same node do not retry in lockstep.
    return base / 2 + Math.random() * (base / 2);
  }

  private dial(link: PeerLink): void {
    const peer = link.peer as NodeId;
    const addr = splitAddress(peer);
    if (addr === null) {
      this.o.logger.warn('cannot connect to a peer whose id is not host:port', { peer });
      link.state = 'backoff';
      link.retryAt = Date.now() + this.o.backoffMaxMs;
      return;
    }
    link.state = 'connecting';
    link.attempts++;
    const socket = connect({ host: addr.host, port: addr.port });
    link.socket = socket;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.o.maxFrameBytes);
    let handshaken = false;
    let clientNonce: Buffer | null = null;
    const timer = setTimeout(() => {
      if (!handshaken) {
        this.o.logger.debug?.('peer handshake timed out', { peer });
        socket.destroy();
      }
    }, this.o.handshakeTimeoutMs);
    socket.on('connect', () => {
      socket.write(Buffer.concat([PEER_MAGIC, Buffer.of(PEER_VERSION)]));
    });
    socket.on('data', (chunk: Buffer) => {
      if (link.socket !== socket) return;
      this.o.counters.bytesReceived += chunk.length;
      try {
        for (const payload of decoder.push(chunk)) {
          const v = decoder.decode(payload);
          if (!handshaken && clientNonce === null) {
            // Step 1: the server's challenge. Answer with our proof and a challenge of our own.
            const o = v as { n?: unknown; e?: unknown };
            if (typeof o?.e === 'string') throw new Error(`peer refused the handshake: ${o.e}`);
            if (!(o?.n instanceof Uint8Array)) throw new Error('peer sent no handshake challenge');
            clientNonce = randomBytes(16);
            const hello: Record<string, unknown> = {
              h: PEER_VERSION,
              c: this.o.clusterName,
              i: this.o.id,
              n: clientNonce,
            };
            if (this.o.secret !== undefined) hello.m = mac(this.o.secret, o.n, this.o.clusterName, this.o.id);
            const f = encodeFrame(hello, this.o.maxFrameBytes) as Buffer;
            socket.write(f);
            this.o.counters.bytesSent += f.length;
            continue;
          }
          if (!handshaken) {
            // Step 2: the server proves the secret too, so nobody can pose as a member we dial.
            const o = v as { ok?: unknown; e?: unknown };
            if (typeof o?.e === 'string') throw new Error(`peer refused the handshake: ${o.e}`);
            if (this.o.secret !== undefined) {
              const want = mac(this.o.secret, clientNonce as Buffer, `${this.o.clusterName}\0ack`, peer);
              if (!(o?.ok instanceof Uint8Array) || o.ok.length !== want.length || !timingSafeEqual(o.ok, want)) {
                this.o.counters.peerConnectionsRejected++;
                throw new Error('the peer did not prove the shared secret');
              }
            } else if (o?.ok === undefined) throw new Error('peer did not accept the handshake');
            socket.cork();
            for (const pf of link.preFrames) socket.write(pf);
            socket.uncork();
            this.o.counters.framesSent += link.preFrames.length;
            this.o.counters.bytesSent += link.preBytes;
            link.preFrames = [];
            link.preBytes = 0;
            handshaken = true;
            clearTimeout(timer);
            link.state = 'ready';
            link.attempts = 0;
            continue;
          }
          this.o.counters.framesReceived++;
          const bad = this.dispatch(link, v, true);
          if (bad !== null) throw new Error(bad);
        }
      } catch (e) {
        this.o.logger.warn('closing peer connection', { peer, reason: (e as Error).message });
        socket.destroy();
      }
    });
    socket.on('error', (e) => {
      this.o.logger.debug?.('peer connection error', { peer, error: e.message });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (link.socket !== socket) return;
      link.socket = null;
      if (link.state === 'closed') return;
      link.state = 'backoff';
      link.retryAt = Date.now() + this.backoff(link);
      const dropped = link.preFrames.length;
      link.preFrames = [];
      link.preBytes = 0;
      this.o.counters.messagesDropped += dropped;
      const unsentForwards: ForwardRequest[] = [];
      for (const it of this.takePending(link)) {
        if (it[0] === 1) {
          link.forwarded.delete(it[1][0]);
          unsentForwards.push(it[1]);
        } else this.o.counters.messagesDropped++;
      }
      // Queued but never written: these certainly did not reach the peer.
      if (unsentForwards.length > 0) this.o.onUnsent(unsentForwards);
      if (link.forwarded.size > 0) {
        const reqs = [...link.forwarded.values()];
        link.forwarded.clear();
        // Never handshaken: nothing reached the peer. Otherwise the requests may have been delivered.
        if (handshaken) this.o.onLost(reqs.map((r) => r[0]));
        else this.o.onUnsent(reqs);
      }
      // Anything still queued for this turn is retried by the next flush (or dropped while backing off).
    });
  }

  /** Take over an incoming socket that started with the peer magic. `head` holds the bytes read so far. */
  accept(socket: Socket, head: Buffer): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const link = new PeerLink(null, false, this);
    link.socket = socket;
    link.state = 'connecting';
    this.incoming.add(link);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.o.maxFrameBytes);
    const nonce = randomBytes(16);
    let prefix = head.subarray(PEER_MAGIC.length);
    let versionOk = false;
    const reject = (reason: string) => {
      if (link.state === 'closed') return;
      this.o.counters.peerConnectionsRejected++;
      this.o.logger.warn('rejected a peer connection', { remote, peer: link.peer, reason });
      if (!socket.destroyed && socket.writable) {
        const f = encodeFrame({ e: reason.slice(0, 200) }, this.o.maxFrameBytes);
        if (f !== null) socket.end(f);
      }
      link.state = 'closed';
      setTimeout(() => socket.destroy(), 100).unref();
    };
    const timer = setTimeout(() => {
      if (link.state === 'connecting') reject('handshake not completed in time');
    }, this.o.handshakeTimeoutMs);
    const onBytes = (chunk: Buffer) => {
      if (link.state === 'closed') return;
      this.o.counters.bytesReceived += chunk.length;
      let data = chunk;
      if (!versionOk) {
        data = prefix.length > 0 ? Buffer.concat([prefix, chunk]) : chunk;
        prefix = Buffer.alloc(0);
        if (data.length === 0) return;
        if (data[0] !== PEER_VERSION) {
          reject(`unsupported peer protocol version ${data[0]}`);
          return;
        }
        versionOk = true;
        data = data.subarray(1);
      }
      try {
        for (const payload of decoder.push(data)) {
          const v = decoder.decode(payload);
          if (link.state === 'connecting') {
            const why = this.checkHello(v, nonce);
            if (typeof why === 'string') {
              reject(why);
              return;
            }
            link.peer = why.id;
            link.state = 'ready';
            clearTimeout(timer);
            const ack =
              this.o.secret === undefined
                ? true
                : mac(this.o.secret, why.nonce, `${this.o.clusterName}\0ack`, this.o.id);
            socket.write(encodeFrame({ ok: ack }, this.o.maxFrameBytes) as Buffer);
            continue;
          }
          this.o.counters.framesReceived++;
          const bad = this.dispatch(link, v);
          if (bad !== null) {
            reject(bad);
            return;
          }
        }
      } catch (e) {
        reject((e as Error).message);
      }
    };
    socket.on('data', onBytes);
    socket.on('error', (e) => this.o.logger.debug?.('incoming peer connection error', { remote, error: e.message }));
    socket.on('close', () => {
      clearTimeout(timer);
      link.state = 'closed';
      this.incoming.delete(link);
    });
    const challenge = encodeFrame({ n: nonce }, this.o.maxFrameBytes) as Buffer;
    socket.write(challenge);
    if (prefix.length > 0) {
      const p = prefix;
      prefix = Buffer.alloc(0);
      onBytes(p);
    }
  }

  private checkHello(v: unknown, nonce: Buffer): { id: NodeId; nonce: Uint8Array } | string {
    const h = v as { h?: unknown; c?: unknown; i?: unknown; m?: unknown; n?: unknown } | null;
    if (
      h === null ||
      typeof h !== 'object' ||
      h.h !== PEER_VERSION ||
      typeof h.i !== 'string' ||
      !(h.n instanceof Uint8Array) ||
      h.n.length !== 16
    ) {
      return 'malformed handshake';
    }
    if (h.c !== this.o.clusterName) {
      return `cluster name mismatch: peer says ${JSON.stringify(String(h.c)).slice(0, 80)}, this server is in ${JSON.stringify(this.o.clusterName)}`;
    }
    if (this.o.secret !== undefined) {
      const want = mac(this.o.secret, nonce, this.o.clusterName, h.i);
      if (!(h.m instanceof Uint8Array) || h.m.length !== want.length || !timingSafeEqual(h.m, want)) {
        return 'shared secret proof missing or wrong';
      }
    }
    return h.i.length > 0 && h.i.length < 300 ? { id: h.i, nonce: h.n } : 'malformed handshake';
  }

  /** Handle one frame's items; returns a reason when the frame is malformed. */
  private dispatch(link: PeerLink, v: unknown, repliesOnly = false): string | null {
    if (!Array.isArray(v)) return 'frame is not an array of items';
    let messages: Message<Command>[] | null = null;
    let replies: ForwardReply[] | null = null;
    for (const it of v) {
      if (!Array.isArray(it) || it.length !== 2) return 'malformed frame item';
      // On a connection we dialed only answers may come back: messages must arrive on a connection the sender
      // opened (and authenticated itself on).
      if (repliesOnly && it[0] !== 2) return 'unexpected item on an outgoing connection';
      switch (it[0]) {
        case 0: {
          const m = checkMessage(it[1], this.o.id);
          if (typeof m === 'string') return m;
          (messages ??= []).push(m);
          break;
        }
        case 1: {
          const r = checkForwardRequest(it[1]);
          if (typeof r === 'string') return r;
          this.o.onForward(link, r);
          break;
        }
        case 2: {
          const r = checkForwardReply(it[1]);
          if (typeof r === 'string') return r;
          link.forwarded.delete(r[0]);
          (replies ??= []).push(r);
          break;
        }
        default:
          return 'unknown frame item kind';
      }
    }
    if (messages !== null) {
      this.o.counters.messagesReceived += messages.length;
      this.o.onMessages(messages);
    }
    if (replies !== null) this.o.onReplies(replies);
    return null;
  }
}
