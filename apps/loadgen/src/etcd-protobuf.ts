/**
 * The few etcd protobuf messages the load generator sends and reads (`PutRequest`, `RangeRequest`,
 * `RangeResponse`), encoded and decoded by hand, and gRPC's length-prefixed message framing. Written by hand for the
 * same reason as the HTTP/2 client (etcd-grpc.ts): the load client's CPU is taken from the servers it measures.
 */
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
export type Bytes = string | Uint8Array;
/** Bytes of `b` on the wire (UTF-8 for text). */
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

/** Bytes of the gRPC body (prefix + message) of a `PutRequest` with a `kl`-byte key and a `vl`-byte value. */
export const putBodyLength = (kl: number, vl: number): number => FRAME_HEADER + bytesFieldSize(kl) + bytesFieldSize(vl);

/** Writes the gRPC body of a `PutRequest` at `pos` (`putBodyLength(kl, vl)` bytes). */
export function writePutBody(buf: Buffer, pos: number, key: Bytes, kl: number, value: Bytes, vl: number): void {
  buf[pos] = 0;
  buf.writeUInt32BE(bytesFieldSize(kl) + bytesFieldSize(vl), pos + 1);
  writeBytesField(buf, writeBytesField(buf, pos + FRAME_HEADER, 0x0a, key, kl), 0x12, value, vl);
}

/** Bytes of the gRPC body of a single-key `RangeRequest`. */
export const rangeBodyLength = (kl: number, serializable: boolean): number =>
  FRAME_HEADER + bytesFieldSize(kl) + (serializable ? 2 : 0);

/** Writes the gRPC body of a single-key `RangeRequest` at `pos` (`rangeBodyLength(kl, serializable)` bytes). */
export function writeRangeBody(buf: Buffer, pos: number, key: Bytes, kl: number, serializable: boolean): void {
  buf[pos] = 0;
  buf.writeUInt32BE(bytesFieldSize(kl) + (serializable ? 2 : 0), pos + 1);
  const p = writeBytesField(buf, pos + FRAME_HEADER, 0x0a, key, kl);
  if (serializable) {
    buf[p] = 0x38; // field 7, wire type 0 (varint)
    buf[p + 1] = 1;
  }
}

/**
 * A gRPC request body holding etcd's `PutRequest { key = 1; value = 2 }`: the 5-byte message prefix followed by the
 * protobuf encoding. One allocation; the other `PutRequest` fields keep their defaults and are not written.
 */
export function encodePutFrame(key: Bytes, value: Bytes): Buffer {
  const kl = byteLength(key);
  const vl = byteLength(value);
  const buf = Buffer.allocUnsafe(putBodyLength(kl, vl));
  writePutBody(buf, 0, key, kl, value, vl);
  return buf;
}

/**
 * A gRPC request body holding etcd's `RangeRequest { key = 1; serializable = 7 }` for one key: `serializable` true
 * is a local read (any member answers from its own state); false (not written) is etcd's default linearizable read.
 */
export function encodeRangeFrame(key: Bytes, serializable: boolean): Buffer {
  const kl = byteLength(key);
  const buf = Buffer.allocUnsafe(rangeBodyLength(kl, serializable));
  writeRangeBody(buf, 0, key, kl, serializable);
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
