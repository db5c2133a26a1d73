/**
 * The key-value state machine: raftpico's example inputs in both of its README's shapes, plus compare-and-set.
 *
 * | input | output |
 * |---|---|
 * | `{"Put": [key, value]}` or `{"Put": {"key": k, "value": v}}` | the previous value, or `null` |
 * | `{"Get": key}` or `{"Get": {"key": k}}` | the value, or `null` |
 * | `{"Delete": key}` or `{"Delete": {"key": k}}` | the removed value, or `null` |
 * | `"List"` (or `{"List": null}`) | every key, sorted |
 * | `{"Cas": [key, expected, new]}` or `{"Cas": {"key", "expected", "new"}}` | `true` if the value equalled `expected` (`null` = absent) and was replaced |
 *
 * Values are any JSON.
 */

import { canonicalJson, type JsonValue } from '@raft/runtime';

/** A parsed key-value operation. */
export type KvsOp =
  | { readonly op: 'Put'; readonly key: string; readonly value: JsonValue }
  | { readonly op: 'Get'; readonly key: string }
  | { readonly op: 'Delete'; readonly key: string }
  | { readonly op: 'List' }
  | { readonly op: 'Cas'; readonly key: string; readonly expected: JsonValue; readonly value: JsonValue };

/** Whether an operation changes the store (and so must go through the log as a Command). */
export function isMutation(op: KvsOp): boolean {
  return op.op === 'Put' || op.op === 'Delete' || op.op === 'Cas';
}

/** The result of {@link parseKvsInput}: an operation, or a message saying what is wrong with the input. */
export type ParseResult = { readonly ok: true; readonly op: KvsOp } | { readonly ok: false; readonly error: string };

const OPS = ['Put', 'Get', 'Delete', 'List', 'Cas'] as const;
const fail = (error: string): ParseResult => ({ ok: false, error });
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const byKey = (a: [string, JsonValue], b: [string, JsonValue]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** Resolves on a later turn of the event loop (after pending I/O callbacks where `setImmediate` exists). */
const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    const g = globalThis as { setImmediate?: (f: () => void) => unknown };
    if (g.setImmediate !== undefined) g.setImmediate(resolve);
    else setTimeout(resolve, 0);
  });

/** A snapshot in progress: the map it reads and the values its keys had when it began, for keys changed since. */
interface Capture {
  readonly map: Map<string, JsonValue>;
  readonly before: Map<string, JsonValue>;
}

/** How many pairs {@link KvsStore.snapshotInSlices} writes between two pauses at most. */
const PAUSE_EVERY_PAIRS = 4096;

const NOT_A_SNAPSHOT = 'kvs snapshot must be a JSON array of [key, value] pairs';

/**
 * Splits the bytes of a JSON array into groups of whole elements of about `sliceBytes` each and parses every group,
 * without ever decoding the whole array into one string. The scan tracks only what JSON needs to find top-level
 * commas: nesting depth outside strings, and strings with their backslash escapes. Anything malformed ends in a
 * `JSON.parse` error or a {@link NOT_A_SNAPSHOT} TypeError.
 */
function* pairGroups(data: Uint8Array, sliceBytes: number): Generator<unknown[]> {
  const decoder = new TextDecoder();
  const parseGroup = (from: number, to: number): unknown[] => {
    const group: unknown = JSON.parse(`[${decoder.decode(data.subarray(from, to))}]`);
    if (!Array.isArray(group)) throw new TypeError(NOT_A_SNAPSHOT);
    return group;
  };
  let i = 0;
  while (i < data.length && isSpace(data[i])) i++;
  if (data[i] !== 0x5b /* [ */) throw new TypeError(NOT_A_SNAPSHOT);
  const first = i + 1;
  let start = first;
  let depth = 0;
  for (i = start; i < data.length; i++) {
    const c = data[i];
    if (c === 0x22 /* " */) {
      i = closingQuote(data, i + 1);
      continue;
    }
    if (c === 0x5b || c === 0x7b /* [ { */) depth++;
    else if (c === 0x5d || c === 0x7d /* ] } */) {
      if (depth === 0) {
        // The array's closing bracket: only whitespace may follow.
        for (let j = i + 1; j < data.length; j++) if (!isSpace(data[j])) throw new TypeError(NOT_A_SNAPSHOT);
        if (i > start) yield parseGroup(start, i);
        else if (start > first) throw new TypeError(NOT_A_SNAPSHOT); // a comma right before the bracket
        return;
      }
      depth--;
    } else if (c === 0x2c /* , */ && depth === 0 && i - start >= sliceBytes) {
      yield parseGroup(start, i);
      start = i + 1;
    }
  }
  throw new TypeError(NOT_A_SNAPSHOT);
}

/**
 * The index of the quote that ends the JSON string whose contents start at `from`. Jumps from quote to quote with
 * the native `indexOf` (the values are mostly long strings); a quote preceded by an odd number of backslashes is
 * escaped. UTF-8 continuation bytes are all >= 0x80, so a byte 0x22 or 0x5c is always that ASCII character.
 */
function closingQuote(data: Uint8Array, from: number): number {
  for (let q = data.indexOf(0x22, from); q !== -1; q = data.indexOf(0x22, q + 1)) {
    let backslashes = 0;
    while (q - 1 - backslashes >= from && data[q - 1 - backslashes] === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  throw new TypeError(NOT_A_SNAPSHOT);
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Validates and parses one input. Never throws. */
export function parseKvsInput(input: unknown): ParseResult {
  if (input === 'List') return { ok: true, op: { op: 'List' } };
  if (!isObject(input)) {
    return fail(`input must be "List" or an object with one of ${OPS.join(', ')} (got ${describe(input)})`);
  }
  // Every member parses every command: count the keys without building an array of them (the common case).
  let name = '';
  let count = 0;
  for (const k in input) {
    if (Object.hasOwn(input, k)) {
      count++;
      name = k;
    }
  }
  if (count !== 1) {
    const names = Object.keys(input);
    return fail(`input must have exactly one operation key, got ${names.length}: ${names.join(', ')}`);
  }
  const arg = input[name];
  switch (name) {
    case 'Put':
      return keyed(name, arg, PUT_FIELDS, makePut);
    case 'Get':
      return keyed(name, arg, KEY_FIELDS, makeGet);
    case 'Delete':
      return keyed(name, arg, KEY_FIELDS, makeDelete);
    case 'Cas':
      return keyed(name, arg, CAS_FIELDS, makeCas);
    case 'List':
      return arg === null || (Array.isArray(arg) && arg.length === 0)
        ? { ok: true, op: { op: 'List' } }
        : fail('List takes no argument');
    default:
      return fail(`unknown operation "${name}"; expected one of ${OPS.join(', ')}`);
  }
}

const PUT_FIELDS: readonly string[] = ['key', 'value'];
const KEY_FIELDS: readonly string[] = ['key'];
const CAS_FIELDS: readonly string[] = ['key', 'expected', 'new'];
/** Builders of operations from a key and the values after it (`values[1]`, ...). */
const makePut = (key: string, values: readonly JsonValue[]): KvsOp => ({ op: 'Put', key, value: values[1] });
const makeGet = (key: string): KvsOp => ({ op: 'Get', key });
const makeDelete = (key: string): KvsOp => ({ op: 'Delete', key });
const makeCas = (key: string, values: readonly JsonValue[]): KvsOp => ({
  op: 'Cas',
  key,
  expected: values[1],
  value: values[2],
});

/**
 * Parses the tuple form (`[key, ...rest]`, or a bare key when there is no rest) or the object form
 * (`{"key": ..., ...}`) of an operation. The object forms of raftpico's earlier README are accepted as written,
 * including a `value` field on Get and Delete, which is ignored.
 */
function keyed(
  name: string,
  arg: unknown,
  fields: readonly string[],
  make: (key: string, values: readonly JsonValue[]) => KvsOp,
): ParseResult {
  const arity = fields.length;
  let values: readonly unknown[];
  if (Array.isArray(arg)) {
    values = arg;
  } else if (isObject(arg)) {
    const ignored = name === 'Get' || name === 'Delete' ? 'value' : null;
    const extra = Object.keys(arg).filter((k) => !fields.includes(k) && k !== ignored);
    if (extra.length > 0)
      return fail(`${name} does not take field(s) ${extra.join(', ')}; expected ${fields.join(', ')}`);
    const missing = fields.filter((f) => !(f in arg));
    if (missing.length > 0) return fail(`${name} is missing field(s) ${missing.join(', ')}`);
    values = fields.map((f) => arg[f]);
  } else if (arity === 1) {
    values = [arg];
  } else {
    return fail(`${name} takes [${fields.join(', ')}] or {${fields.map((f) => `"${f}"`).join(', ')}}`);
  }
  if (values.length !== arity) {
    return fail(`${name} takes ${arity} argument(s) [${fields.join(', ')}], got ${values.length}`);
  }
  const key = values[0];
  if (typeof key !== 'string') return fail(`${name}: the key must be a string (got ${describe(key)})`);
  for (let i = 1; i < arity; i++) if (!isJson(values[i])) return fail(`${name}: values must be JSON`);
  return { ok: true, op: make(key, values as readonly JsonValue[]) };
}

function isJson(v: unknown): v is JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJson);
  if (isObject(v)) return Object.values(v).every(isJson);
  return false;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/** The replicated map. Deterministic: the same operations in the same order give the same state and outputs. */
export class KvsStore {
  private map = new Map<string, JsonValue>();
  /**
   * Snapshots in progress ({@link KvsStore.snapshotInSlices}), each with the values its keys had when it began: a
   * key's first change while a snapshot is written records the value it replaces, so the snapshot reads the state as
   * it was without copying the map.
   */
  private captures: Capture[] = [];

  /** Number of keys. */
  get size(): number {
    return this.map.size;
  }

  /** Applies one operation and returns its output. */
  execute(op: KvsOp): JsonValue {
    switch (op.op) {
      case 'Put': {
        const prev = this.map.get(op.key) ?? null;
        if (this.captures.length > 0) this.remember(op.key);
        this.map.set(op.key, op.value);
        return prev;
      }
      case 'Get':
        return this.map.get(op.key) ?? null;
      case 'Delete': {
        const prev = this.map.get(op.key) ?? null;
        if (this.captures.length > 0) this.remember(op.key);
        this.map.delete(op.key);
        return prev;
      }
      case 'List':
        return [...this.map.keys()].sort();
      case 'Cas': {
        const current = this.map.get(op.key) ?? null;
        if (canonicalJson(current) !== canonicalJson(op.expected)) return false;
        if (this.captures.length > 0) this.remember(op.key);
        this.map.set(op.key, op.value);
        return true;
      }
    }
  }

  /**
   * Before `key` changes: records its value for every snapshot in progress that has not seen it change yet. A key
   * that is not in the map now either did not exist when the snapshot began (the snapshot does not list it) or was
   * deleted since (its value then is recorded already).
   */
  private remember(key: string): void {
    for (const c of this.captures) {
      if (c.map !== this.map || c.before.has(key) || !this.map.has(key)) continue;
      c.before.set(key, this.map.get(key) as JsonValue);
    }
  }

  /** The whole map as bytes (JSON of sorted [key, value] pairs, so equal states give equal bytes). */
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.sortedPairs()));
  }

  /**
   * The same bytes as {@link KvsStore.snapshot}, produced without blocking the event loop for long.
   *
   * The state is captured when this is called, without copying the map: the keys are copied (a builtin, O(keys)),
   * and a key's first change while the snapshot is written records the value it replaces, so changes made after the
   * call do not show in the result. Values are never mutated in place (Put and Cas replace them), so sharing them is
   * safe. `pause()` is then awaited between bounded pieces of work:
   *
   * - The keys are sorted in runs of `runLength` by the builtin sort (no comparator called), one run per pause.
   *   Sorting all [key, value] pairs at once with a comparator was the longest stall a server had: 200 to 500 ms for
   *   the 140,000 keys of the benchmark's key space, during which no request was answered (issue 18, tail latency).
   * - The runs are merged (a binary heap of their heads) as the JSON is written, in slices of about `sliceBytes`
   *   characters each encoded to UTF-8 on its own, with a pause after each slice and after every 4096 pairs.
   *
   * This is what lets a server keep answering requests and heartbeats while it snapshots a large state: serialising
   * hundreds of MiB in one go blocks for seconds, long enough for followers to start an election. It also avoids
   * building one giant string, which V8 caps at about 512 MiB.
   */
  async snapshotInSlices(
    sliceBytes = 1 << 20,
    pause: () => Promise<void> = nextTurn,
    runLength = 16_384,
  ): Promise<Uint8Array> {
    // The keys now (a builtin copy: 5 ms for 140,000 keys here, where copying the Map took 125 ms); the values as
    // they are now are kept by `before` as the store changes.
    const capture: Capture = { map: this.map, before: new Map() };
    const keys = Array.from(capture.map.keys());
    this.captures.push(capture);
    try {
      await pause();
      return await this.writeSnapshot(keys, capture, sliceBytes, pause, runLength);
    } finally {
      this.captures.splice(this.captures.indexOf(capture), 1);
    }
  }

  private async writeSnapshot(
    keys: string[],
    capture: Capture,
    sliceBytes: number,
    pause: () => Promise<void>,
    runLength: number,
  ): Promise<Uint8Array> {
    const { map, before } = capture;
    // Runs of keys sorted by the builtin comparison (UTF-16 code units, the order of `<` and of snapshot()).
    const runs: string[][] = [];
    for (let start = 0; start < keys.length; start += runLength) {
      runs.push(keys.slice(start, start + runLength).sort());
      await pause();
    }
    // Merge: `heap` holds the runs not yet used up, ordered by the key at their cursor `at[run]`.
    const at = new Uint32Array(runs.length);
    const heap = runs.map((_, r) => r);
    let size = heap.length;
    const head = (r: number): string => runs[r][at[r]];
    const siftDown = (): void => {
      const r = heap[0];
      const key = head(r);
      let p = 0;
      for (;;) {
        let c = 2 * p + 1;
        if (c >= size) break;
        if (c + 1 < size && head(heap[c + 1]) < head(heap[c])) c++;
        if (!(head(heap[c]) < key)) break;
        heap[p] = heap[c];
        p = c;
      }
      heap[p] = r;
    };
    // A sorted array is a heap.
    heap.sort((x, y) => (head(x) < head(y) ? -1 : head(x) > head(y) ? 1 : 0));
    const encoder = new TextEncoder();
    const chunks: Uint8Array[] = [];
    let total = 0;
    let text = '[';
    let sincePause = 0;
    for (let written = 0; size > 0; written++) {
      const r = heap[0];
      const key = runs[r][at[r]];
      // JSON.stringify([key, value]) without the array.
      // The key's value when the snapshot began: recorded in `before` if it changed since.
      const value = before.size > 0 && before.has(key) ? before.get(key) : map.get(key);
      text += `${written === 0 ? '' : ','}[${JSON.stringify(key)},${JSON.stringify(value)}]`;
      if (++at[r] === runs[r].length) heap[0] = heap[--size];
      if (size > 1) siftDown();
      if (text.length >= sliceBytes) {
        const chunk = encoder.encode(text);
        chunks.push(chunk);
        total += chunk.length;
        text = '';
      }
      if (++sincePause >= PAUSE_EVERY_PAIRS || text.length === 0) {
        sincePause = 0;
        await pause();
      }
    }
    const last = encoder.encode(`${text}]`);
    chunks.push(last);
    total += last.length;
    if (chunks.length === 1) return last;
    const out = new Uint8Array(total);
    let pos = 0;
    for (const c of chunks) {
      out.set(c, pos);
      pos += c.length;
    }
    return out;
  }

  private sortedPairs(): [string, JsonValue][] {
    return [...this.map.entries()].sort(byKey);
  }

  /**
   * Replaces the map with a snapshot's contents. Throws on bytes that are not a snapshot (and then leaves the map as
   * it was).
   *
   * Snapshots larger than `sliceBytes` are parsed a group of pairs at a time: the bytes are scanned for the commas
   * between top-level elements and each ~`sliceBytes` group is decoded and parsed on its own. One string for the
   * whole snapshot would hit V8's string limit (about 512 MiB) long before memory runs out, and
   * {@link KvsStore.snapshotInSlices} can write snapshots larger than that.
   */
  restore(data: Uint8Array, sliceBytes = 64 << 20): void {
    const pairs: unknown[] = [];
    if (data.length > sliceBytes) {
      for (const group of pairGroups(data, sliceBytes)) pairs.push(...group);
    } else if (data.length > 0) {
      const all: unknown = JSON.parse(new TextDecoder().decode(data));
      if (!Array.isArray(all)) throw new TypeError(NOT_A_SNAPSHOT);
      for (const p of all) pairs.push(p);
    }
    const map = new Map<string, JsonValue>();
    for (const p of pairs) {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string') throw new TypeError(NOT_A_SNAPSHOT);
      map.set(p[0], p[1] as JsonValue);
    }
    this.map = map;
  }
}
