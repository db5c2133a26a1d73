/**
 * The entries of an AppendEntries in their own binary layout, inside a MessagePack extension of the peer frame.
 *
 * Why not plain MessagePack maps: a leader sends the same new entries to every follower in the same turn, and at
 * high load those entries are most of what it encodes and most of what a follower decodes. Packing them once per
 * turn (the next follower reuses the bytes) and as a flat layout (no key names per entry; strings written and read
 * by Node's native UTF-8 code instead of a JavaScript loop that allocates per character) cut the leader's
 * encoding and, above all, the followers' decoding garbage. Measured numbers are in docs/benchmarks.md.
 *
 * Layout, little-endian: `u32 count`, then per entry `u8 kind, f64 index, f64 term` and
 * - command (kind 0): `u8 flags (1: clientId, 2: seq), u32 length + UTF-8 input, [u32 length + UTF-8 clientId],
 *   [f64 seq]`;
 * - noop (kind 1): nothing more;
 * - config (kind 2): `u32 length + UTF-8 JSON of the configuration`.
 * A decoded entry is checked like any other (`checkMessage`), so a hostile layout is refused, never trusted.
 *
 * @packageDocumentation
 */

import type { Entry } from '@raft/core';
import type { Command } from '@raft/runtime';

const KIND_COMMAND = 0;
const KIND_NOOP = 1;
const KIND_CONFIG = 2;
const HAS_CLIENT = 1;
const HAS_SEQ = 2;

/** Raised when packed entries are cut short or name an unknown kind (the frame then counts as a bad payload). */
export class PackedEntriesError extends Error {
  /** Always `BAD_PACKED_ENTRIES`. */
  readonly code = 'BAD_PACKED_ENTRIES';

  constructor(message: string) {
    super(message);
    this.name = 'PackedEntriesError';
  }
}

/** The entries of one AppendEntries, encoded once (see the module comment). */
export class PackedEntries {
  constructor(
    /** The encoded entries. */
    readonly bytes: Uint8Array,
    /** The entries they encode. */
    readonly entries: readonly Entry<Command>[],
  ) {}
}

let lastPacked: PackedEntries | null = null;

/** Whether `a` and `b` hold the same entry objects (a pointer comparison per entry, far cheaper than encoding). */
function sameEntries(a: readonly Entry<Command>[], b: readonly Entry<Command>[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The packed form of `entries`: reused when the previous call packed the same entry objects (the next follower of
 * the same turn), encoded otherwise.
 */
export function packEntries(entries: readonly Entry<Command>[]): PackedEntries {
  const prev = lastPacked;
  if (prev !== null && sameEntries(prev.entries, entries)) return prev;
  const n = entries.length;
  const configs: (string | undefined)[] = new Array(n);
  // An upper bound of the size: UTF-8 takes at most 3 bytes per UTF-16 code unit.
  let bound = 4;
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    bound += 17;
    if (e.type === 'command') {
      bound += 1 + 4 + 3 * e.command.input.length;
      if (e.command.clientId !== undefined) bound += 4 + 3 * e.command.clientId.length;
      if (e.command.seq !== undefined) bound += 8;
    } else if (e.type === 'config') {
      const json = JSON.stringify(e.config);
      configs[i] = json;
      bound += 4 + 3 * json.length;
    }
  }
  const buf = Buffer.allocUnsafe(bound);
  let p = buf.writeUInt32LE(n, 0);
  const str = (s: string) => {
    const len = buf.write(s, p + 4, 'utf8');
    buf.writeUInt32LE(len, p);
    p += 4 + len;
  };
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    buf[p] = e.type === 'command' ? KIND_COMMAND : e.type === 'noop' ? KIND_NOOP : KIND_CONFIG;
    p = buf.writeDoubleLE(e.index, p + 1);
    p = buf.writeDoubleLE(e.term, p);
    if (e.type === 'command') {
      const c = e.command;
      buf[p++] = (c.clientId !== undefined ? HAS_CLIENT : 0) | (c.seq !== undefined ? HAS_SEQ : 0);
      str(c.input);
      if (c.clientId !== undefined) str(c.clientId);
      if (c.seq !== undefined) p = buf.writeDoubleLE(c.seq, p);
    } else if (e.type === 'config') str(configs[i] as string);
  }
  const packed = new PackedEntries(buf.subarray(0, p), entries);
  lastPacked = packed;
  return packed;
}

/**
 * Decode packed entries. Values are not checked here (the message check does that); only the layout is.
 *
 * @throws PackedEntriesError when the data is cut short, has bytes left over, or names an unknown kind.
 */
export function unpackEntries(data: Uint8Array): unknown[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const end = buf.length;
  const need = (p: number, k: number) => {
    if (p + k > end) throw new PackedEntriesError('packed entries are cut short');
  };
  need(0, 4);
  const n = buf.readUInt32LE(0);
  // Each entry takes at least 17 bytes: a count that cannot fit is refused before anything is allocated for it.
  if (n * 17 > end) throw new PackedEntriesError('packed entries are cut short');
  let p = 4;
  const str = (): string => {
    need(p, 4);
    const len = buf.readUInt32LE(p);
    need(p + 4, len);
    const s = buf.toString('utf8', p + 4, p + 4 + len);
    p += 4 + len;
    return s;
  };
  const out: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) {
    need(p, 17);
    const kind = buf[p];
    const index = buf.readDoubleLE(p + 1);
    const term = buf.readDoubleLE(p + 9);
    p += 17;
    if (kind === KIND_COMMAND) {
      need(p, 1);
      const flags = buf[p++];
      const command: { input: string; clientId?: string; seq?: number } = { input: str() };
      if (flags & HAS_CLIENT) command.clientId = str();
      if (flags & HAS_SEQ) {
        need(p, 8);
        command.seq = buf.readDoubleLE(p);
        p += 8;
      }
      out[i] = { term, index, type: 'command', command };
    } else if (kind === KIND_NOOP) out[i] = { term, index, type: 'noop' };
    else if (kind === KIND_CONFIG) {
      const text = str();
      let config: unknown;
      try {
        config = JSON.parse(text);
      } catch {
        throw new PackedEntriesError('a packed configuration is not JSON');
      }
      out[i] = { term, index, type: 'config', config };
    } else throw new PackedEntriesError(`unknown packed entry kind ${kind}`);
  }
  if (p !== end) throw new PackedEntriesError('packed entries have bytes left over');
  return out;
}
