/**
 * Inbound peer frames after the handshake: each frame is an array of items (a Raft message, a forwarded request,
 * or an answer to one); every item is validated (`wire.ts`) and routed to the runtime. A frame with one bad item is
 * refused as a whole, and the connection with it. Separate from `transport.ts` (connections and the outgoing side)
 * because this is where untrusted bytes from a peer become Raft messages.
 *
 * @packageDocumentation
 */

import type { Message } from '@raft/core';
import type { Command } from '@raft/runtime';
import type { PeerLink } from './peer-link.js';
import type { TransportOptions } from './transport.js';
import { checkForwardReply, checkForwardRequest, checkMessage, type ForwardReply } from './wire.js';

/** Where a frame's items go: the transport's options (this server's id, the handlers, the counters). */
export type FrameTarget = Pick<TransportOptions, 'id' | 'counters' | 'onMessages' | 'onForward' | 'onReplies'>;

/** Handle one frame's items; returns a reason when the frame is malformed. */
export function handleFrame(link: PeerLink, v: unknown, to: FrameTarget, repliesOnly = false): string | null {
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
        const m = checkMessage(it[1], to.id);
        if (typeof m === 'string') return m;
        // A peer speaks only for itself: the id it proved in the handshake (with the shared secret, its HMAC covers
        // the id). A message claiming another sender (a forged leader, say) is refused with the whole frame.
        if (link.peer !== null && m.from !== link.peer) {
          return `message claims to be from ${m.from} on a connection that identified itself as ${link.peer}`;
        }
        (messages ??= []).push(m);
        break;
      }
      case 1: {
        const r = checkForwardRequest(it[1]);
        if (typeof r === 'string') return r;
        to.onForward(link, r);
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
    to.counters.messagesReceived += messages.length;
    to.onMessages(messages);
  }
  if (replies !== null) to.onReplies(replies);
  return null;
}
