/**
 * TLS on the single port and on peer links: the server side terminates TLS on an accepted socket whose first byte
 * is a TLS handshake record (the decrypted stream is then sniffed as usual), peers dial each other with mutual TLS,
 * and a certificate's names decide which server id it proves. Separate from `connections.ts` (which only decides
 * what a socket speaks) and from the transport (which only asks "does this connection prove this id?").
 *
 * Identity rule: a certificate proves the server id `host:port` when its subject CN or one of its subjectAltName
 * entries (DNS, IP Address, URI) equals `host:port`, or equals `host` (any port of that host). Certificates that
 * name the host only are the usual kind (one member per host); several members on one host need certificates that
 * name `host:port`, or each could pose as the others.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import {
  checkServerIdentity,
  createSecureContext,
  createServer as createTlsServer,
  type PeerCertificate,
  type SecureContext,
  TLSSocket,
  type Server as TlsServer,
  connect as tlsConnect,
} from 'node:tls';
import { ErrorCode, type Logger } from '@raft/runtime';
import { splitAddress } from './address.js';
import { CLOSE_GRACE_MS } from './client-connection.js';
import { encodeFrame, PEER_MAGIC } from './frame.js';
import { errorJson } from './jsonrpc.js';

/** A server's TLS material: PEM text (or Buffers) of the CA that signs every member and client, and its own pair. */
export interface TlsOptions {
  /** The CA certificate(s) peers' and clients' certificates must chain to. */
  readonly ca: string | Buffer;
  /** This server's certificate (it must prove the server's id, see the module comment). */
  readonly cert: string | Buffer;
  /** This server's private key. */
  readonly key: string | Buffer;
}

/** A client's TLS material: the CA that signs the servers' certificates, and optionally a client certificate. */
export interface ClientTlsOptions {
  /** The CA certificate(s) the server's certificate must chain to. */
  readonly ca: string | Buffer;
  /** A client certificate (optional: clients authenticate with tokens). */
  readonly cert?: string | Buffer;
  /** The client certificate's key. */
  readonly key?: string | Buffer;
}

/** The first byte of a TLS record carrying a handshake (a ClientHello starts with it). */
export const TLS_HANDSHAKE_BYTE = 0x16;

/** Every name a certificate carries: its subject CN and its subjectAltName entries (without the `DNS:` prefixes). */
export function certificateNames(cert: PeerCertificate | null | undefined): string[] {
  if (cert === null || cert === undefined) return [];
  const names: string[] = [];
  const cn = cert.subject?.CN as string | string[] | undefined;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...cn);
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const i = part.indexOf(':');
    if (i > 0) names.push(part.slice(i + 1).trim());
  }
  return names;
}

/** Whether a certificate proves the server id `id` (`host:port`): see the module comment. */
export function certificateProves(cert: PeerCertificate | null | undefined, id: string): boolean {
  const names = certificateNames(cert).map((n) => n.toLowerCase());
  const want = id.toLowerCase();
  const host = splitAddress(id)?.host.toLowerCase();
  return names.some((n) => n === want || (host !== undefined && n === host));
}

/** Why a peer's (server-side) TLS connection does not prove `id`, or null when it does. */
export function peerCertificateProblem(socket: Socket, id: string): string | null {
  if (!(socket instanceof TLSSocket) || !socket.encrypted) return 'this server requires TLS for peer connections';
  if (!socket.authorized) {
    return `the peer's certificate is missing or not signed by the cluster CA (${String(socket.authorizationError ?? 'no certificate')})`;
  }
  const cert = socket.getPeerCertificate();
  if (certificateProves(cert, id)) return null;
  return `the peer claims to be ${id} but its certificate names ${JSON.stringify(certificateNames(cert)).slice(0, 200)}`;
}

/** The options of `tls.connect` for a client of the server `host:port`: verify its certificate against `tls.ca`. */
export function clientConnectOptions(host: string, port: number, tls: ClientTlsOptions) {
  const id = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return {
    host,
    port,
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    // SNI takes host names only.
    servername: /^[\d.]+$/.test(host) || host.includes(':') ? undefined : host,
    // A server's certificate may name its id (host:port) as well as its host (the usual rule).
    checkServerIdentity: (h: string, cert: PeerCertificate) =>
      certificateProves(cert, id) ? undefined : checkServerIdentity(h, cert),
  };
}

/**
 * A server's TLS: terminates TLS on accepted sockets (server side, asking for a client certificate that peers must
 * have and clients may have) and dials peers with mutual TLS. {@link ServerTls.update} swaps the certificate for
 * new connections (rotation without a restart).
 */
export class ServerTls {
  private readonly server: TlsServer;
  private context: SecureContext;

  /**
   * `onSecure` gets each connection once its handshake is done; `handshakeTimeoutMs` bounds the handshake.
   *
   * @throws Error when the PEM material is invalid.
   */
  constructor(
    options: TlsOptions,
    handshakeTimeoutMs: number,
    onSecure: (socket: TLSSocket) => void,
    private readonly logger: Logger,
  ) {
    this.context = createSecureContext(options);
    this.server = createTlsServer({
      ...options,
      // Peers must present a certificate (checked when they claim an id); clients may (they use tokens).
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: handshakeTimeoutMs,
    });
    this.server.on('secureConnection', onSecure);
    this.server.on('tlsClientError', (e, s) =>
      logger.debug?.('TLS handshake failed', { remote: s.remoteAddress, error: e.message }),
    );
  }

  /** Replace the certificate, key and CA for connections made from now on. */
  update(options: TlsOptions): void {
    const ctx = createSecureContext(options);
    this.server.setSecureContext(options);
    this.context = ctx;
  }

  /** Terminate TLS on an accepted `socket` whose first bytes (`head`, already read) are a ClientHello. */
  wrap(socket: Socket, head: Buffer): void {
    socket.pause();
    // The TLS socket takes over the bytes already read (Node feeds a wrapped socket's buffered data to the engine).
    socket.unshift(head);
    this.server.emit('connection', socket);
  }

  /** Dial the peer `peer` at `host:port` with mutual TLS; its certificate must prove `peer`. */
  connectPeer(host: string, port: number, peer: string): TLSSocket {
    return tlsConnect({
      host,
      port,
      secureContext: this.context,
      servername: /^[\d.]+$/.test(host) || host.includes(':') ? undefined : host,
      checkServerIdentity: (_h, cert) => {
        if (certificateProves(cert, peer)) return undefined;
        const e = new Error(
          `the server at ${peer} presented a certificate for ${JSON.stringify(certificateNames(cert)).slice(0, 200)}`,
        );
        this.logger.warn('a peer certificate does not prove its address', { peer, error: e.message });
        return e;
      },
    });
  }
}

/**
 * Refuse a plain-text connection on a TLS server, in its own protocol so that its client can say why: a peer gets
 * a refusal frame, HTTP a 400, JSON-RPC lines an `UNAUTHENTICATED` error line; then the connection is closed.
 */
export function refusePlainText(socket: Socket, head: Buffer, logger: Logger): void {
  const why = 'this server accepts TLS connections only (configure the cluster CA, and use TLS to connect)';
  logger.warn('refused a plain-text connection on a TLS server', {
    remote: `${socket.remoteAddress}:${socket.remotePort}`,
  });
  socket.on('error', () => undefined);
  let last: string | Buffer;
  if (head.length >= 4 && head.subarray(0, 4).equals(PEER_MAGIC)) last = encodeFrame({ e: why }, 1024) as Buffer;
  else if (/^[A-Z]{3,7} /.test(head.toString('latin1', 0, 8))) {
    const body = `${errorJson('null', ErrorCode.UNAUTHENTICATED, why, { notApplied: true })}\n`;
    last = `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
  } else last = `${errorJson('null', ErrorCode.UNAUTHENTICATED, why, { notApplied: true })}\n`;
  socket.end(last);
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}
