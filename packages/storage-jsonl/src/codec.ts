/**
 * Command codecs: how a command of the user's type `C` becomes a JSON value inside a log line, and back.
 *
 * @packageDocumentation
 */

import type { JsonValue } from '@raft/runtime';
import { StorageError } from './errors.js';

export type { JsonValue };

/**
 * Turns commands into JSON values and back. `decode(encode(c))` must equal `c`. Both run synchronously: `encode`
 * when `appendEntries` is called (so a failure rejects that call and nothing is written), `decode` when a data
 * directory is opened.
 *
 * @typeParam C - the command type of the log's `command` entries.
 */
export interface Codec<C> {
  /** The JSON form stored in the log line's `command` field. Throw to refuse a command. */
  encode(command: C): JsonValue;
  /** Rebuild a command from its stored JSON form. */
  decode(json: JsonValue): C;
}

/** What the {@link defaultCodec} stores: byte arrays and JSON values, nested in any way. */
export type BytesOrJson =
  | Uint8Array
  | null
  | boolean
  | number
  | string
  | BytesOrJson[]
  | { [key: string]: BytesOrJson };

function invalid(why: string): never {
  throw new StorageError('INVALID_ARGUMENT', `command cannot be stored by the default codec: ${why}`);
}

/** Base64 of a byte array without copying it. */
export function bytesToBase64(bytes: Uint8Array): string {
  // Buffer's native base64 encoder called on the Uint8Array itself: no intermediate Buffer object on the hot path.
  if (base64Slice !== undefined) return base64Slice.call(bytes, 0, bytes.byteLength);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

const base64Slice = (Buffer.prototype as unknown as { base64Slice?: (start: number, end: number) => string })
  .base64Slice;

/** A fresh, plain `Uint8Array` (not a Node `Buffer`) with the bytes of a base64 string. */
export function base64ToBytes(b64: string): Uint8Array {
  const b = Buffer.from(b64, 'base64');
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

function isTag(o: object): boolean {
  let n = 0;
  let tagged = false;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    n++;
    tagged = k === '$bytes' || k === '$json';
    if (n > 1) return false;
  }
  return tagged;
}

function encodeValue(v: BytesOrJson): JsonValue {
  if (v === null) return null;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      if (!Number.isFinite(v)) invalid(`the number ${v} has no JSON form`);
      return v;
    case 'object': {
      if (v instanceof Uint8Array) return { $bytes: bytesToBase64(v) };
      if (Array.isArray(v)) return v.map(encodeValue);
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null)
        invalid('only Uint8Array, arrays and plain objects are supported');
      const out: { [key: string]: JsonValue } = {};
      for (const k of Object.keys(v)) {
        const x = (v as { [key: string]: BytesOrJson })[k];
        if (x === undefined) invalid(`property "${k}" is undefined`);
        out[k] = encodeValue(x);
      }
      return isTag(out) ? { $json: out } : out;
    }
    default:
      return invalid(`a ${typeof v} has no JSON form`);
  }
}

function decodeValue(j: JsonValue): BytesOrJson {
  if (j === null || typeof j !== 'object') return j;
  if (Array.isArray(j)) return j.map(decodeValue);
  if (isTag(j)) {
    const b = j.$bytes;
    if (typeof b === 'string') return base64ToBytes(b);
    const inner = j.$json;
    if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) return decodeObject(inner);
    return decodeObject(j);
  }
  return decodeObject(j);
}

function decodeObject(j: { [key: string]: JsonValue }): { [key: string]: BytesOrJson } {
  const out: { [key: string]: BytesOrJson } = {};
  for (const k of Object.keys(j)) out[k] = decodeValue(j[k]);
  return out;
}

/**
 * The codec used when none is given. A `Uint8Array` anywhere in the command is stored as `{"$bytes":"<base64>"}`;
 * every other JSON value is stored as it is. (A plain object whose only key is `$bytes` or `$json` is wrapped as
 * `{"$json":{...}}` so that it is not mistaken for bytes.) Decoded byte arrays are plain `Uint8Array`s.
 *
 * It refuses (with `INVALID_ARGUMENT`) what JSON cannot represent: `undefined`, functions, symbols, bigints,
 * non-finite numbers and class instances other than `Uint8Array`.
 */
export const defaultCodec: Codec<BytesOrJson> = {
  encode: encodeValue,
  decode: decodeValue,
};
