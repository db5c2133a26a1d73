/**
 * etcd through its HTTP/JSON gRPC gateway (`POST /v3/kv/put`, `POST /v3/kv/range`, base64 keys and values) over
 * keep-alive HTTP/1.1 connections: one connection per slot and one request in flight per connection, which is how an
 * HTTP/1.1 client without pipelining reaches concurrency C. Raw sockets rather than node:http because node:http costs
 * several times more client CPU per request, and on a shared 2-core machine the client's CPU is taken from the servers.
 */
import { connect, type Socket } from 'node:net';
import { LoadgenError } from './errors.js';
import { type Completion, type Endpoint, type Transport, whenConnected } from './transport.js';
import type { Op } from './workload.js';

/** Options of {@link EtcdTransport}. */
export interface EtcdOptions {
  /** etcd client endpoints (where the gRPC gateway answers, e.g. `:2379`); at least one. */
  readonly servers: readonly Endpoint[];
  /** Number of slots (= concurrency): one connection each, slot k on server k % S. */
  readonly connections: number;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** The path and JSON body of an operation on etcd's v3 gateway. Local reads are `serializable` ranges. */
export function encodeEtcd(op: Op): { path: string; body: string } {
  if (op.type === 'put') {
    return { path: '/v3/kv/put', body: `{"key":"${b64(op.key)}","value":"${b64(String(op.value))}"}` };
  }
  const serializable = op.consistency === 'local' ? ',"serializable":true' : '';
  return { path: '/v3/kv/range', body: `{"key":"${b64(op.key)}"${serializable}}` };
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** One keep-alive HTTP/1.1 connection with at most one request outstanding. */
class HttpConnection {
  private socket: Socket | null = null;
  private done: Completion | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private readonly hostHeader: string;

  constructor(private readonly endpoint: Endpoint) {
    this.hostHeader = `${endpoint.host}:${endpoint.port}`;
  }

  open(): Promise<void> {
    return whenConnected(this.attach(), this.endpoint);
  }

  private attach(): Socket {
    const s = connect(this.endpoint.port, this.endpoint.host);
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('error', () => {});
    s.on('close', () => {
      if (this.socket === s) {
        this.socket = null;
        this.finish('connection closed');
      }
    });
    this.socket = s;
    return s;
  }

  send(path: string, body: string, done: Completion): void {
    if (this.socket === null || this.socket.destroyed) this.attach();
    this.done = done;
    this.buf = Buffer.alloc(0);
    this.socket!.write(
      `POST ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  private finish(error: string | null): void {
    const done = this.done;
    this.done = null;
    this.buf = Buffer.alloc(0);
    done?.(error);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const res = parseResponse(this.buf);
    if (res === null) return;
    if (res === 'bad') {
      this.socket?.destroy();
      this.socket = null;
      this.finish('malformed HTTP response');
      return;
    }
    if (res.close) {
      this.socket?.destroy();
      this.socket = null;
    }
    if (res.status === 200) this.finish(null);
    else this.finish(`http ${res.status}: ${errorText(res.body)}`);
  }

  close(): void {
    this.done = null;
    this.socket?.destroy();
    this.socket = null;
  }
}

function errorText(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const j = JSON.parse(text) as { message?: unknown; error?: unknown };
    return String(j.message ?? j.error ?? text);
  } catch {
    return text.slice(0, 120);
  }
}

/** A complete HTTP response found at the start of a buffer. */
export interface ParsedResponse {
  /** The HTTP status code; the transport counts only 200 as success. */
  readonly status: number;
  /** The body, de-chunked; for a Content-Length body a view into `buf`, not a copy. */
  readonly body: Buffer;
  /** The server said `Connection: close`. */
  readonly close: boolean;
  /** Bytes of `buf` the response used. */
  readonly length: number;
}

/**
 * Parses one HTTP/1.1 response (Content-Length or chunked body) from the start of `buf`: `null` while incomplete,
 * `'bad'` when it cannot be a valid response.
 */
export function parseResponse(buf: Buffer): ParsedResponse | null | 'bad' {
  const headEnd = buf.indexOf(CRLF2);
  if (headEnd < 0) return buf.length > 64 * 1024 ? 'bad' : null;
  const head = buf.toString('latin1', 0, headEnd);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!m) return 'bad';
  const status = Number(m[1]);
  const lower = head.toLowerCase();
  const close = /\r\nconnection:\s*close/.test(lower);
  const bodyStart = headEnd + 4;
  if (/\r\ntransfer-encoding:\s*chunked/.test(lower)) {
    const parts: Buffer[] = [];
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos, 'latin1');
      if (lineEnd < 0) return null;
      const size = Number.parseInt(buf.toString('latin1', pos, lineEnd), 16);
      if (!Number.isFinite(size) || size < 0) return 'bad';
      if (size === 0) {
        // Trailers are not used by etcd; expect the final empty line.
        if (buf.length < lineEnd + 4) return null;
        return { status, body: Buffer.concat(parts), close, length: lineEnd + 4 };
      }
      const dataStart = lineEnd + 2;
      if (buf.length < dataStart + size + 2) return null;
      parts.push(buf.subarray(dataStart, dataStart + size));
      pos = dataStart + size + 2;
    }
  }
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
  const len = cl ? Number(cl[1]) : 0;
  if (buf.length < bodyStart + len) return null;
  return { status, body: buf.subarray(bodyStart, bodyStart + len), close, length: bodyStart + len };
}

/** etcd v3 over its HTTP/JSON gateway, one keep-alive connection per slot. */
export class EtcdTransport implements Transport {
  /** `etcd-gateway`: the report's `target`. */
  readonly name = 'etcd-gateway';
  private readonly conns: HttpConnection[] = [];

  constructor(options: EtcdOptions) {
    if (options.servers.length === 0) throw new LoadgenError('BAD_OPTION', 'at least one server is needed');
    for (let i = 0; i < options.connections; i++) {
      this.conns.push(new HttpConnection(options.servers[i % options.servers.length]));
    }
  }

  /**
   * Connects every slot's connection, 128 at a time. Rejects with {@link LoadgenError} `CONNECT` if a server cannot
   * be reached.
   */
  async open(): Promise<void> {
    // Open in batches: a thousand simultaneous connects can overflow a listen backlog and stall on SYN retries.
    for (let i = 0; i < this.conns.length; i += 128) {
      await Promise.all(this.conns.slice(i, i + 128).map((c) => c.open()));
    }
  }

  /**
   * POSTs `op` on slot `slot`'s connection (`id` is not used: one request in flight per connection needs no
   * matching), reconnecting first if the server closed it. `done` gets `null` on HTTP 200, otherwise the status and
   * etcd's message, `connection closed` or `malformed HTTP response`.
   */
  send(slot: number, _id: number, op: Op, done: Completion): void {
    const { path, body } = encodeEtcd(op);
    this.conns[slot].send(path, body, done);
  }

  /** Destroys every connection; requests still waiting never complete. */
  close(): void {
    for (const c of this.conns) c.close();
  }
}
