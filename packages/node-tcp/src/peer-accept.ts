/**
 * Incoming peer connections: after the server saw the magic, the acceptor side of the handshake (version byte,
 * challenge, checking the hello and, with TLS, that the peer's certificate proves the id it claims, `ok`), then every frame the peer sends is handed to `peer-inbound.ts`. A peer that
 * fails anything (version, cluster name, secret, time limit, a malformed frame) gets a short reason and is closed.
 * Separate from `transport.ts` because an incoming connection only receives: this server's own messages to that
 * peer travel on the connection this server dials.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { encodeFrame, FrameDecoder, PEER_MAGIC, PEER_VERSION } from './frame.js';
import { acceptance, checkHello, newNonce } from './peer-handshake.js';
import { handleFrame } from './peer-inbound.js';
import type { PeerLink } from './peer-link.js';
import { peerCertificateProblem } from './tls.js';
import type { TransportOptions } from './transport.js';

/**
 * Serve an incoming peer connection on `link` (a new, incoming link). `head` holds the bytes read so far (the magic
 * first); `onClose` is called once the socket closes.
 */
export function serveIncomingPeer(
  socket: Socket,
  head: Buffer,
  link: PeerLink,
  o: TransportOptions,
  onClose: () => void,
): void {
  const remote = `${socket.remoteAddress}:${socket.remotePort}`;
  link.socket = socket;
  link.state = 'connecting';
  socket.setNoDelay(true);
  const decoder = new FrameDecoder(o.maxFrameBytes);
  const nonce = newNonce();
  let prefix = head.subarray(PEER_MAGIC.length);
  let versionOk = false;
  const reject = (reason: string) => {
    if (link.state === 'closed') return;
    o.counters.peerConnectionsRejected++;
    o.logger.warn('rejected a peer connection', { remote, peer: link.peer, reason });
    if (!socket.destroyed && socket.writable) {
      const f = encodeFrame({ e: reason.slice(0, 200) }, o.maxFrameBytes);
      if (f !== null) socket.end(f);
    }
    link.state = 'closed';
    setTimeout(() => socket.destroy(), 100).unref();
  };
  const timer = setTimeout(() => {
    if (link.state === 'connecting') reject('handshake not completed in time');
  }, o.handshakeTimeoutMs);
  const onBytes = (chunk: Buffer) => {
    if (link.state === 'closed') return;
    o.counters.bytesReceived += chunk.length;
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
          const why = checkHello(v, nonce, o);
          if (typeof why === 'string') {
            reject(why);
            return;
          }
          // With TLS, the id the peer claims must be one its certificate proves (mutual TLS): then every message's
          // `from` is checked against it (peer-inbound.ts).
          const notProven = o.tls == null ? null : peerCertificateProblem(socket, why.id);
          if (notProven !== null) {
            reject(notProven);
            return;
          }
          link.peer = why.id;
          link.state = 'ready';
          clearTimeout(timer);
          socket.write(encodeFrame({ ok: acceptance(why.nonce, o) }, o.maxFrameBytes) as Buffer);
          continue;
        }
        o.counters.framesReceived++;
        const bad = handleFrame(link, v, o);
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
  socket.on('error', (e) => o.logger.debug?.('incoming peer connection error', { remote, error: e.message }));
  socket.on('close', () => {
    clearTimeout(timer);
    link.state = 'closed';
    onClose();
  });
  const challenge = encodeFrame({ n: nonce }, o.maxFrameBytes) as Buffer;
  socket.write(challenge);
  if (prefix.length > 0) {
    const p = prefix;
    prefix = Buffer.alloc(0);
    onBytes(p);
  }
}
