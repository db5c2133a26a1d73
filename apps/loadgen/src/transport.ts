/** The seam between the shared load loop and a wire protocol (JSON-RPC lines, or etcd's HTTP/JSON gateway). */
import type { Socket } from 'node:net';
import { splitAddress } from '@raft/node-tcp';
import { LoadgenError } from './errors.js';
import type { Op } from './workload.js';

/**
 * Called once per request: `null` on success, otherwise a short description of the failure. Transports may call it
 * synchronously; the runner copes.
 */
export type Completion = (error: string | null) => void;

/** A wire protocol with its persistent connections. */
export interface Transport {
  /** `jsonrpc` or `etcd`: the report's `target`. */
  readonly name: string;
  /** Opens every connection up front, so connection set-up is not part of the measured time. */
  open(): Promise<void>;
  /**
   * Sends request number `id` from virtual client `slot` (0..C-1). A slot has at most one request in flight; the
   * transport maps slots to connections (and so to servers).
   */
  send(slot: number, id: number, op: Op, done: Completion): void;
  /** Closes every connection; pending completions are dropped. */
  close(): void;
}

/** A parsed `host:port` (`:4000` means `127.0.0.1:4000`, like jlot). */
export interface Endpoint {
  /** Host name or IP address (IPv6 without brackets); `127.0.0.1` when the text gave only a port. */
  readonly host: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6), `:port` or a bare port, with or without `http://`. The address part is
 * read by the servers' own parser, `splitAddress` from @raft/node-tcp. Throws {@link LoadgenError} `BAD_OPTION` on
 * anything else.
 */
export function parseEndpoint(text: string): Endpoint {
  const s = text.trim().replace(/^https?:\/\//, '');
  const full = /^\d+$/.test(s) ? `127.0.0.1:${s}` : s.startsWith(':') ? `127.0.0.1${s}` : s;
  const a = splitAddress(full);
  if (a === null || a.port < 1) {
    throw new LoadgenError('BAD_OPTION', `bad server address "${text}": expected host:port or :port`);
  }
  return { host: a.host, port: a.port };
}

/** Normalises an error text into a kind for counting: digits collapse so that ids and indices do not split kinds. */
export function errorKind(message: string): string {
  return message.replace(/\d+/g, 'N').slice(0, 160);
}

/**
 * Resolves once `socket` is connected (for a TLS socket: once its handshake is done, `secureConnect`); rejects with a
 * `CONNECT` {@link LoadgenError} naming `endpoint` if it fails.
 */
export function whenConnected(
  socket: Socket,
  endpoint: Endpoint,
  event: 'connect' | 'secureConnect' = 'connect',
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new LoadgenError('CONNECT', `cannot connect to ${endpoint.host}:${endpoint.port}: ${err.message}`, {
          cause: err,
        }),
      );
    socket.once('error', onError);
    socket.once(event, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}
