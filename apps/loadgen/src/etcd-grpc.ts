/**
 * etcd through its native gRPC API (`/etcdserverpb.KV/Put`, `/etcdserverpb.KV/Range`), with no gRPC library: Node's
 * built-in `node:http2` client speaking plain-text HTTP/2 with prior knowledge (h2c; etcd 3.4 serves gRPC and its
 * HTTP/JSON gateway on the same client port), the gRPC length-prefixed framing and the few protobuf messages needed
 * written by hand. Streams are multiplexed over a bounded number of connections, as etcd's own benchmark tool does,
 * rather than one connection per slot: that is how gRPC clients reach etcd, and it keeps the client's CPU per request
 * low on a machine whose cores the servers need.
 */
import { type ClientHttp2Session, type ClientHttp2Stream, connect, constants } from 'node:http2';
import { LoadgenError } from './errors.js';
import type { Completion, Endpoint, Transport } from './transport.js';
import type { Op } from './workload.js';

// ---------------------------------------------------------------------------------------------------------------
// Protobuf, by hand: only the fields the load generator sends or checks.

/** A protobuf message could not be decoded (truncated, or a wire type etcd never sends). */
export class ProtobufError extends Error {
  /** Always `BAD_PROTOBUF`, so callers can tell it from other errors without parsing the message. */
  readonly code = 'BAD_PROTOBUF' as const;

  constructor(message: string) {
    super(message);
    this.name = 'ProtobufError';
  }
}

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** Writes `n` (0 to 2^32-1) as a varint at `pos`; returns the position after it. */
function writeVarint(buf: Buffer, pos: number, n: number): number {
  let p = pos;
  let v = n;
  while (v >= 0x80) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/** Bytes of a length-delimited field (tag + length + payload) carrying `len` payload bytes. */
const bytesFieldSize = (len: number): number => 1 + varintSize(len) + len;

/** The payload of a bytes field: text is UTF-8, as etcd stores keys and values as raw bytes. */
type Bytes = string | Uint8Array;
const byteLength = (b: Bytes): number => (typeof b === 'string' ? Buffer.byteLength(b) : b.length);

function writeBytesField(buf: Buffer, pos: number, tag: number, data: Bytes, len: number): number {
  buf[pos] = tag;
  let p = writeVarint(buf, pos + 1, len);
  if (typeof data === 'string') p += buf.write(data, p);
  else {
    buf.set(data, p);
    p += len;
  }
  return p;
}

/** gRPC's message prefix: 1 byte "compressed" flag (0: we never compress) and a 4-byte big-endian length. */
const FRAME_HEADER = 5;

function frame(messageLength: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER + messageLength);
  buf[0] = 0;
  buf.writeUInt32BE(messageLength, 1);
  return buf;
}

/**
 * A gRPC request body holding etcd's `PutRequest { key = 1; value = 2 }`: the 5-byte message prefix followed by the
 * protobuf encoding. One allocation; the other `PutRequest` fields keep their defaults and are not written.
 */
export function encodePutFrame(key: Bytes, value: Bytes): Buffer {
  const kl = byteLength(key);
  const vl = byteLength(value);
  const buf = frame(bytesFieldSize(kl) + bytesFieldSize(vl));
  writeBytesField(buf, writeBytesField(buf, FRAME_HEADER, 0x0a, key, kl), 0x12, value, vl);
  return buf;
}

/**
 * A gRPC request body holding etcd's `RangeRequest { key = 1; serializable = 7 }` for one key: `serializable` true
 * is a local read (any member answers from its own state); false (not written) is etcd's default linearizable read.
 */
export function encodeRangeFrame(key: Bytes, serializable: boolean): Buffer {
  const kl = byteLength(key);
  const buf = frame(bytesFieldSize(kl) + (serializable ? 2 : 0));
  const p = writeBytesField(buf, FRAME_HEADER, 0x0a, key, kl);
  if (serializable) {
    buf[p] = 0x38; // field 7, wire type 0 (varint)
    buf[p + 1] = 1;
  }
  return buf;
}

/** One `mvccpb.KeyValue` as far as the load generator reads it. */
export interface KeyValue {
  /** The key's bytes (a view into the decoded buffer). */
  readonly key: Buffer;
  /** The value's bytes (a view into the decoded buffer). */
  readonly value: Buffer;
}

/** `RangeResponse { kvs = 2; count = 4 }`; the header and `more` are skipped. */
export interface RangeResult {
  /** The keys found (at most one for a single-key range). */
  readonly kvs: readonly KeyValue[];
  /** How many keys the range matched (int64 on the wire; exact up to 2^53). */
  readonly count: number;
}

/** Reads protobuf fields of `buf[start, end)`, calling `field` for each varint or length-delimited one. */
function readFields(
  buf: Uint8Array,
  start: number,
  end: number,
  field: (no: number, varint: number, from: number, to: number) => void,
): void {
  let p = start;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= end) throw new ProtobufError('truncated varint');
      const b = buf[p++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new ProtobufError('varint longer than 10 bytes');
  };
  while (p < end) {
    const tag = varint();
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no === 0) throw new ProtobufError('field number 0');
    if (wire === 0) field(no, varint(), 0, 0);
    else if (wire === 2) {
      const len = varint();
      if (p + len > end) throw new ProtobufError(`field ${no}: length ${len} runs past the message`);
      field(no, 0, p, p + len);
      p += len;
    } else if (wire === 1 || wire === 5) {
      p += wire === 1 ? 8 : 4;
      if (p > end) throw new ProtobufError(`field ${no}: truncated fixed-width value`);
    } else throw new ProtobufError(`field ${no}: unsupported wire type ${wire}`);
  }
}

/**
 * Decodes the protobuf of a `RangeResponse` (without the gRPC prefix). Throws {@link ProtobufError} when the bytes
 * are not a well-formed message.
 */
export function decodeRangeResponse(message: Buffer): RangeResult {
  const kvs: KeyValue[] = [];
  let count = 0;
  readFields(message, 0, message.length, (no, v, from, to) => {
    if (no === 4) count = v;
    else if (no === 2) {
      let key: Buffer = EMPTY;
      let value: Buffer = EMPTY;
      readFields(message, from, to, (kno, _kv, kfrom, kto) => {
        if (kno === 1) key = message.subarray(kfrom, kto);
        else if (kno === 5) value = message.subarray(kfrom, kto);
      });
      kvs.push({ key, value });
    }
  });
  return { kvs, count };
}
const EMPTY: Buffer = Buffer.alloc(0);

/** A decoded `PutRequest` (fields 1 and 2; others skipped). */
export interface PutFields {
  /** The key's bytes (a view into the decoded buffer). */
  readonly key: Buffer;
  /** The value's bytes (a view into the decoded buffer). */
  readonly value: Buffer;
}

/**
 * Decodes the protobuf of a `PutRequest` (without the gRPC prefix): what an etcd server reads from
 * {@link encodePutFrame}. Lets a test server (or a capture) check what the client sent. Throws {@link ProtobufError}.
 */
export function decodePutRequest(message: Buffer): PutFields {
  let key: Buffer = EMPTY;
  let value: Buffer = EMPTY;
  readFields(message, 0, message.length, (no, _v, from, to) => {
    if (no === 1) key = message.subarray(from, to);
    else if (no === 2) value = message.subarray(from, to);
  });
  return { key, value };
}

/** A decoded `RangeRequest`, as far as {@link encodeRangeFrame} fills it. */
export interface RangeFields {
  /** The key's bytes (a view into the decoded buffer). */
  readonly key: Buffer;
  /** Field 7: true for a serializable (local) read. */
  readonly serializable: boolean;
}

/** Decodes the protobuf of a `RangeRequest` (without the gRPC prefix). Throws {@link ProtobufError}. */
export function decodeRangeRequest(message: Buffer): RangeFields {
  let key: Buffer = EMPTY;
  let serializable = false;
  readFields(message, 0, message.length, (no, v, from, to) => {
    if (no === 1) key = message.subarray(from, to);
    else if (no === 7) serializable = v !== 0;
  });
  return { key, serializable };
}

/**
 * A gRPC response body holding `RangeResponse { kvs = 2 (KeyValue { key = 1; value = 5 }); count = 4 }`: what a
 * server answers, for test servers and for checking {@link decodeRangeResponse} against known bytes. The header and
 * the other KeyValue fields are left out (zero values are not written in proto3).
 */
export function encodeRangeResponseFrame(result: {
  readonly kvs: readonly { readonly key: Bytes; readonly value: Bytes }[];
  readonly count: number;
}): Buffer {
  if (!Number.isInteger(result.count) || result.count < 0 || result.count > 0xffffffff) {
    throw new RangeError(`count must be an integer in [0, 2^32), got ${result.count}`);
  }
  const sizes = result.kvs.map((kv) => {
    const kl = byteLength(kv.key);
    const vl = byteLength(kv.value);
    return { kl, vl, inner: bytesFieldSize(kl) + bytesFieldSize(vl) };
  });
  let len = 0;
  for (const s of sizes) len += bytesFieldSize(s.inner);
  if (result.count > 0) len += 1 + varintSize(result.count);
  const buf = frame(len);
  let p = FRAME_HEADER;
  result.kvs.forEach((kv, i) => {
    const { kl, vl, inner } = sizes[i];
    buf[p] = 0x12; // field 2, length-delimited
    p = writeVarint(buf, p + 1, inner);
    p = writeBytesField(buf, p, 0x0a, kv.key, kl);
    p = writeBytesField(buf, p, 0x2a, kv.value, vl); // field 5
  });
  if (result.count > 0) {
    buf[p] = 0x20; // field 4, varint
    writeVarint(buf, p + 1, result.count);
  }
  return buf;
}

/**
 * The one message of a unary gRPC response body (prefix included): the protobuf bytes, or a description of why the
 * body is not exactly one uncompressed message.
 */
export function unframe(body: Buffer): Buffer | string {
  if (body.length < FRAME_HEADER) return `gRPC body of ${body.length} bytes, shorter than a message prefix`;
  if (body[0] !== 0) return 'compressed gRPC message (none was asked for)';
  const len = body.readUInt32BE(1);
  if (body.length !== FRAME_HEADER + len) {
    return `gRPC message prefix says ${len} bytes, body carries ${body.length - FRAME_HEADER}`;
  }
  return body.subarray(FRAME_HEADER);
}

// ---------------------------------------------------------------------------------------------------------------
// Calls: one HTTP/2 stream each. The listeners are shared functions reading their state off the stream, so a request
// allocates no closures.

const PUT_PATH = '/etcdserverpb.KV/Put';
const RANGE_PATH = '/etcdserverpb.KV/Range';
const { HTTP2_HEADER_STATUS, NGHTTP2_CANCEL } = constants;

interface Call extends ClientHttp2Stream {
  /** Null once the completion has been called. */
  done: Completion | null;
  /** The connection that started the stream: once it is closed, the completion is dropped. */
  owner: H2Connection;
  /** The HTTP/2 session the stream ran on (the stream forgets it when destroyed). */
  h2: ClientHttp2Session;
  httpStatus: number;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  body: Buffer | null;
  error: string | null;
}

function onResponse(this: Call, headers: Record<string, string | string[] | number | undefined>): void {
  this.httpStatus = Number(headers[HTTP2_HEADER_STATUS]);
  // A trailers-only response (how gRPC servers send most errors) carries grpc-status in the headers.
  const status = headers['grpc-status'];
  if (status !== undefined) {
    this.grpcStatus = String(status);
    this.grpcMessage = headers['grpc-message'] as string | undefined;
  }
}

function onData(this: Call, chunk: Buffer): void {
  this.body = this.body === null ? chunk : Buffer.concat([this.body, chunk]);
}

function onTrailers(this: Call, trailers: Record<string, string | string[] | undefined>): void {
  this.grpcStatus = trailers['grpc-status'] as string | undefined;
  this.grpcMessage = trailers['grpc-message'] as string | undefined;
}

function onError(this: Call, err: Error): void {
  this.error = err.message;
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
    // rstCode 0 is either a reset with NO_ERROR (a server shutting down) or an end of stream without trailers.
    const why = call.error ?? (call.rstCode ? `RST_STREAM code ${call.rstCode}` : 'reset with NO_ERROR or no trailers');
    // Node closes the streams of a dead connection with its own CANCEL: name the real cause.
    if (call.h2.destroyed) return `connection lost before grpc-status (${why})`;
    return `stream closed before grpc-status (${why})`;
  }
  if (call.grpcStatus !== '0') return `grpc-status ${call.grpcStatus}${grpcMessageText(call.grpcMessage)}`;
  if (call.body === null) return 'grpc-status 0 without a response message';
  const msg = unframe(call.body);
  return typeof msg === 'string' ? msg : null;
}

function onClose(this: Call): void {
  const done = this.done;
  if (done === null || this.owner.closed) return;
  this.done = null;
  const result = outcome(this);
  this.body = null;
  done(result);
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
}

/** Default number of HTTP/2 connections of {@link EtcdGrpcTransport}: about what etcd's benchmark is run with. */
export const DEFAULT_GRPC_CONNECTIONS = 100;

/** One HTTP/2 session to a server, replaced by a fresh one when the old one closes. */
class H2Connection {
  /** Set by {@link H2Connection.close}: completions of streams still open are dropped (the Transport contract). */
  closed = false;
  private session: ClientHttp2Session | null = null;
  /** Request headers, built once: node:http2 copies them per request, so one object serves every request. */
  private readonly putHeaders: Record<string, string>;
  private readonly rangeHeaders: Record<string, string>;
  private readonly url: string;

  constructor(private readonly endpoint: Endpoint) {
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    const authority = `${host}:${endpoint.port}`;
    this.url = `http://${authority}`;
    const headers = (path: string) => ({
      ':method': 'POST',
      ':scheme': 'http',
      ':authority': authority,
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    this.putHeaders = headers(PUT_PATH);
    this.rangeHeaders = headers(RANGE_PATH);
  }

  private attach(): ClientHttp2Session {
    const s = connect(this.url, {
      // gRPC servers may advertise a limit; until they do, do not hold streams back at node's default of 100.
      peerMaxConcurrentStreams: 1 << 20,
      settings: { enablePush: false, initialWindowSize: 1 << 20 },
    });
    s.on('error', () => {}); // reported through each stream's close; the session is replaced on the next send
    s.on('close', () => {
      if (this.session === s) this.session = null;
    });
    this.session = s;
    return s;
  }

  open(): Promise<void> {
    const s = this.attach();
    return new Promise((resolve, reject) => {
      const fail = (err: Error) =>
        reject(
          new LoadgenError('CONNECT', `cannot connect to ${this.endpoint.host}:${this.endpoint.port}: ${err.message}`, {
            cause: err,
          }),
        );
      s.once('error', fail);
      s.once('connect', () => {
        s.off('error', fail);
        resolve();
      });
    });
  }

  send(op: Op, done: Completion): void {
    if (this.closed) return;
    let s = this.session;
    if (s === null || s.closed || s.destroyed) s = this.attach();
    let body: Buffer;
    let headers: Record<string, string>;
    if (op.type === 'put') {
      body = encodePutFrame(op.key, typeof op.value === 'number' ? String(op.value) : op.value);
      headers = this.putHeaders;
    } else {
      body = encodeRangeFrame(op.key, op.consistency === 'local');
      headers = this.rangeHeaders;
    }
    let stream: Call;
    try {
      stream = s.request(headers) as Call;
    } catch (e) {
      // e.g. the session got GOAWAY between the check above and now: fail this request, reconnect on the next.
      this.session = null;
      done(`cannot start a stream: ${(e as Error).message}`);
      return;
    }
    stream.done = done;
    stream.owner = this;
    stream.h2 = s;
    stream.httpStatus = 0;
    stream.grpcStatus = undefined;
    stream.grpcMessage = undefined;
    stream.body = null;
    stream.error = null;
    stream.on('response', onResponse);
    stream.on('data', onData);
    stream.on('trailers', onTrailers);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.end(body);
  }

  close(): void {
    this.closed = true;
    const s = this.session;
    this.session = null;
    s?.destroy(undefined, NGHTTP2_CANCEL);
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
    this.servers = S;
    this.perServer = Math.ceil(Math.min(wanted, Math.max(1, options.slots)) / S);
    this.connectionCount = this.perServer * S;
    for (let m = 0; m < S; m++) {
      for (let j = 0; j < this.perServer; j++) this.conns.push(new H2Connection(options.servers[m]));
    }
  }

  /** Connects every HTTP/2 session, 32 at a time. Rejects with {@link LoadgenError} `CONNECT` on failure. */
  async open(): Promise<void> {
    for (let i = 0; i < this.conns.length; i += 32) {
      await Promise.all(this.conns.slice(i, i + 32).map((c) => c.open()));
    }
  }

  /**
   * Sends `op` as a unary gRPC call from slot `slot` (`id` is not used: each call is its own stream). `done` gets
   * `null` for grpc-status 0 with one well-framed message, else `grpc-status N: message`, `http N without
   * grpc-status`, `connection lost before grpc-status (...)` when the connection drops, or `stream closed before
   * grpc-status (...)` when the stream alone is reset.
   */
  send(slot: number, _id: number, op: Op, done: Completion): void {
    const member = slot % this.servers;
    const j = Math.floor(slot / this.servers) % this.perServer;
    this.conns[member * this.perServer + j].send(op, done);
  }

  /** Destroys every session; requests still waiting never complete. */
  close(): void {
    for (const c of this.conns) c.close();
  }
}
