/**
 * What every client connection (JSON-RPC lines, HTTP, WebSocket) shares: the connection limit (over it, an
 * `OVERLOADED` line or an HTTP 503, then close), TCP keepalive and the idle timeout, and closing with a last line
 * within a grace time. Separate so that the limits on client connections are in one place.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { ErrorCode, type Logger } from '@raft/runtime';
import { type ConnState, errorJson } from './jsonrpc.js';

/** TCP keepalive delay of client connections: a half-open one (peer host gone) is then found and closed. */
export const CLIENT_KEEPALIVE_MS = 60_000;
/** How long a closing connection may take to drain its last line before it is destroyed. */
export const CLOSE_GRACE_MS = 5_000;

/** The limits and logger these helpers use (a subset of the frontend's options). */
export interface ConnectionLimits {
  /** Most client connections at once. */
  readonly maxClientConnections: number;
  /** A connection with no request in progress and no traffic for this long is closed (0: never). */
  readonly clientIdleTimeoutMs: number;
  readonly logger: Logger;
}

/** End a connection after `lastLine`, destroying it if the client does not take the line within a grace time. */
export function closeWith(socket: Socket, lastLine: string | null): void {
  if (socket.destroyed) return;
  if (lastLine === null) socket.end();
  else socket.end(`${lastLine}\n`);
  const t = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}

/** Refuse a connection because `maxClientConnections` is reached: an `OVERLOADED` line (HTTP: a 503), then close. */
export function refuseConnection(socket: Socket, http: boolean, o: ConnectionLimits): void {
  const line = errorJson(
    'null',
    ErrorCode.OVERLOADED,
    `too many client connections: this server accepts at most ${o.maxClientConnections} (maxClientConnections); retry later or use another server`,
    { notApplied: true, maxClientConnections: o.maxClientConnections },
  );
  o.logger.warn('client connection refused: maxClientConnections reached', {
    max: o.maxClientConnections,
  });
  socket.on('error', () => undefined);
  if (http) {
    const body = `${line}\n`;
    closeWith(
      socket,
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${line}`,
    );
  } else closeWith(socket, line);
}

/** Keepalive finds half-open connections; the idle timer closes those that send nothing and wait for nothing. */
export function watchIdle(socket: Socket, conn: ConnState, busy: () => boolean, o: ConnectionLimits): void {
  socket.setKeepAlive(true, CLIENT_KEEPALIVE_MS);
  const idle = o.clientIdleTimeoutMs;
  if (idle <= 0) return;
  socket.setTimeout(idle);
  socket.on('timeout', () => {
    // Node's socket timeout is re-armed by any read or write, so this fired after `idle` ms without traffic.
    // A connection waiting for its requests' answers is not idle; one whose unsent answers made no progress is.
    if (conn.inflight > 0 || busy()) return;
    o.logger.debug?.('closing an idle client connection', { idleMs: idle });
    if (socket.writableLength > 0) socket.destroy();
    else closeWith(socket, null);
  });
}
