/**
 * Incoming connections on the single port, before anyone handles them: connections accepted while the server is
 * still starting are held (not reset) and served once it runs; a connection that has not said what it is yet counts
 * against `maxClientConnections` and must send its first bytes within a time limit; then its first bytes tell a
 * peer (the magic), HTTP / WebSocket (an HTTP method: `GET `, `POST`, ...) and JSON-RPC lines (anything else) apart.
 * With TLS, a connection must start with a TLS handshake (anything else is refused); TLS is terminated first
 * (`tls.ts`) and the decrypted stream is sniffed the same way. Separate from `server.ts`
 * (lifecycle and wiring) and from the handlers (`transport.ts`, `rpc.ts`) because this is the one place that decides
 * which protocol a socket speaks.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { PEER_MAGIC } from './frame.js';
import { isHttpHead } from './http.js';
import { TLS_HANDSHAKE_BYTE } from './tls.js';

/** A connection must send its first bytes (which say whether it is a peer or a client) within this many ms. */
export const SNIFF_TIMEOUT_MS = 30_000;

/** Where {@link IncomingConnections} hands sockets, and the limits it applies. */
export interface ConnectionHandlers {
  /** Whether the server serves connections now (false while it starts and once it stopped). */
  running(): boolean;
  /**
   * The server's client limits: connections not yet identified above `maxClientConnections` are refused like
   * clients; a silent new connection is closed after min(`clientIdleTimeoutMs`, {@link SNIFF_TIMEOUT_MS}).
   */
  limits(): { readonly maxClientConnections: number; readonly clientIdleTimeoutMs: number };
  /** A peer connection (it started with the magic); `head` holds the bytes read so far. */
  peer(socket: Socket, head: Buffer): void;
  /** An HTTP connection (JSON-RPC POSTs, `GET /state`, a WebSocket upgrade). */
  http(socket: Socket, head: Buffer): void;
  /** JSON-RPC lines. */
  lines(socket: Socket, head: Buffer): void;
  /** Refuse a connection over the limit (an `OVERLOADED` line, then close). */
  refuse(socket: Socket): void;
  /**
   * The server's TLS terminator, or null when it speaks plain text. With one, every connection must start with a
   * TLS handshake; the terminator hands the decrypted socket to {@link IncomingConnections.acceptDecrypted}.
   */
  tls?(): { wrap(socket: Socket, head: Buffer): void } | null;
  /** Refuse a plain-text connection on a TLS server (a short reason in its protocol, then close). */
  refusePlain?(socket: Socket, head: Buffer): void;
}

/** The connections the listener accepted and that nobody handles yet. */
export class IncomingConnections {
  /** Connections still being sniffed. */
  private readonly conns = new Set<Socket>();
  /**
   * Connections in their TLS handshake, by remote `address:port` (the TLS socket the terminator hands back has the
   * same): they stay in `conns` (bounded, closed on stop) until the handshake is done.
   */
  private readonly handshaking = new Map<string, Socket>();
  /** Connections accepted while the server starts (null when not starting). */
  private early: Socket[] | null = null;

  constructor(private readonly h: ConnectionHandlers) {}

  /** From now until {@link IncomingConnections.serveHeld} or {@link IncomingConnections.dropHeld}, hold new ones. */
  holdNew(): void {
    this.early = [];
  }

  /** The server runs: serve the connections held while it started. */
  serveHeld(): void {
    const early = this.early ?? [];
    this.early = null;
    for (const sock of early) if (!sock.destroyed) this.accept(sock);
  }

  /** The start failed: close the connections held meanwhile. */
  dropHeld(): void {
    for (const sock of this.early ?? []) sock.destroy();
    this.early = null;
  }

  /** Close every connection still being sniffed. */
  closeAll(): void {
    for (const s of this.conns) s.destroy();
    this.conns.clear();
  }

  /** Take a connection the listener accepted. */
  accept(socket: Socket): void {
    if (!this.h.running()) {
      if (this.early !== null) {
        socket.on('error', () => undefined);
        this.early.push(socket);
      } else socket.destroy();
      return;
    }
    // Connections that have not said what they are yet are bounded in number and time (a peer sends its magic at
    // once, so only a flood of silent connections can make one wait; it is refused like a client would be).
    const limits = this.h.limits();
    if (this.conns.size >= limits.maxClientConnections) {
      this.h.refuse(socket);
      return;
    }
    this.sniff(socket, false);
  }

  /** Take a connection whose TLS handshake is done: sniff what it speaks inside TLS. */
  acceptDecrypted(socket: Socket): void {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const raw = this.handshaking.get(key);
    if (raw !== undefined) {
      this.handshaking.delete(key);
      this.conns.delete(raw);
    }
    if (!this.h.running()) {
      socket.destroy();
      return;
    }
    this.sniff(socket, true);
  }

  private sniff(socket: Socket, decrypted: boolean): void {
    const limits = this.h.limits();
    this.conns.add(socket);
    socket.on('close', () => this.conns.delete(socket));
    socket.on('error', () => undefined);
    const silent = () => socket.destroy();
    const idle = limits.clientIdleTimeoutMs;
    socket.setTimeout(idle > 0 ? Math.min(idle, SNIFF_TIMEOUT_MS) : SNIFF_TIMEOUT_MS, silent);
    let head: Buffer = Buffer.alloc(0);
    // Sniff the protocol from the first bytes: peers start with the magic, HTTP with a method ("GET ", "POST", ...),
    // the rest is JSON-RPC lines (JSON text never starts with an upper-case letter).
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < 4 && !head.includes(0x0a)) return;
      socket.removeListener('data', onData);
      socket.setTimeout(0);
      socket.removeListener('timeout', silent);
      this.conns.delete(socket);
      const tls = decrypted ? null : (this.h.tls?.() ?? null);
      if (tls !== null) {
        // Decrypt first, then sniff the decrypted stream as below (acceptDecrypted).
        if (head[0] === TLS_HANDSHAKE_BYTE) {
          const key = `${socket.remoteAddress}:${socket.remotePort}`;
          this.conns.add(socket);
          this.handshaking.set(key, socket);
          socket.once('close', () => {
            if (this.handshaking.get(key) === socket) this.handshaking.delete(key);
          });
          tls.wrap(socket, head);
        } else this.h.refusePlain?.(socket, head);
        return;
      }
      if (head.length >= 4 && head.subarray(0, 4).equals(PEER_MAGIC)) this.h.peer(socket, head);
      else if (head.length >= 4 && isHttpHead(head.toString('latin1', 0, 4))) this.h.http(socket, head);
      else this.h.lines(socket, head);
    };
    socket.on('data', onData);
  }
}
