/**
 * The on-disk format: file names, and the checksummed JSON line every record is stored as.
 *
 * A line is a JSON object whose first member is `"crc"`, followed by the record's own members:
 *
 * ```text
 * {"crc":"0ef148f1","rec":"entry","index":7,"term":2,"type":"command","command":{"$bytes":"aGk="}}
 * ```
 *
 * The checksum is the CRC-32 of the record's *body*: the UTF-8 bytes of the same line with the `"crc":"…",`
 * member removed, i.e. `{"rec":"entry",…}`. Writers produce exactly this shape (an 18-byte prefix
 * `{"crc":"xxxxxxxx",` then the body without its opening brace, then `\n`), so readers can verify a line without
 * parsing it first.
 *
 * @packageDocumentation
 */

import type { ClusterConfig, HardState } from '@raft/core';
import type { JsonValue } from './codec.js';
import { crc32, crcHex } from './crc32.js';

/** Version number written in segment headers and `snapshot.json`. */
export const FORMAT_VERSION = 1;

/** Length of `{"crc":"xxxxxxxx",`. */
export const CRC_PREFIX_BYTES = 18;

/** Name of the snapshot metadata file. */
export const SNAPSHOT_META_FILE = 'snapshot.json';
/** Name of the lock file. */
export const LOCK_FILE = 'LOCK';
/** Suffix of temporary files (removed on open). */
export const TMP_SUFFIX = '.tmp';

const SEGMENT_RE = /^log-(\d{10})\.jsonl$/;
const SNAPSHOT_DATA_RE = /^snapshot-\d{12}-\d+\.bin$/;

/** `log-0000000042.jsonl` for sequence number 42. */
export function segmentFileName(seq: number): string {
  return `log-${String(seq).padStart(10, '0')}.jsonl`;
}

/** The sequence number of a segment file name, or `null` if the name is not a segment's. */
export function parseSegmentFileName(name: string): number | null {
  const m = SEGMENT_RE.exec(name);
  return m ? Number(m[1]) : null;
}

/** `snapshot-000000000120-3.bin`: the data of the snapshot at index 120, written as generation 3. */
export function snapshotDataFileName(index: number, generation: number): string {
  return `snapshot-${String(index).padStart(12, '0')}-${generation}.bin`;
}

/** True for names of snapshot data files. */
export function isSnapshotDataFileName(name: string): boolean {
  return SNAPSHOT_DATA_RE.test(name);
}

/** An entry as stored: the command is still in its JSON form. */
export type StoredEntry =
  | { readonly index: number; readonly term: number; readonly type: 'command'; readonly command: JsonValue }
  | { readonly index: number; readonly term: number; readonly type: 'noop' }
  | { readonly index: number; readonly term: number; readonly type: 'config'; readonly config: ClusterConfig };

/** A decoded log line. */
export type LogRecord =
  | { readonly rec: 'segment'; readonly seq: number; readonly prev: number; readonly hardState: HardState }
  | { readonly rec: 'hardState'; readonly hardState: HardState }
  | { readonly rec: 'entry'; readonly entry: StoredEntry };

/** The contents of `snapshot.json`. */
export interface SnapshotMetaRecord {
  readonly index: number;
  readonly term: number;
  readonly config: ClusterConfig;
  /** Name of the data file (in the same directory). */
  readonly file: string;
  /** Size of the data file in bytes. */
  readonly size: number;
  /** CRC-32 of the data, 8 hex digits. */
  readonly dataCrc: string;
  /** Segments with a lower sequence number are obsolete (the snapshot replaced the log they hold). */
  readonly logStart: number;
  /** Generation counter: increases with every snapshot written. */
  readonly generation: number;
  /** The hard state when the snapshot was written (the log may hold a newer one). */
  readonly hardState: HardState;
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------------------------

const q = JSON.stringify;

/** Body of a segment header record. */
export function segmentHeaderBody(seq: number, prev: number, hs: HardState): string {
  return `{"rec":"segment","v":${FORMAT_VERSION},"seq":${seq},"prev":${prev},"term":${hs.term},"votedFor":${q(hs.votedFor)}}`;
}

/** Body of a hard-state record. */
export function hardStateBody(hs: HardState): string {
  return `{"rec":"hardState","term":${hs.term},"votedFor":${q(hs.votedFor)}}`;
}

/** Body of an entry record whose command (if any) is already in JSON text form. */
export function entryBody(index: number, term: number, type: StoredEntry['type'], payloadJson: string): string {
  switch (type) {
    case 'command':
      return `{"rec":"entry","index":${index},"term":${term},"type":"command","command":${payloadJson}}`;
    case 'config':
      return `{"rec":"entry","index":${index},"term":${term},"type":"config","config":${payloadJson}}`;
    default:
      return `{"rec":"entry","index":${index},"term":${term},"type":"noop"}`;
  }
}

/** Body of `snapshot.json`. */
export function snapshotMetaBody(m: SnapshotMetaRecord): string {
  return q({
    rec: 'snapshot',
    v: FORMAT_VERSION,
    index: m.index,
    term: m.term,
    config: m.config,
    file: m.file,
    size: m.size,
    dataCrc: m.dataCrc,
    logStart: m.logStart,
    generation: m.generation,
    hardState: { term: m.hardState.term, votedFor: m.hardState.votedFor },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Writing lines
// ---------------------------------------------------------------------------------------------------------------

const PREFIX_HEAD = Buffer.from('{"crc":"', 'latin1');
/** What a command entry's body holds before its index, between index and term, and between term and base64. */
const ENTRY_HEAD = Buffer.from('{"rec":"entry","index":', 'latin1');
const ENTRY_TERM = Buffer.from(',"term":', 'latin1');
const ENTRY_BYTES = Buffer.from(',"type":"command","command":{"$bytes":"', 'latin1');
const ENTRY_TAIL = Buffer.from('"}}', 'latin1');
const ENTRY_COMMAND = Buffer.from(',"type":"command","command":', 'latin1');
const B64_ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 'latin1');
/** Base64 of 12 bits at once: the first and the second character. */
const B64_HI = new Uint8Array(4096);
const B64_LO = new Uint8Array(4096);
for (let i = 0; i < 4096; i++) {
  B64_HI[i] = B64_ALPHABET[i >> 6];
  B64_LO[i] = B64_ALPHABET[i & 63];
}
/**
 * Up to this many bytes a command is base64-encoded by the loop below, straight into the line buffer; longer ones by
 * Node's native encoder, whose call and intermediate string cost ~200 ns but which is ~7x faster per byte.
 */
const JS_BASE64_MAX_BYTES = 160;
const base64Slice = (Buffer.prototype as unknown as { base64Slice?: (start: number, end: number) => string })
  .base64Slice;
const latin1Write = (Buffer.prototype as unknown as { latin1Write?: (s: string, offset: number) => number })
  .latin1Write;
/** Buffer's internal UTF-8 writer: `buf.write` minus its argument parsing, which shows up in profiles. */
const utf8Write = (Buffer.prototype as unknown as { utf8Write?: (s: string, offset: number) => number }).utf8Write;
const HEX_CODES = Buffer.from('0123456789abcdef', 'latin1');

/**
 * A growable byte buffer that lines are encoded into. Group commit encodes every record of one flush into one of
 * these, so a flush is one `write` call.
 */
export class LineBuffer {
  /** The bytes; only `[0, length)` is meaningful. */
  buf: Buffer;
  /** Number of bytes used. */
  length = 0;

  constructor(capacity = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  private ensure(extra: number): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** Append one checksummed line for the record `body` (a JSON object text starting with `{`). */
  appendRecord(body: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    this.ensure(CRC_PREFIX_BYTES + 3 * body.length + 1);
    const buf = this.buf;
    const at = this.length;
    const bodyStart = at + CRC_PREFIX_BYTES - 1;
    const n = utf8Write === undefined ? buf.write(body, bodyStart, 'utf8') : utf8Write.call(buf, body, bodyStart);
    this.finishLine(at, bodyStart + n);
  }

  /**
   * Append the line of a command entry whose command is a byte array stored by the default codec: exactly
   * `appendRecord(entryBody(index, term, 'command', '{"$bytes":"<base64>"}'))`, but encoded straight into the buffer
   * (no base64 string, no body string, no UTF-8 conversion): this is the hot path of every append.
   */
  appendCommandBytes(index: number, term: number, bytes: Uint8Array): void {
    const len = bytes.length;
    this.ensure(CRC_PREFIX_BYTES + ENTRY_HEAD.length + 40 + ENTRY_BYTES.length + 4 * Math.ceil(len / 3) + 4);
    const buf = this.buf;
    const at = this.length;
    let p = this.entryHead(at, index, term, ENTRY_BYTES);
    if (len <= JS_BASE64_MAX_BYTES || base64Slice === undefined || latin1Write === undefined)
      p = base64Into(bytes, buf, p);
    else p += latin1Write.call(buf, base64Slice.call(bytes, 0, len), p);
    buf.set(ENTRY_TAIL, p);
    this.finishLine(at, p + ENTRY_TAIL.length);
  }

  /**
   * Append the line of a command entry whose command's JSON text is `commandJson`: exactly
   * `appendRecord(entryBody(index, term, 'command', commandJson))`, but written into the buffer piece by piece, so
   * the line's body never exists as a string of its own (every member writes every command: one string fewer each).
   */
  appendCommandJson(index: number, term: number, commandJson: string): void {
    this.ensure(CRC_PREFIX_BYTES + ENTRY_HEAD.length + 40 + ENTRY_COMMAND.length + 3 * commandJson.length + 2);
    const buf = this.buf;
    const at = this.length;
    let p = this.entryHead(at, index, term, ENTRY_COMMAND);
    p += utf8Write === undefined ? buf.write(commandJson, p, 'utf8') : utf8Write.call(buf, commandJson, p);
    buf[p++] = 0x7d; // }
    this.finishLine(at, p);
  }

  /**
   * Write an entry's body up to its payload (`{"rec":"entry","index":I,"term":T` then `kind`, the bytes that open
   * the command or the raw bytes) for a line starting at `at`; returns the position after it. Room was ensured.
   */
  private entryHead(at: number, index: number, term: number, kind: Uint8Array): number {
    const buf = this.buf;
    let p = at + CRC_PREFIX_BYTES - 1;
    buf.set(ENTRY_HEAD, p);
    p = writeNat(buf, p + ENTRY_HEAD.length, index);
    buf.set(ENTRY_TERM, p);
    p = writeNat(buf, p + ENTRY_TERM.length, term);
    buf.set(kind, p);
    return p + kind.length;
  }

  /** The body is in `buf[at + 17, end)`: checksum it, write the prefix over its `{`, add the newline. */
  private finishLine(at: number, end: number): void {
    const buf = this.buf;
    const crc = crc32(buf, at + CRC_PREFIX_BYTES - 1, end);
    // Byte by byte: Buffer#copy's argument handling costs more than these stores for 8 bytes.
    buf[at] = 0x7b; // {
    buf[at + 1] = 0x22; // "
    buf[at + 2] = 0x63; // c
    buf[at + 3] = 0x72; // r
    buf[at + 4] = 0x63; // c
    buf[at + 5] = 0x22; // "
    buf[at + 6] = 0x3a; // :
    buf[at + 7] = 0x22; // "
    let p = at + 8;
    for (let shift = 28; shift >= 0; shift -= 4) buf[p++] = HEX_CODES[(crc >>> shift) & 0xf];
    buf[p++] = 0x22; // "
    buf[p] = 0x2c; // , (overwrites the body's opening brace)
    buf[end] = 0x0a;
    this.length = end + 1;
  }

  /** Forget everything (the buffer is reused for a later batch). */
  reset(): void {
    this.length = 0;
  }

  /** Forget everything after `length` bytes (used to undo a half-encoded request). */
  truncate(length: number): void {
    this.length = length;
  }

  /** The used bytes (a view, not a copy). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** Write the decimal digits of the non-negative safe integer `x` at `p`; returns the position after them. */
function writeNat(buf: Uint8Array, p: number, x: number): number {
  let digits = 1;
  for (let t = x; t >= 10; t = (t - (t % 10)) / 10) digits++;
  let q = p + digits;
  let t = x;
  do {
    const r = t % 10;
    buf[--q] = 0x30 + r;
    t = (t - r) / 10;
  } while (t > 0);
  return p + digits;
}

/** Standard base64 (with padding) of `src` written at `dst[p]`; returns the position after it. */
function base64Into(src: Uint8Array, dst: Uint8Array, p: number): number {
  const n = src.length;
  let i = 0;
  for (const end = n - 2; i < end; i += 3) {
    const v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];
    const a = v >>> 12;
    const b = v & 4095;
    dst[p] = B64_HI[a];
    dst[p + 1] = B64_LO[a];
    dst[p + 2] = B64_HI[b];
    dst[p + 3] = B64_LO[b];
    p += 4;
  }
  const rest = n - i;
  if (rest === 1) {
    const v = src[i];
    dst[p] = B64_ALPHABET[v >> 2];
    dst[p + 1] = B64_ALPHABET[(v & 3) << 4];
    dst[p + 2] = 0x3d; // =
    dst[p + 3] = 0x3d;
    p += 4;
  } else if (rest === 2) {
    const v = (src[i] << 8) | src[i + 1];
    dst[p] = B64_ALPHABET[v >> 10];
    dst[p + 1] = B64_ALPHABET[(v >> 4) & 63];
    dst[p + 2] = B64_ALPHABET[(v & 15) << 2];
    dst[p + 3] = 0x3d;
    p += 4;
  }
  return p;
}

/** One complete checksummed line (with its newline) for `body`. */
export function encodeLine(body: string): Buffer {
  const lb = new LineBuffer(CRC_PREFIX_BYTES + 3 * body.length + 1);
  lb.appendRecord(body);
  return Buffer.from(lb.bytes());
}

// ---------------------------------------------------------------------------------------------------------------
// Reading lines
// ---------------------------------------------------------------------------------------------------------------

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

const OPEN_BRACE = new Uint8Array([0x7b]);

/**
 * Verify the checksum of the line `buf[start..end)` (without its newline) and return its body as a parsed JSON
 * object, or a string saying why the line is not valid.
 */
export function checkLine(buf: Uint8Array, start: number, end: number): { [key: string]: unknown } | string {
  if (end - start < CRC_PREFIX_BYTES + 2) return 'line too short';
  for (let i = 0; i < 8; i++) if (buf[start + i] !== PREFIX_HEAD[i]) return 'line does not start with {"crc":"';
  let stored = 0;
  for (let i = 8; i < 16; i++) {
    const h = hexValue(buf[start + i]);
    if (h < 0) return 'checksum is not 8 hex digits';
    stored = stored * 16 + h;
  }
  if (buf[start + 16] !== 0x22 || buf[start + 17] !== 0x2c) return 'malformed checksum member';
  const bodyRest = start + CRC_PREFIX_BYTES;
  const actual = crc32(buf, bodyRest, end, crc32(OPEN_BRACE));
  if (actual !== stored) return `checksum mismatch (stored ${crcHex(stored)}, computed ${crcHex(actual)})`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(`{${Buffer.from(buf.buffer, buf.byteOffset + bodyRest, end - bodyRest).toString('utf8')}`);
  } catch {
    return 'checksum matches but the line is not valid JSON';
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'record is not a JSON object';
  return parsed as { [key: string]: unknown };
}

function isNat(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isNodeList(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((v) => typeof v === 'string');
}

/** True if `x` has the shape of a {@link ClusterConfig}. */
export function isClusterConfig(x: unknown): x is ClusterConfig {
  if (x === null || typeof x !== 'object') return false;
  const c = x as { voters?: unknown; learners?: unknown; oldVoters?: unknown };
  return isNodeList(c.voters) && isNodeList(c.learners) && (c.oldVoters === undefined || isNodeList(c.oldVoters));
}

function hardStateOf(o: { [key: string]: unknown }): HardState | null {
  const { term, votedFor } = o;
  if (!isNat(term) || !(votedFor === null || typeof votedFor === 'string')) return null;
  return { term, votedFor };
}

/** Interpret a checked line as a log record, or say why it is not one. */
export function toLogRecord(o: { [key: string]: unknown }): LogRecord | string {
  switch (o.rec) {
    case 'entry': {
      const { index, term, type } = o;
      if (!isNat(index) || index < 1 || !isNat(term)) return 'entry has an invalid index or term';
      if (type === 'noop') return { rec: 'entry', entry: { index, term, type } };
      if (type === 'command') {
        if (!('command' in o)) return 'command entry without a command';
        return { rec: 'entry', entry: { index, term, type, command: o.command as JsonValue } };
      }
      if (type === 'config') {
        if (!isClusterConfig(o.config)) return 'config entry with an invalid config';
        return { rec: 'entry', entry: { index, term, type, config: o.config } };
      }
      return 'entry of unknown type';
    }
    case 'hardState': {
      const hs = hardStateOf(o);
      return hs ? { rec: 'hardState', hardState: hs } : 'invalid hard state record';
    }
    case 'segment': {
      const hs = hardStateOf(o);
      if (o.v !== FORMAT_VERSION) return `unsupported format version ${String(o.v)}`;
      if (!hs || !isNat(o.seq) || !isNat(o.prev)) return 'invalid segment header';
      return { rec: 'segment', seq: o.seq, prev: o.prev, hardState: hs };
    }
    default:
      return 'unknown record type';
  }
}

/** Interpret a checked `snapshot.json` line, or say why it is not valid. */
export function toSnapshotMetaRecord(o: { [key: string]: unknown }): SnapshotMetaRecord | string {
  if (o.rec !== 'snapshot') return 'not a snapshot record';
  if (o.v !== FORMAT_VERSION) return `unsupported format version ${String(o.v)}`;
  const { index, term, config, file, size, dataCrc, logStart, generation, hardState } = o;
  const hs =
    hardState !== null && typeof hardState === 'object' ? hardStateOf(hardState as { [key: string]: unknown }) : null;
  if (!isNat(index) || !isNat(term) || !isClusterConfig(config) || !hs) return 'invalid snapshot metadata';
  if (
    typeof file !== 'string' ||
    !isSnapshotDataFileName(file) ||
    !isNat(size) ||
    !isNat(logStart) ||
    !isNat(generation)
  )
    return 'invalid snapshot file description';
  if (typeof dataCrc !== 'string' || !/^[0-9a-f]{8}$/.test(dataCrc)) return 'invalid snapshot checksum';
  return { index, term, config, file, size, dataCrc, logStart, generation, hardState: hs };
}
