/**
 * The peer handshake, after the 4-byte magic and the version byte: the acceptor sends a challenge (a nonce); the
 * dialer answers with a hello (protocol version, cluster name, its id, a nonce of its own and, with a shared secret,
 * an HMAC of the acceptor's nonce); the acceptor checks it and answers `ok` (with a secret: its own HMAC of the
 * dialer's nonce, so a dialer cannot be fooled into talking to an impostor either). Separate from `transport.ts` so
 * that what a peer must prove to join, and how, can be read in one place.
 *
 * @packageDocumentation
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NodeId } from '@raft/core';
import { PEER_VERSION } from './frame.js';

/** Who this server is in a handshake. */
export interface HandshakeIdentity {
  /** This server's id (its address). */
  readonly id: NodeId;
  /** The cluster name peers must present. */
  readonly clusterName: string;
  /** The shared secret peers must prove, if any. */
  readonly secret: string | undefined;
}

/** HMAC-SHA256 of a nonce, bound to the cluster name and the prover's id. */
export function mac(secret: string, nonce: Uint8Array, cluster: string, id: string): Buffer {
  return createHmac('sha256', secret).update(nonce).update(`\0${cluster}\0${id}`).digest();
}

/** A fresh nonce (challenge) of 16 random bytes. */
export function newNonce(): Buffer {
  return randomBytes(16);
}

/**
 * Dialer, step 1: answer the acceptor's challenge `v` with a hello carrying a challenge of our own (`nonce`).
 *
 * @throws Error when the acceptor refused the connection or sent no challenge.
 */
export function answerChallenge(v: unknown, me: HandshakeIdentity): { hello: Record<string, unknown>; nonce: Buffer } {
  const o = v as { n?: unknown; e?: unknown };
  if (typeof o?.e === 'string') throw new Error(`peer refused the handshake: ${o.e}`);
  if (!(o?.n instanceof Uint8Array)) throw new Error('peer sent no handshake challenge');
  const nonce = newNonce();
  const hello: Record<string, unknown> = { h: PEER_VERSION, c: me.clusterName, i: me.id, n: nonce };
  if (me.secret !== undefined) hello.m = mac(me.secret, o.n, me.clusterName, me.id);
  return { hello, nonce };
}

/**
 * Dialer, step 2: check the acceptor's answer `v` to our hello (`nonce` is the challenge we sent, `peer` the id we
 * dialed). Null when the connection is accepted; otherwise why not, and whether the acceptor failed to prove the
 * shared secret (the server counts that as a rejected peer connection).
 */
export function checkAccepted(
  v: unknown,
  nonce: Buffer,
  peer: NodeId,
  me: HandshakeIdentity,
): { reason: string; badProof: boolean } | null {
  // The acceptor proves the secret too, so nobody can pose as a member we dial.
  const o = v as { ok?: unknown; e?: unknown };
  if (typeof o?.e === 'string') return { reason: `peer refused the handshake: ${o.e}`, badProof: false };
  if (me.secret !== undefined) {
    const want = mac(me.secret, nonce, `${me.clusterName}\0ack`, peer);
    if (!(o?.ok instanceof Uint8Array) || o.ok.length !== want.length || !timingSafeEqual(o.ok, want)) {
      return { reason: 'the peer did not prove the shared secret', badProof: true };
    }
  } else if (o?.ok === undefined) return { reason: 'peer did not accept the handshake', badProof: false };
  return null;
}

/**
 * Acceptor: check a dialer's hello against the challenge `nonce` we sent. Returns the dialer's id and its own
 * challenge, or why it is refused.
 */
export function checkHello(
  v: unknown,
  nonce: Buffer,
  me: HandshakeIdentity,
): { id: NodeId; nonce: Uint8Array } | string {
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
  if (h.c !== me.clusterName) {
    return `cluster name mismatch: peer says ${JSON.stringify(String(h.c)).slice(0, 80)}, this server is in ${JSON.stringify(me.clusterName)}`;
  }
  if (me.secret !== undefined) {
    const want = mac(me.secret, nonce, me.clusterName, h.i);
    if (!(h.m instanceof Uint8Array) || h.m.length !== want.length || !timingSafeEqual(h.m, want)) {
      return 'shared secret proof missing or wrong';
    }
  }
  return h.i.length > 0 && h.i.length < 300 ? { id: h.i, nonce: h.n } : 'malformed handshake';
}

/** Acceptor: the `ok` value that accepts a dialer (with a secret: our proof of it over the dialer's challenge). */
export function acceptance(peerNonce: Uint8Array, me: HandshakeIdentity): true | Buffer {
  return me.secret === undefined ? true : mac(me.secret, peerNonce, `${me.clusterName}\0ack`, me.id);
}
