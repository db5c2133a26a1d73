/**
 * JSON-RPC 2.0 over TCP, one request per line (raftpico's wire format): requests are pipelined on persistent
 * connections and responses are matched by `id`, so a connection carries many requests at once.
 */
import { connect, type Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate, connect as tlsConnect } from 'node:tls';
import { LoadgenError } from './errors.js';
import { type Completion, type Endpoint, type Transport, whenConnected } from './transport.js';
import type { Op } from './workload.js';

/** Options of {@link JsonRpcTransport}. */
export interface JsonRpcOptions {
  /** The servers' JSON-RPC listen addresses; at least one. Connections interleave them, so slot k uses server k % S. */
  readonly servers: readonly Endpoint[];
  /** Persistent connections per server (default 1); slots are spread round-robin over all connections. */
  readonly connectionsPerServer?: number;
  /** Connect with TLS, verifying each server's certificate against this CA (PEM). Default: plain text. */
  readonly tlsCa?: string | Buffer;
  /** Authenticate every connection with this client token first (servers with a credentials file need one). */
  readonly token?: string;
}

/**
 * Whether a server certificate names `host:port` or `host` in its CN or subjectAltName (the rule raft servers use,
 * docs/security.md); otherwise Node's usual host name check decides.
 */
function checkServer(host: string, port: number, cert: PeerCertificate): Error | undefined {
  const names = [String(cert.subject?.CN ?? '')];
  for (const part of (cert.subjectaltname ?? '').split(',')) names.push(part.slice(part.indexOf(':') + 1).trim());
  const want = [`${host}:${port}`.toLowerCase(), host.toLowerCase()];
  return names.some((n) => want.includes(n.toLowerCase())) ? undefined : checkServerIdentity(host, cert);
}

/** The id of the `Authenticate` request each connection sends first when given a token. */
const AUTH_ID = 'loadgen-authenticate';

/** Encodes an operation as raftpico's `Apply` request line (tuple-form input). */
export function encodeApply(id: number, op: Op): string {
  if (op.type === 'put') {
    return `{"jsonrpc":"2.0","id":${id},"method":"Apply","params":{"kind":"Command","input":{"Put":[${JSON.stringify(op.key)},${JSON.stringify(op.value)}]}}}\n`;
  }
  const kind = op.consistency === 'linearizable' ? 'Query' : 'LocalQuery';
  return `{"jsonrpc":"2.0","id":${id},"method":"Apply","params":{"kind":"${kind}","input":{"Get":${JSON.stringify(op.key)}}}}\n`;
}

class Connection {
  private socket: Socket | null = null;
  private readonly pending = new Map<number, Completion>();
  private inbox = '';
  private outbox = '';
  private flushQueued = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly tlsCa: string | Buffer | undefined,
    private readonly token: string | undefined,
  ) {}

  open(): Promise<void> {
    return whenConnected(this.attach(), this.endpoint, this.tlsCa === undefined ? 'connect' : 'secureConnect');
  }

  /** Creates the socket; also used to reconnect lazily after the server closed a connection. */
  private attach(): Socket {
    const { host, port } = this.endpoint;
    const s =
      this.tlsCa === undefined
        ? connect(port, host)
        : tlsConnect({ host, port, ca: this.tlsCa, checkServerIdentity: (h, cert) => checkServer(h, port, cert) });
    // Written first, so the server authenticates the connection before any request on it.
    if (this.token !== undefined) {
      this.outbox = `{"jsonrpc":"2.0","id":"${AUTH_ID}","method":"Authenticate","params":{"token":${JSON.stringify(this.token)}}}\n${this.outbox}`;
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    }
    s.setNoDelay(true);
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => this.onData(chunk));
    s.on('error', () => {}); // 'close' follows and fails the pending requests
    s.on('close', () => {
      if (this.socket === s) this.fail('connection closed');
    });
    this.socket = s;
    return s;
  }

  send(id: number, line: string, done: Completion): void {
    if (this.socket === null || this.socket.destroyed) this.attach();
    this.pending.set(id, done);
    this.outbox += line;
    // Many completions arrive in one 'data' event and each sends its successor: one write per batch, not per
    // request, saves a syscall each (the same reason servers group-commit).
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    const out = this.outbox;
    this.outbox = '';
    if (out && this.socket && !this.socket.destroyed) this.socket.write(out);
  }

  private onData(chunk: string): void {
    let data = this.inbox + chunk;
    let start = 0;
    for (let nl = data.indexOf('\n', start); nl !== -1; nl = data.indexOf('\n', start)) {
      const line = data.slice(start, nl);
      start = nl + 1;
      if (line.trim() !== '') this.onLine(line);
    }
    data = data.slice(start);
    this.inbox = data;
  }

  private onLine(line: string): void {
    let msg: { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // not a response we can match; the request it answered will time out and be counted
    }
    // A refused token needs no handling here: every request on the connection then fails with UNAUTHENTICATED.
    if (msg.id === AUTH_ID) return;
    if (typeof msg.id !== 'number') return;
    const done = this.pending.get(msg.id);
    if (!done) return;
    this.pending.delete(msg.id);
    if (msg.error !== undefined && msg.error !== null) {
      done(`rpc error ${String(msg.error.code)}: ${String(msg.error.message)}`);
    } else if (!('result' in msg)) {
      done('response has neither result nor error');
    } else {
      done(null);
    }
  }

  private fail(reason: string): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    this.inbox = '';
    this.outbox = '';
    for (const done of waiting) done(reason);
  }

  close(): void {
    this.pending.clear();
    this.socket?.destroy();
    this.socket = null;
  }
}

/** raftpico-style JSON-RPC over persistent, pipelined TCP connections. */
export class JsonRpcTransport implements Transport {
  readonly name = 'jsonrpc';
  private readonly conns: Connection[] = [];

  constructor(options: JsonRpcOptions) {
    const per = options.connectionsPerServer ?? 1;
    if (options.servers.length === 0) throw new LoadgenError('BAD_OPTION', 'at least one server is needed');
    if (!Number.isInteger(per) || per < 1) throw new LoadgenError('BAD_OPTION', 'connectionsPerServer must be >= 1');
    // Interleave servers so that slot k goes to server k % S whatever the number of connections per server.
    for (let i = 0; i < per; i++) {
      for (const ep of options.servers) this.conns.push(new Connection(ep, options.tlsCa, options.token));
    }
  }

  /** Connects every connection at once. Rejects with {@link LoadgenError} `CONNECT` if a server cannot be reached. */
  async open(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.open()));
  }

  /**
   * Queues `op` as an `Apply` request with JSON-RPC id `id` (responses are matched by it, so it must be unique among
   * pending requests) on connection `slot % N`; requests queued before the next microtask go out in one write.
   * `done` gets `null` for a `result`, otherwise `rpc error <code>: <message>` or `connection closed` (which fails
   * every request pending on that connection).
   */
  send(slot: number, id: number, op: Op, done: Completion): void {
    this.conns[slot % this.conns.length].send(id, encodeApply(id, op), done);
  }

  /** Destroys every connection; requests still pending never complete. */
  close(): void {
    for (const c of this.conns) c.close();
  }
}
