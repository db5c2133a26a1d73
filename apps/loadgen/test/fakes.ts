// In-test fake servers: a JSON-RPC line server, an etcd-gateway-like HTTP server and an etcd-like gRPC (h2c)
// server, all on 127.0.0.1 with an ephemeral port, recording what they saw so tests can check counts and the
// concurrency cap.
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import { connect as connectNet, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { encodeRangeResponseFrame } from '../src/index.js';

export interface FakeStats {
  received: number;
  outstanding: number;
  maxOutstanding: number;
  requests: unknown[];
}

export interface FakeJsonRpc {
  readonly port: number;
  readonly stats: FakeStats;
  /** Closes every client connection (to test error accounting). */
  dropConnections(): void;
  close(): Promise<void>;
}

/**
 * A JSON-RPC server that holds answers until `batch` requests are outstanding on it (or `holdMs` passed), so a client
 * that respects its concurrency cap makes `maxOutstanding` hit the cap exactly. `answer` decides each response.
 */
export async function fakeJsonRpc(options: {
  batch: number;
  holdMs?: number;
  answer?: (req: { id: number; params: unknown }) => 'ok' | 'error' | 'drop';
}): Promise<FakeJsonRpc> {
  const stats: FakeStats = { received: 0, outstanding: 0, maxOutstanding: 0, requests: [] };
  const sockets = new Set<Socket>();
  const held: { socket: Socket; line: string }[] = [];
  let timer: NodeJS.Timeout | null = null;
  const release = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    const out = held.splice(0);
    stats.outstanding -= out.length;
    for (const { socket, line } of out) if (!socket.destroyed) socket.write(line);
  };
  const server: Server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    let buf = '';
    socket.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        const req = JSON.parse(line) as { id: number; params: unknown };
        stats.received++;
        stats.requests.push(req);
        const verdict = options.answer?.(req) ?? 'ok';
        if (verdict === 'drop') continue;
        stats.outstanding++;
        stats.maxOutstanding = Math.max(stats.maxOutstanding, stats.outstanding);
        const body =
          verdict === 'ok'
            ? { jsonrpc: '2.0', id: req.id, result: null }
            : { jsonrpc: '2.0', id: req.id, error: { code: -32000, message: `NotLeader (request ${req.id})` } };
        held.push({ socket, line: `${JSON.stringify(body)}\n` });
      }
      if (held.length >= options.batch) release();
      else if (!timer && held.length > 0) timer = setTimeout(release, options.holdMs ?? 5);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    stats,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      if (timer) clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface FakeEtcd {
  readonly port: number;
  readonly stats: FakeStats;
  close(): Promise<void>;
}

/** An HTTP server shaped like etcd's v3 gateway; answers each request after `delayMs`. */
export async function fakeEtcd(options: {
  delayMs?: number;
  status?: (path: string, body: Record<string, unknown>) => number;
  chunked?: boolean;
}): Promise<FakeEtcd> {
  const stats: FakeStats = { received: 0, outstanding: 0, maxOutstanding: 0, requests: [] };
  const server: HttpServer = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      stats.received++;
      stats.outstanding++;
      stats.maxOutstanding = Math.max(stats.maxOutstanding, stats.outstanding);
      stats.requests.push({ path: req.url, body: parsed });
      setTimeout(() => {
        stats.outstanding--;
        const status = options.status?.(req.url ?? '', parsed) ?? 200;
        const out =
          status === 200
            ? JSON.stringify({ header: { revision: '2' }, padding: 'x'.repeat(options.chunked ? 10_000 : 0) })
            : JSON.stringify({
                error: 'etcdserver: too many requests',
                message: 'etcdserver: too many requests',
                code: 8,
              });
        if (options.chunked) {
          // No Content-Length: node sends Transfer-Encoding: chunked, as Go does for large gateway answers.
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.write(out.slice(0, 5000));
          res.end(out.slice(5000));
        } else {
          res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(out) });
          res.end(out);
        }
      }, options.delayMs ?? 1);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    stats,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What {@link fakeEtcdGrpc} does with one call: answer (grpc-status 0), fail it, or hold it (no answer). */
export type GrpcVerdict =
  | { readonly kind: 'ok'; readonly headers?: Record<string, string> }
  | { readonly kind: 'status'; readonly code: number; readonly message: string; readonly trailersOnly: boolean }
  | { readonly kind: 'http'; readonly status: number }
  | { readonly kind: 'body'; readonly body: Buffer }
  | { readonly kind: 'hold' }
  | { readonly kind: 'reset'; readonly code: number };

/** One call as the fake gRPC server saw it. */
export interface GrpcCall {
  readonly path: string;
  readonly headers: Record<string, unknown>;
  /** The raw request body (gRPC prefix + protobuf). */
  readonly body: Buffer;
  /** Which HTTP/2 session (connection) carried it: 0, 1, ... in order of connection. */
  readonly session: number;
  /** The HTTP/2 stream id the client gave it. */
  readonly streamId: number;
}

export interface FakeEtcdGrpc {
  readonly port: number;
  readonly calls: GrpcCall[];
  /** Number of HTTP/2 sessions (client connections) accepted so far. */
  sessions(): number;
  /** Calls received and not answered yet (held). */
  held(): number;
  /** Answers the held calls `which` accepts (default all) with grpc-status 0. */
  release(which?: (call: GrpcCall) => boolean): void;
  /** Sends GOAWAY with `code` and `lastStreamId` (default: the highest stream id seen) on every session. */
  goaway(code: number, lastStreamId?: number): void;
  /** PINGs every session; resolves with the round-trip times once each client answered. */
  ping(): Promise<number[]>;

  /**
   * Cuts every client connection at the TCP level, as a crashed server or a broken network would (no GOAWAY, no
   * RST_STREAM): the streams in flight die with it.
   */
  dropConnections(): void;
  close(): Promise<void>;
}

/**
 * An h2c server speaking enough gRPC to stand in for etcd's KV service: records every call, then answers as
 * `verdict` says (default: grpc-status 0 with an empty PutResponse / a RangeResponse holding one key-value).
 */
export async function fakeEtcdGrpc(
  options: {
    verdict?: (call: GrpcCall, index: number) => GrpcVerdict;
    /** The server's HTTP/2 settings (e.g. a small initialWindowSize to exercise the client's flow control). */
    settings?: Settings;
  } = {},
): Promise<FakeEtcdGrpc> {
  const calls: GrpcCall[] = [];
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  let sessionCount = 0;
  const held: { call: GrpcCall; answer: () => void }[] = [];
  const server: Http2Server = createHttp2Server({ peerMaxConcurrentStreams: 100_000, settings: options.settings });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    (session as Http2Session & { index: number }).index = sessionCount++;
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  const answer = (stream: ServerHttp2Stream, call: GrpcCall, v: Exclude<GrpcVerdict, { kind: 'hold' }>) => {
    if (stream.destroyed) return;
    if (v.kind === 'reset') {
      stream.close(v.code);
      return;
    }
    if (v.kind === 'http') {
      stream.respond({ ':status': v.status }, { endStream: true });
      return;
    }
    if (v.kind === 'status' && v.trailersOnly) {
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': String(v.code),
          'grpc-message': encodeURIComponent(v.message),
        },
        { endStream: true },
      );
      return;
    }
    const extra = v.kind === 'ok' ? v.headers : undefined;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...extra }, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      if (v.kind === 'status') {
        stream.sendTrailers({ 'grpc-status': String(v.code), 'grpc-message': encodeURIComponent(v.message) });
      } else stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' });
    });
    if (v.kind === 'status') stream.end();
    else if (v.kind === 'body') stream.end(v.body);
    else if (call.path.endsWith('/Range')) {
      stream.end(encodeRangeResponseFrame({ kvs: [{ key: 'abc', value: '42' }], count: 1 }));
    } else stream.end(Buffer.from([0, 0, 0, 0, 0])); // an empty PutResponse
  };
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    stream.on('error', () => {});
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const call: GrpcCall = {
        path: String(headers[':path']),
        headers: { ...headers },
        body: Buffer.concat(chunks),
        session: (stream.session as Http2Session & { index: number }).index,
        streamId: stream.id ?? 0,
      };
      const index = calls.push(call) - 1;
      const v = options.verdict?.(call, index) ?? { kind: 'ok' };
      if (v.kind === 'hold') held.push({ call, answer: () => answer(stream, call, { kind: 'ok' }) });
      else answer(stream, call, v);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    calls,
    sessions: () => sessionCount,
    held: () => held.length,
    release: (which = () => true) => {
      for (let i = held.length - 1; i >= 0; i--) {
        if (which(held[i].call)) held.splice(i, 1)[0].answer();
      }
    },
    goaway: (code, lastStreamId) => {
      const last = lastStreamId ?? Math.max(0, ...calls.map((c) => c.streamId));
      for (const s of sessions) s.goaway(code, last);
    },
    ping: () =>
      Promise.all(
        [...sessions].map(
          (s) =>
            new Promise<number>((resolve, reject) => {
              s.ping((err, ms) => (err ? reject(err) : resolve(ms ?? 0)));
            }),
        ),
      ),
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RecordingProxy {
  readonly port: number;
  /** What the server sent on each proxied connection, in order of connection. */
  fromServer(): Buffer[];
  /** Client connections open right now (the proxy sees the client close its socket, whatever the server does). */
  liveClients(): number;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to `targetPort` that records the bytes the server sends, to inspect raw frames. */
export async function recordingProxy(targetPort: number): Promise<RecordingProxy> {
  const recorded: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  const server = createNetServer((client) => {
    const chunks: Buffer[] = [];
    recorded.push(chunks);
    clients.add(client);
    client.on('close', () => clients.delete(client));
    const upstream = connectNet({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    upstream.on('data', (c: Buffer) => chunks.push(c));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    fromServer: () => recorded.map((chunks) => Buffer.concat(chunks)),
    liveClients: () => clients.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The HPACK header blocks (HEADERS + CONTINUATION payloads, padding and priority removed) in raw HTTP/2 bytes. */
export function headerBlocks(connections: Buffer[]): Buffer[] {
  const blocks: Buffer[] = [];
  for (const bytes of connections) {
    let parts: Buffer[] = [];
    for (let p = 0; p + 9 <= bytes.length; ) {
      const length = bytes.readUIntBE(p, 3);
      const type = bytes[p + 3];
      const flags = bytes[p + 4];
      let start = p + 9;
      let end = start + length;
      if (type === 1) {
        if (flags & 0x8) end -= bytes[start++];
        if (flags & 0x20) start += 5;
      }
      if (type === 1 || type === 9) {
        parts.push(bytes.subarray(start, end));
        if (flags & 0x4) {
          blocks.push(Buffer.concat(parts));
          parts = [];
        }
      }
      p += 9 + length;
    }
  }
  return blocks;
}
