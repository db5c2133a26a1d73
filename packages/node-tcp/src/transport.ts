/**
 * The peer transport: one outgoing TCP connection per peer carrying length-prefixed MessagePack frames, with a
 * handshake, per-turn coalescing, bounded buffers and reconnection with backoff and jitter.
 *
 * Each server dials every peer it has something to send to and only *sends* Raft messages on that connection; the
 * peer's own messages come back on the connection the peer dialed. Forwarded client requests travel on the
 * requester's outgoing connection and are answered on the same socket.
 *
 * This file decides what goes to which peer and when (coalescing, held commit notices, backpressure drops) and
 * dials the outgoing connections. The rest of the peer side: `peer-handshake.ts` (what a peer must prove),
 * `peer-link.ts` (one link and its bounded queue), `peer-accept.ts` (incoming connections), `peer-inbound.ts`
 * (validating and routing received frames), `frame.ts` and `wire.ts` (the encoding).
 *
 * @packageDocumentation
 */

import { connect, type Socket } from 'node:net';
import type { Message, NodeId } from '@raft/core';
import type { Command, Logger } from '@raft/runtime';
import { splitAddress } from './address.js';
import { encodeFrame, FrameDecoder, PEER_MAGIC, PEER_VERSION } from './frame.js';
import { packEntries } from './packed-entries.js';
import { serveIncomingPeer } from './peer-accept.js';
import { answerChallenge, checkAccepted, type HandshakeIdentity } from './peer-handshake.js';
import { handleFrame } from './peer-inbound.js';
import { isOrdered, itemBytes, type LinkHost, PeerLink, splitAppend } from './peer-link.js';
import type { ServerCounters } from './server-types.js';
import type { ServerTls } from './tls.js';
import type { ForwardReply, ForwardRequest, WireItem } from './wire.js';

export { PeerLink };

/** Counters the transport updates: the peer-traffic part of the server's counters (documented there). */
export type TransportCounters = Pick<
  ServerCounters,
  | 'messagesSent'
  | 'messagesReceived'
  | 'messagesDropped'
  | 'framesSent'
  | 'framesReceived'
  | 'bytesSent'
  | 'bytesReceived'
  | 'peerConnectionsRejected'
>;

/** What the transport needs from the server. */
export interface TransportOptions extends HandshakeIdentity {
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
  /**
   * The server's TLS, if any: peers are then dialed with mutual TLS (their certificate must prove the id dialed),
   * and an incoming peer's certificate must prove the id its hello claims.
   */
  readonly tls?: ServerTls | null;
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

/** The peer side of a server. See the module comment. */
export class PeerTransport {
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly incoming = new Set<PeerLink>();
  private readonly dirty: PeerLink[] = [];
  private flushScheduled = false;
  private closed = false;
  /** What links need from this transport (see {@link LinkHost}). */
  private readonly host: LinkHost;

  constructor(private readonly o: TransportOptions) {
    this.host = {
      lowWaterBytes: o.lowWaterBytes,
      softFrameBytes: o.softFrameBytes,
      counters: o.counters,
      markDirty: (link) => this.markDirty(link),
      encode: (items) => this.encode(items),
    };
  }

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
      link = new PeerLink(to, true, this.host);
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
        link.write(items);
        continue;
      }
      if (urgent !== null) link.write(urgent);
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
          for (const part of splitAppend(it[1], this.o.softFrameBytes)) link.pending.push([0, part]);
        } else link.pending.push(it);
      }
      link.pendingBytes += bulkBytes;
      link.pump();
    }
  }

  /** Items queued but never written (the connection closed): returned so forwarded requests count as unsent. */
  private takePending(link: PeerLink): WireItem[] {
    return link.takePending();
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
    const f = encodeFrame(packed(items), this.o.maxFrameBytes);
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
    const tls = this.o.tls ?? null;
    const socket =
      tls === null ? connect({ host: addr.host, port: addr.port }) : tls.connectPeer(addr.host, addr.port, peer);
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
    socket.on(tls === null ? 'connect' : 'secureConnect', () => {
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
            const { hello, nonce } = answerChallenge(v, this.o);
            clientNonce = nonce;
            const f = encodeFrame(hello, this.o.maxFrameBytes) as Buffer;
            socket.write(f);
            this.o.counters.bytesSent += f.length;
            continue;
          }
          if (!handshaken) {
            // Step 2: the server proves the secret too, so nobody can pose as a member we dial.
            const refused = checkAccepted(v, clientNonce as Buffer, peer, this.o);
            if (refused !== null) {
              if (refused.badProof) this.o.counters.peerConnectionsRejected++;
              throw new Error(refused.reason);
            }
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
          const bad = handleFrame(link, v, this.o, true);
          if (bad !== null) throw new Error(bad);
        }
      } catch (e) {
        this.o.logger.warn('closing peer connection', { peer, reason: (e as Error).message });
        socket.destroy();
      }
    });
    socket.on('error', (e) => {
      // A certificate problem is a configuration error an operator must see; a refused or reset connection is not.
      const code = String((e as { code?: unknown }).code ?? '');
      if (tls !== null && /CERT|SELF_SIGNED|ISSUER|SIGNATURE|TLS|SSL/.test(code)) {
        this.o.logger.warn('TLS connection to a peer failed', { peer, error: e.message, code });
      } else this.o.logger.debug?.('peer connection error', { peer, error: e.message });
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
    const link = new PeerLink(null, false, this.host);
    this.incoming.add(link);
    serveIncomingPeer(socket, head, link, this.o, () => this.incoming.delete(link));
  }
}

/**
 * `items` as they are encoded: every AppendEntries' entries packed (encoded once for all followers; see
 * `PackedEntries`). Measured and dropped: sending forwarded commands' JSON texts as native UTF-8 extensions cost
 * more (a Buffer per text) than MessagePack's own string code saved.
 */
export function packed(items: WireItem[]): unknown[] {
  let out: unknown[] | null = null;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it[0] === 0 && it[1].type === 'AppendEntries' && it[1].entries.length > 0) {
      out ??= items.slice();
      out[i] = [0, { ...it[1], entries: packEntries(it[1].entries) }];
    }
  }
  return out ?? items;
}
