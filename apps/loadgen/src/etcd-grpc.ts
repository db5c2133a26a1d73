/**
 * etcd through its native gRPC API (`/etcdserverpb.KV/Put`, `/etcdserverpb.KV/Range`) with no gRPC or HTTP/2
 * library: HTTP/2 (RFC 9113) written by hand on `node:net` sockets, plain text with prior knowledge (h2c; etcd 3.4
 * serves gRPC and its HTTP/JSON gateway on the same client port), HPACK from ./hpack.ts, and the gRPC
 * length-prefixed framing and the few protobuf messages needed. Streams are multiplexed over a bounded number of
 * connections, as etcd's own benchmark tool does, rather than one connection per slot.
 *
 * Why by hand: the load client shares the machine's 2 cores with the servers it measures, so every microsecond of
 * client CPU per request is taken from them and makes them look slower. Node's `node:http2` client (which this
 * transport used first) cost 90-150 µs of CPU per request against one etcd 3.4.23 member on this machine (a stream
 * object, listeners and header objects per request, nghttp2 behind a C++ boundary); this one costs 21-24 µs at
 * C=1000 and 42-52 µs at C=64, where each connection carries one stream and so each request pays a socket write and
 * read of its own. Per request it copies one precomputed header block and the body into one buffer, writes once per
 * connection per turn of the event loop, and parses frames in place (docs/benchmarks.md). The protobuf messages and
 * gRPC's message framing are in etcd-protobuf.ts.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { LoadgenError } from './errors.js';
import { putBodyLength, rangeBodyLength, unframe, writePutBody, writeRangeBody } from './etcd-protobuf.js';
import { encodeHeaderBlock, HpackDecoder } from './hpack.js';
import { type Completion, type Endpoint, type Transport, whenConnected } from './transport.js';
import type { Op } from './workload.js';

// ---------------------------------------------------------------------------------------------------------------
// HTTP/2 (RFC 9113), client side, h2c with prior knowledge.

const PUT_PATH = '/etcdserverpb.KV/Put';
const RANGE_PATH = '/etcdserverpb.KV/Range';

const FRAME_HEAD = 9;
const T_DATA = 0x0;
const T_HEADERS = 0x1;
const T_RST_STREAM = 0x3;
const T_SETTINGS = 0x4;
const T_PUSH_PROMISE = 0x5;
const T_PING = 0x6;
const T_GOAWAY = 0x7;
const T_WINDOW_UPDATE = 0x8;
const T_CONTINUATION = 0x9;
const F_END_STREAM = 0x1;
const F_ACK = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;
const S_MAX_CONCURRENT_STREAMS = 0x3;
const S_INITIAL_WINDOW_SIZE = 0x4;
const S_MAX_FRAME_SIZE = 0x5;
const E_CANCEL = 0x8;
/** Largest stream id (31 bits): a connection whose ids run out is replaced by a new one. */
const MAX_STREAM_ID = 0x7fffffff;
/** HTTP/2's initial flow-control window, for the connection and for each stream, until SETTINGS change it. */
const DEFAULT_WINDOW = 65_535;
/** SETTINGS_MAX_FRAME_SIZE's initial value; we keep it, so no frame we receive may be larger. */
const DEFAULT_MAX_FRAME = 16_384;
/**
 * The receive windows we grant, for the connection and for each stream: 1 GiB, so a server never waits for us to
 * open a window in practice; we top them up once half is used.
 */
const RECV_WINDOW = 1 << 30;

/** Writes a 9-byte frame header at `pos`. */
function writeFrameHead(buf: Buffer, pos: number, length: number, type: number, flags: number, stream: number): void {
  buf[pos] = length >>> 16;
  buf[pos + 1] = (length >>> 8) & 0xff;
  buf[pos + 2] = length & 0xff;
  buf[pos + 3] = type;
  buf[pos + 4] = flags;
  buf.writeUInt32BE(stream, pos + 5);
}

function windowUpdateFrame(stream: number, increment: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEAD + 4);
  writeFrameHead(buf, 0, 4, T_WINDOW_UPDATE, 0, stream);
  buf.writeUInt32BE(increment, FRAME_HEAD);
  return buf;
}

/**
 * What a connection sends first: the client preface, our SETTINGS (no push; 1 GiB stream windows) and a
 * WINDOW_UPDATE that opens the connection window to 1 GiB too.
 */
const PREFACE: Buffer = (() => {
  const magic = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  const settings = Buffer.alloc(FRAME_HEAD + 12);
  writeFrameHead(settings, 0, 12, T_SETTINGS, 0, 0);
  settings.writeUInt16BE(0x2, FRAME_HEAD); // SETTINGS_ENABLE_PUSH = 0
  settings.writeUInt32BE(0, FRAME_HEAD + 2);
  settings.writeUInt16BE(S_INITIAL_WINDOW_SIZE, FRAME_HEAD + 6);
  settings.writeUInt32BE(RECV_WINDOW, FRAME_HEAD + 8);
  return Buffer.concat([magic, settings, windowUpdateFrame(0, RECV_WINDOW - DEFAULT_WINDOW)]);
})();

const SETTINGS_ACK: Buffer = (() => {
  const b = Buffer.alloc(FRAME_HEAD);
  writeFrameHead(b, 0, 0, T_SETTINGS, F_ACK, 0);
  return b;
})();

/** Names of RFC 9113 error codes, for error texts. */
const ERROR_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];
const errorName = (code: number): string => `${ERROR_NAMES[code] ?? 'unknown error'} (${code})`;

/** One unary call: one HTTP/2 stream. Plain fields, no listeners: the session's frame loop fills them in. */
class Call {
  /** 0 until the stream's HEADERS are sent (a call may wait for MAX_CONCURRENT_STREAMS). */
  id = 0;
  /** How much DATA we may still send on the stream (the peer's stream window). */
  sendWindow = 0;
  /** DATA received since we last widened the stream's receive window. */
  received = 0;
  httpStatus = 0;
  headersSeen = false;
  grpcStatus: string | undefined = undefined;
  grpcMessage: string | undefined = undefined;
  /** The response body: a view of the first DATA frame; later frames go to `more`. */
  body: Buffer | null = null;
  more: Buffer[] | null = null;
  /**
   * The request: HEADERS frame, then (from `dataAt`) a DATA frame header and the gRPC body. Until sent, or while a
   * large body waits for flow-control window (`sent` bytes of the body out so far).
   */
  req: Buffer | null;
  dataAt: number;
  sent = 0;

  constructor(
    req: Buffer,
    dataAt: number,
    /** Null once the completion has been called. */
    public done: Completion | null,
  ) {
    this.req = req;
    this.dataAt = dataAt;
  }
}

function grpcMessageText(m: string | undefined): string {
  if (!m) return '';
  try {
    return `: ${decodeURIComponent(m)}`;
  } catch {
    return `: ${m}`;
  }
}

/** What a finished stream means: `null` for a good answer, else the error description handed to the runner. */
function outcome(call: Call): string | null {
  if (call.grpcStatus === undefined) {
    if (call.httpStatus && call.httpStatus !== 200) return `http ${call.httpStatus} without grpc-status`;
    return 'stream closed before grpc-status (ended without trailers)';
  }
  if (call.grpcStatus !== '0') return `grpc-status ${call.grpcStatus}${grpcMessageText(call.grpcMessage)}`;
  let body = call.body;
  if (body === null) return 'grpc-status 0 without a response message';
  if (call.more !== null) body = Buffer.concat([body, ...call.more]);
  const msg = unframe(body);
  return typeof msg === 'string' ? msg : null;
}

/** Schedules a session's flush after the current turn's sends (`process.nextTick` with an argument: no closure). */
function flushSession(s: H2Session): void {
  s.flush();
}

/** The request header blocks of one server, encoded once (static HPACK, so they never change). */
interface HeaderBlocks {
  readonly put: Buffer;
  readonly range: Buffer;
}

/**
 * One TCP connection speaking HTTP/2. It takes new streams until it is draining (GOAWAY received, stream ids used
 * up, or the socket gone); its {@link H2Connection} then opens another one for new requests.
 */
class H2Session {
  readonly socket: Socket;
  /** Open streams by id. */
  private readonly calls = new Map<number, Call>();
  /** Calls waiting for the peer's MAX_CONCURRENT_STREAMS to allow another stream. */
  private readonly waiting: Call[] = [];
  /** Calls whose body waits for flow-control window, in order. */
  private blocked: Call[] = [];
  private nextId: number;
  /** True once no new streams may start here. */
  draining = false;
  /** Why the connection failed, for the error texts of the streams it takes down. */
  private cause: string | null = null;
  private sendWindow = DEFAULT_WINDOW;
  private peerStreamWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  private peerMaxStreams = Number.POSITIVE_INFINITY;
  private received = 0;
  private readonly decoder = new HpackDecoder();
  // Frame reader: `rest` holds the start of an incomplete frame, `need` how many bytes it must reach.
  private rest: Buffer[] | null = null;
  private restLength = 0;
  private need = 0;
  // A header block split over HEADERS + CONTINUATION frames.
  private blockStream = 0;
  private blockEnd = false;
  private blockParts: Buffer[] | null = null;
  // Output for this turn of the event loop, written in one go by flush().
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushing = false;

  constructor(
    private readonly owner: H2Connection,
    endpoint: Endpoint,
    firstStreamId: number,
  ) {
    this.nextId = firstStreamId;
    const socket = netConnect({ host: endpoint.host, port: endpoint.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.write(PREFACE);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => {
      this.cause ??= err.message;
    });
    socket.on('close', () => this.onClose());
  }

  /** Starts a call: as a stream now, or after others end if the peer's stream limit is reached. */
  start(call: Call): void {
    if (this.calls.size >= this.peerMaxStreams) this.waiting.push(call);
    else this.open(call);
  }

  private open(call: Call): void {
    if (this.nextId > MAX_STREAM_ID) {
      // Only calls that waited for MAX_CONCURRENT_STREAMS get here; new calls went to the next connection.
      this.finish(call, 'stream ids of the connection used up while the call waited for a stream');
      return;
    }
    const id = this.nextId;
    this.nextId += 2;
    call.id = id;
    this.calls.set(id, call);
    if (this.nextId > MAX_STREAM_ID) this.drain();
    const req = call.req as Buffer;
    const at = call.dataAt;
    const bodyLength = req.length - at - FRAME_HEAD;
    writeFrameHead(req, 0, at - FRAME_HEAD, T_HEADERS, F_END_HEADERS, id);
    call.sendWindow = this.peerStreamWindow;
    if (
      this.blocked.length === 0 &&
      bodyLength <= this.sendWindow &&
      bodyLength <= call.sendWindow &&
      bodyLength <= this.peerMaxFrame
    ) {
      // The usual case: HEADERS and the whole body as one DATA frame, one buffer.
      writeFrameHead(req, at, bodyLength, T_DATA, F_END_STREAM, id);
      this.sendWindow -= bodyLength;
      call.sendWindow -= bodyLength;
      call.req = null;
      this.write(req);
      return;
    }
    // A body larger than a window or a frame: HEADERS now, the DATA frames as the windows allow.
    this.write(req.subarray(0, at));
    this.blocked.push(call);
    this.pump();
  }

  /** Sends as much blocked request data as the connection's and the streams' windows allow. */
  private pump(): void {
    let keep = 0;
    const blocked = this.blocked;
    for (let i = 0; i < blocked.length; i++) {
      const call = blocked[i];
      const req = call.req;
      if (req !== null && call.done !== null) {
        const body = call.dataAt + FRAME_HEAD;
        const total = req.length - body;
        while (call.sent < total && this.sendWindow > 0 && call.sendWindow > 0) {
          const n = Math.min(total - call.sent, this.sendWindow, call.sendWindow, this.peerMaxFrame);
          const head = Buffer.allocUnsafe(FRAME_HEAD);
          const last = call.sent + n === total;
          writeFrameHead(head, 0, n, T_DATA, last ? F_END_STREAM : 0, call.id);
          this.write(head);
          this.write(req.subarray(body + call.sent, body + call.sent + n));
          call.sent += n;
          this.sendWindow -= n;
          call.sendWindow -= n;
        }
        if (call.sent < total) blocked[keep++] = call;
        else call.req = null;
      }
    }
    blocked.length = keep;
  }

  /** Queues bytes for this turn's single socket write. */
  private write(buf: Buffer): void {
    this.out.push(buf);
    this.outBytes += buf.length;
    if (!this.flushing) {
      this.flushing = true;
      process.nextTick(flushSession, this);
    }
  }

  /** Writes what this turn queued: one buffer, joined if small, else corked so the kernel still gets one writev. */
  flush(): void {
    this.flushing = false;
    const out = this.out;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (this.socket.destroyed || out.length === 0) return;
    if (out.length === 1) this.socket.write(out[0]);
    else if (bytes <= 65_536) this.socket.write(Buffer.concat(out, bytes));
    else {
      this.socket.cork();
      for (const b of out) this.socket.write(b);
      this.socket.uncork();
    }
  }

  /** No new streams here; closes the socket once the last open stream ends. */
  private drain(): void {
    this.draining = true;
    this.owner.detach(this);
    if (this.calls.size === 0 && this.waiting.length === 0) this.retire();
  }

  /** Ends a call: completes it (unless the transport was closed) and, on a draining session, maybe the socket. */
  private finish(call: Call, error: string | null): void {
    if (call.id !== 0) this.calls.delete(call.id);
    const done = call.done;
    call.done = null;
    call.body = null;
    call.more = null;
    if (call.req !== null) {
      // The server answered before taking the whole body (e.g. an error): stop sending it.
      call.req = null;
      if (call.id !== 0 && !this.socket.destroyed) this.write(rstStreamFrame(call.id, E_CANCEL));
    }
    if (this.waiting.length > 0 && this.calls.size < this.peerMaxStreams && !this.socket.destroyed) {
      this.open(this.waiting.shift() as Call);
    }
    if (this.draining && this.calls.size === 0 && this.waiting.length === 0) this.retire();
    if (done !== null && !this.owner.closed) done(error);
  }

  /**
   * Closes a drained connection once what this turn queued is written: ending our side alone is not enough, a
   * server may keep the connection (and streams it was told about but refused) open.
   */
  private retire(): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (this.out.length > 0) this.flush();
    this.socket.end(() => this.socket.destroy());
  }

  /** Fails the connection for a protocol error of the peer: every open stream fails with `why`. */
  private fail(why: string): void {
    this.cause ??= why;
    this.socket.destroy();
  }

  /** Closes the socket at once (the transport is closing). */
  destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    // Detach first, so the requests the failures below trigger go over a new connection.
    this.draining = true;
    this.owner.detach(this);
    this.owner.forget(this);
    const why = `connection lost before grpc-status (${this.cause ?? 'closed by the server'})`;
    const calls = [...this.calls.values(), ...this.waiting];
    this.calls.clear();
    this.waiting.length = 0;
    this.blocked.length = 0;
    for (const call of calls) {
      call.id = 0;
      this.finish(call, why);
    }
  }

  // -- reading ---------------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.rest !== null) {
      this.rest.push(chunk);
      this.restLength += chunk.length;
      if (this.restLength < this.need) return;
      buf = Buffer.concat(this.rest, this.restLength);
      this.rest = null;
    }
    const n = buf.length;
    let p = 0;
    let need = FRAME_HEAD;
    while (n - p >= FRAME_HEAD) {
      const length = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2];
      if (length > DEFAULT_MAX_FRAME) {
        this.fail(`FRAME_SIZE_ERROR: a ${length}-byte frame, above our SETTINGS_MAX_FRAME_SIZE`);
        return;
      }
      if (n - p < FRAME_HEAD + length) {
        need = FRAME_HEAD + length;
        break;
      }
      this.frame(buf, p, length);
      if (this.socket.destroyed) return;
      p += FRAME_HEAD + length;
    }
    if (p < n) {
      // Keep a view of the partial frame; it is copied once, when the rest of it has arrived.
      this.rest = [buf.subarray(p)];
      this.restLength = n - p;
      this.need = need;
    }
  }

  private frame(buf: Buffer, at: number, length: number): void {
    const type = buf[at + 3];
    const flags = buf[at + 4];
    const stream = buf.readUInt32BE(at + 5) & 0x7fffffff;
    const p = at + FRAME_HEAD;
    if (this.blockParts !== null && type !== T_CONTINUATION) {
      this.fail('PROTOCOL_ERROR: a header block was interrupted by another frame');
      return;
    }
    switch (type) {
      case T_DATA:
        this.onDataFrame(buf, p, length, flags, stream);
        break;
      case T_HEADERS: {
        let start = p;
        let end = p + length;
        if (flags & F_PADDED) {
          end -= buf[start];
          start++;
        }
        if (flags & F_PRIORITY) start += 5;
        if (start > end) {
          this.fail('PROTOCOL_ERROR: HEADERS padding longer than the frame');
          return;
        }
        const block = buf.subarray(start, end);
        if (flags & F_END_HEADERS) this.onHeaderBlock(stream, (flags & F_END_STREAM) !== 0, block);
        else {
          this.blockStream = stream;
          this.blockEnd = (flags & F_END_STREAM) !== 0;
          this.blockParts = [block];
        }
        break;
      }
      case T_CONTINUATION: {
        const parts = this.blockParts;
        if (parts === null || stream !== this.blockStream) {
          this.fail('PROTOCOL_ERROR: CONTINUATION without a HEADERS frame before it');
          return;
        }
        parts.push(buf.subarray(p, p + length));
        if (flags & F_END_HEADERS) {
          this.blockParts = null;
          this.onHeaderBlock(stream, this.blockEnd, Buffer.concat(parts));
        }
        break;
      }
      case T_RST_STREAM: {
        const call = this.calls.get(stream);
        if (length !== 4) this.fail('FRAME_SIZE_ERROR: RST_STREAM of the wrong length');
        else if (call !== undefined) {
          call.req = null; // the stream is closed: no more DATA, and no RST_STREAM in reply (RFC 9113 section 5.4.2)
          this.finish(call, `stream closed before grpc-status (RST_STREAM ${errorName(buf.readUInt32BE(p))})`);
        }
        break;
      }
      case T_SETTINGS:
        if (flags & F_ACK) break;
        if (length % 6 !== 0 || stream !== 0) this.fail('PROTOCOL_ERROR: malformed SETTINGS');
        else this.onSettings(buf, p, length);
        break;
      case T_PING:
        if (length !== 8) this.fail('FRAME_SIZE_ERROR: PING of the wrong length');
        else if (!(flags & F_ACK)) {
          const ack = Buffer.allocUnsafe(FRAME_HEAD + 8);
          writeFrameHead(ack, 0, 8, T_PING, F_ACK, 0);
          buf.copy(ack, FRAME_HEAD, p, p + 8);
          this.write(ack);
        }
        break;
      case T_GOAWAY:
        if (length < 8) this.fail('FRAME_SIZE_ERROR: GOAWAY shorter than 8 bytes');
        else this.onGoaway(buf.readUInt32BE(p) & 0x7fffffff, buf.readUInt32BE(p + 4), buf, p + 8, p + length);
        break;
      case T_WINDOW_UPDATE: {
        if (length !== 4) {
          this.fail('FRAME_SIZE_ERROR: WINDOW_UPDATE of the wrong length');
          return;
        }
        const increment = buf.readUInt32BE(p) & 0x7fffffff;
        if (stream === 0) this.sendWindow += increment;
        else {
          const call = this.calls.get(stream);
          if (call === undefined) break;
          call.sendWindow += increment;
        }
        if (this.blocked.length > 0) this.pump();
        break;
      }
      case T_PUSH_PROMISE:
        this.fail('PROTOCOL_ERROR: PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0');
        break;
      default:
        // PRIORITY and unknown frame types are ignored (RFC 9113 section 4.1, 5.5).
        break;
    }
  }

  private onDataFrame(buf: Buffer, p: number, length: number, flags: number, stream: number): void {
    // Flow control counts the whole payload, padding included, also for streams we no longer track.
    this.received += length;
    if (this.received >= RECV_WINDOW / 2) {
      this.write(windowUpdateFrame(0, this.received));
      this.received = 0;
    }
    const call = this.calls.get(stream);
    if (call === undefined) return;
    let start = p;
    let end = p + length;
    if (flags & F_PADDED) {
      end -= buf[start];
      start++;
      if (start > end) {
        this.fail('PROTOCOL_ERROR: DATA padding longer than the frame');
        return;
      }
    }
    if (end > start) {
      const data = buf.subarray(start, end);
      if (call.body === null) call.body = data;
      else if (call.more === null) call.more = [data];
      else call.more.push(data);
    }
    if (flags & F_END_STREAM) this.finish(call, outcome(call));
    else {
      call.received += length;
      if (call.received >= RECV_WINDOW / 2) {
        this.write(windowUpdateFrame(stream, call.received));
        call.received = 0;
      }
    }
  }

  private onHeaderBlock(stream: number, endStream: boolean, block: Buffer): void {
    // Decoded even for streams we dropped: every block updates the connection's HPACK table.
    let fields: ReturnType<HpackDecoder['decode']>;
    try {
      fields = this.decoder.decode(block);
    } catch (e) {
      this.fail(`COMPRESSION_ERROR: ${(e as Error).message}`);
      return;
    }
    const call = this.calls.get(stream);
    if (call === undefined) return;
    const first = !call.headersSeen;
    call.headersSeen = true;
    for (let i = 0; i < fields.length; i++) {
      const [name, value] = fields[i];
      if (name === ':status') {
        if (first) call.httpStatus = Number(value);
      } else if (name === 'grpc-status') call.grpcStatus = value;
      else if (name === 'grpc-message') call.grpcMessage = value;
    }
    if (endStream) this.finish(call, outcome(call));
  }

  private onSettings(buf: Buffer, p: number, length: number): void {
    for (let i = p; i < p + length; i += 6) {
      const id = buf.readUInt16BE(i);
      const value = buf.readUInt32BE(i + 2);
      if (id === S_INITIAL_WINDOW_SIZE) {
        if (value > 0x7fffffff) {
          this.fail('FLOW_CONTROL_ERROR: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
          return;
        }
        // A new initial window changes every open stream's window by the difference (RFC 9113 section 6.9.2).
        const delta = value - this.peerStreamWindow;
        this.peerStreamWindow = value;
        for (const call of this.calls.values()) call.sendWindow += delta;
      } else if (id === S_MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff) {
          this.fail(`PROTOCOL_ERROR: SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
          return;
        }
        this.peerMaxFrame = value;
      } else if (id === S_MAX_CONCURRENT_STREAMS) this.peerMaxStreams = value;
    }
    this.write(SETTINGS_ACK);
    if (this.blocked.length > 0) this.pump();
    while (this.waiting.length > 0 && this.calls.size < this.peerMaxStreams) this.open(this.waiting.shift() as Call);
  }

  private onGoaway(lastStreamId: number, code: number, buf: Buffer, from: number, to: number): void {
    const debug = to > from ? `: ${buf.toString('latin1', from, to)}` : '';
    const why = `GOAWAY ${errorName(code)}${debug}`;
    this.cause ??= why;
    this.drain();
    // Streams above the last one the server processed were not acted on: fail them now (the slot's next request
    // goes over a new connection); the others may still be answered.
    const refused: Call[] = [...this.waiting];
    this.waiting.length = 0;
    for (const call of this.calls.values()) if (call.id > lastStreamId) refused.push(call);
    for (const call of refused) this.finish(call, `stream refused by ${why}`);
  }
}

function rstStreamFrame(stream: number, code: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEAD + 4);
  writeFrameHead(buf, 0, 4, T_RST_STREAM, 0, stream);
  buf.writeUInt32BE(code, FRAME_HEAD);
  return buf;
}

// ---------------------------------------------------------------------------------------------------------------
// Connections and the transport

/** Options of {@link EtcdGrpcTransport}. */
export interface EtcdGrpcOptions {
  /** etcd client endpoints (e.g. `:2379`); at least one. */
  readonly servers: readonly Endpoint[];
  /** Number of slots (= concurrency C). Slot k sends to server k % S. */
  readonly slots: number;
  /**
   * HTTP/2 connections in all (default {@link DEFAULT_GRPC_CONNECTIONS}). Never more than `slots`, rounded up to a
   * multiple of the number of servers so each server gets the same number; the slots of a server take its
   * connections in turn, so streams spread evenly.
   */
  readonly connections?: number;
  /**
   * The first stream id of each connection (odd, default 1). Tests set it near 2^31 to reach the end of the id
   * space, where the transport moves to a new connection, in a few requests.
   */
  readonly firstStreamId?: number;
}

/** Default number of HTTP/2 connections of {@link EtcdGrpcTransport}: about what etcd's benchmark is run with. */
export const DEFAULT_GRPC_CONNECTIONS = 100;

/** One logical connection to a server: its current HTTP/2 session, replaced by a new one when that one drains. */
class H2Connection {
  /** Set by {@link H2Connection.close}: completions of streams still open are dropped (the Transport contract). */
  closed = false;
  private session: H2Session | null = null;
  /** Every session with a socket, the current one and draining ones, so close() can end them all. */
  private readonly sessions = new Set<H2Session>();
  private readonly blocks: HeaderBlocks;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly firstStreamId: number,
  ) {
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    const block = (path: string) =>
      encodeHeaderBlock([
        [':method', 'POST'],
        [':scheme', 'http'],
        [':authority', `${host}:${endpoint.port}`],
        [':path', path],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
      ]);
    this.blocks = { put: block(PUT_PATH), range: block(RANGE_PATH) };
  }

  private attach(): H2Session {
    const s = new H2Session(this, this.endpoint, this.firstStreamId);
    this.session = s;
    this.sessions.add(s);
    return s;
  }

  /** Called by a session that takes no new streams: the next request opens a new one. */
  detach(s: H2Session): void {
    if (this.session === s) this.session = null;
  }

  /** Called by a session whose socket closed. */
  forget(s: H2Session): void {
    this.sessions.delete(s);
  }

  /** Opens the first session; rejects with {@link LoadgenError} `CONNECT` if the server cannot be reached. */
  open(): Promise<void> {
    return whenConnected(this.attach().socket, this.endpoint);
  }

  send(op: Op, done: Completion): void {
    if (this.closed) return;
    let s = this.session;
    if (s === null || s.draining) s = this.attach();
    // One buffer: HEADERS frame (the precomputed block), DATA frame header, gRPC body. Frame headers are filled in
    // when the stream gets its id.
    let req: Buffer;
    let dataAt: number;
    if (op.type === 'put') {
      const block = this.blocks.put;
      const value = typeof op.value === 'number' ? String(op.value) : op.value;
      const kl = Buffer.byteLength(op.key);
      const vl = Buffer.byteLength(value);
      dataAt = FRAME_HEAD + block.length;
      req = Buffer.allocUnsafe(dataAt + FRAME_HEAD + putBodyLength(kl, vl));
      block.copy(req, FRAME_HEAD);
      writePutBody(req, dataAt + FRAME_HEAD, op.key, kl, value, vl);
    } else {
      const block = this.blocks.range;
      const kl = Buffer.byteLength(op.key);
      const serializable = op.consistency === 'local';
      dataAt = FRAME_HEAD + block.length;
      req = Buffer.allocUnsafe(dataAt + FRAME_HEAD + rangeBodyLength(kl, serializable));
      block.copy(req, FRAME_HEAD);
      writeRangeBody(req, dataAt + FRAME_HEAD, op.key, kl, serializable);
    }
    s.start(new Call(req, dataAt, done));
  }

  close(): void {
    this.closed = true;
    this.session = null;
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}

/**
 * etcd v3's KV service over gRPC (HTTP/2, h2c). Slot k sends to server k % S, over that server's connections in
 * turn; each request is one HTTP/2 stream, so any number of slots share a connection.
 */
export class EtcdGrpcTransport implements Transport {
  /** `etcd-grpc`: the report's `target`. */
  readonly name = 'etcd-grpc';
  /** Connections opened in all (after clamping to the slots and rounding up to a multiple of the servers). */
  readonly connectionCount: number;
  private readonly conns: H2Connection[] = [];
  private readonly perServer: number;
  private readonly servers: number;

  constructor(options: EtcdGrpcOptions) {
    const S = options.servers.length;
    if (S === 0) throw new LoadgenError('BAD_OPTION', 'at least one server is needed');
    const wanted = options.connections ?? DEFAULT_GRPC_CONNECTIONS;
    if (!Number.isInteger(wanted) || wanted < 1) {
      throw new LoadgenError('BAD_OPTION', `gRPC connections must be a positive integer, got ${wanted}`);
    }
    const first = options.firstStreamId ?? 1;
    if (!Number.isInteger(first) || first < 1 || first > MAX_STREAM_ID || first % 2 === 0) {
      throw new LoadgenError('BAD_OPTION', `the first stream id must be odd, 1 to 2^31-1, got ${first}`);
    }
    this.servers = S;
    this.perServer = Math.ceil(Math.min(wanted, Math.max(1, options.slots)) / S);
    this.connectionCount = this.perServer * S;
    for (let m = 0; m < S; m++) {
      for (let j = 0; j < this.perServer; j++) this.conns.push(new H2Connection(options.servers[m], first));
    }
  }

  /** Connects every HTTP/2 connection, 32 at a time. Rejects with {@link LoadgenError} `CONNECT` on failure. */
  async open(): Promise<void> {
    for (let i = 0; i < this.conns.length; i += 32) {
      await Promise.all(this.conns.slice(i, i + 32).map((c) => c.open()));
    }
  }

  /**
   * Sends `op` as a unary gRPC call from slot `slot` (`id` is not used: each call is its own stream). `done` gets
   * `null` for grpc-status 0 with one well-framed message, else `grpc-status N: message`, `http N without
   * grpc-status`, `connection lost before grpc-status (...)` when the connection drops, `stream closed before
   * grpc-status (...)` when the stream alone is reset or ends without trailers, or `stream refused by GOAWAY ...`
   * when the server announced it would not process the stream.
   */
  send(slot: number, _id: number, op: Op, done: Completion): void {
    const member = slot % this.servers;
    const j = Math.floor(slot / this.servers) % this.perServer;
    this.conns[member * this.perServer + j].send(op, done);
  }

  /** Destroys every connection; requests still waiting never complete. */
  close(): void {
    for (const c of this.conns) c.close();
  }
}
