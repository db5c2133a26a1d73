/**
 * `raft-kvs call`: send JSON-RPC 2.0 request lines to a server and print the response lines, in the spirit of
 * jlot's `call`. Lines pass through untouched in both directions, so a file of requests can be piped in and the
 * output compared byte for byte.
 *
 * @packageDocumentation
 */
import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { type ClientTlsOptions, clientConnectOptions, splitAddress } from '@raft/node-tcp';

/** Why a call failed before any response could be printed. */
export class CallError extends Error {
  /**
   * `connect`: the server could not be reached; `closed`: it hung up before answering; `timeout`: no answer in time;
   * `auth`: it refused the token.
   */
  readonly code: 'connect' | 'closed' | 'timeout' | 'auth';
  constructor(code: CallError['code'], message: string) {
    super(message);
    this.name = 'CallError';
    this.code = code;
  }
}

/**
 * Expands raftpico's `:4000` shorthand to `127.0.0.1:4000` and checks the `host:port` form (`[v6]:port` for an IPv6
 * address) with the server's own parser, `splitAddress`, so the CLI accepts exactly the addresses a server does.
 *
 * @throws TypeError when `addr` is not `host:port` with a port in 1..65535.
 */
export function parseAddr(addr: string): { host: string; port: number; addr: string } {
  const full = addr.startsWith(':') ? `127.0.0.1${addr}` : addr;
  const a = splitAddress(full);
  // Port 0 means "any free port" to a server, never an address to call or to name a member by.
  if (a === null || a.port < 1) {
    throw new TypeError(`invalid address ${JSON.stringify(addr)}: expected host:port (or :port for 127.0.0.1)`);
  }
  return { host: a.host, port: a.port, addr: full };
}

/** Builds one request line the way `jlot req` does (id 0 unless given). */
export function requestLine(method: string, params?: unknown, id: number | string = 0): string {
  const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) req.params = params;
  return JSON.stringify(req);
}

/**
 * How many response lines a request line should produce: 0 for a notification (no `id`), 1 for a request or a
 * batch with at least one request, and 1 for a line that is not valid JSON (the server answers it with a parse
 * error).
 */
export function expectedResponses(line: string): number {
  if (line.trim() === '') return 0;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 1;
  }
  const isNotification = (r: unknown) => typeof r === 'object' && r !== null && !Array.isArray(r) && !('id' in r);
  if (Array.isArray(v)) return v.length === 0 || !v.every(isNotification) ? 1 : 0;
  return isNotification(v) ? 0 : 1;
}

/** How {@link callLines} reaches a secured server. */
export interface CallSecurity {
  /** Connect with TLS, verifying the server's certificate against this CA (and present a client certificate). */
  readonly tls?: ClientTlsOptions;
  /** Authenticate with this token first (its answer is not printed; a refusal fails the call). */
  readonly token?: string;
}

/** The id of the `Authenticate` request {@link callLines} sends first when given a token. */
const AUTH_ID = 'raft-kvs-call-authenticate';

/**
 * Sends `lines` over one connection (pipelined) and calls `onResponse` for each response line as it arrives.
 * Resolves once every expected response has arrived.
 *
 * @param timeoutMs how long to wait for the answers after the last request was written.
 * @param security TLS and a token, for servers that require them.
 */
export function callLines(
  addr: string,
  lines: AsyncIterable<string> | Iterable<string>,
  onResponse: (line: string) => void,
  timeoutMs = 30_000,
  security: CallSecurity = {},
): Promise<{ responses: number }> {
  const { host, port } = parseAddr(addr);
  return new Promise((resolve, reject) => {
    const socket: Socket =
      security.tls === undefined
        ? createConnection({ host, port })
        : tlsConnect(clientConnectOptions(host, port, security.tls));
    let authPending = security.token !== undefined;
    socket.setNoDelay(true);
    let expected = 0;
    let received = 0;
    let sentAll = false;
    let buffer = '';
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (error?: CallError) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve({ responses: received });
    };
    const maybeDone = () => {
      if (sentAll && received >= expected) finish();
    };
    socket.on(security.tls === undefined ? 'connect' : 'secureConnect', async () => {
      try {
        if (security.token !== undefined)
          socket.write(`${requestLine('Authenticate', { token: security.token }, AUTH_ID)}\n`);
        for await (const line of lines) {
          const n = expectedResponses(line);
          if (line.trim() === '') continue;
          expected += n;
          if (!socket.write(`${line}\n`)) await new Promise((r) => socket.once('drain', r));
        }
      } catch (e) {
        finish(new CallError('closed', `could not send requests: ${(e as Error).message}`));
        return;
      }
      sentAll = true;
      timer = setTimeout(
        () => finish(new CallError('timeout', `no answer from ${addr} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      maybeDone();
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (authPending && line.includes(AUTH_ID)) {
          // The answer to our Authenticate: not the user's output; a refusal ends the call.
          authPending = false;
          const err = (JSON.parse(line) as { error?: { message?: string } }).error;
          if (err !== undefined) {
            finish(new CallError('auth', `${addr} refused the token: ${err.message ?? 'unauthenticated'}`));
            return;
          }
        } else if (line.trim() !== '') {
          received++;
          onResponse(line);
        }
        nl = buffer.indexOf('\n');
      }
      maybeDone();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      const code = e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' ? 'connect' : 'closed';
      const what = code === 'connect' ? `cannot connect to ${addr}` : `connection to ${addr} failed`;
      finish(new CallError(code, `${what}: ${e.code ?? e.message}`));
    });
    socket.on('close', () => {
      if (!sentAll || received < expected) {
        finish(new CallError('closed', `${addr} closed the connection after ${received} of ${expected} responses`));
      }
    });
  });
}
