/**
 * Reading, writing and pairing JSON Lines histories (format: docs/history-format.md).
 *
 * @packageDocumentation
 */

import { isAscii } from 'node:buffer';
import { appendFileSync, closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import type { JsonValue } from '@raft/runtime';
import {
  type EventType,
  type HistoryEvent,
  HistoryFormatError,
  type Operation,
  type OpFn,
  type ProcessId,
} from './types.js';

const FNS: readonly OpFn[] = ['put', 'get', 'cas', 'delete'];
const TYPES: readonly EventType[] = ['invoke', 'ok', 'fail', 'info'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates one parsed JSON object as a {@link HistoryEvent}.
 *
 * @throws HistoryFormatError naming the line and the problem.
 */
export function validateEvent(raw: unknown, line = 0): HistoryEvent {
  if (!isObject(raw)) throw new HistoryFormatError('an event must be a JSON object', line);
  const { process, type, f, key, time } = raw;
  if (typeof process !== 'number' && typeof process !== 'string') {
    throw new HistoryFormatError('"process" must be a number or a string', line);
  }
  if (typeof type !== 'string' || !TYPES.includes(type as EventType)) {
    throw new HistoryFormatError(`"type" must be one of ${TYPES.join(', ')}`, line);
  }
  if (typeof f !== 'string' || !FNS.includes(f as OpFn)) {
    throw new HistoryFormatError(`"f" must be one of ${FNS.join(', ')}`, line);
  }
  if (typeof key !== 'string') throw new HistoryFormatError('"key" must be a string', line);
  if (typeof time !== 'number' || !Number.isFinite(time)) {
    throw new HistoryFormatError('"time" must be a finite number', line);
  }
  if (raw.applied !== undefined && typeof raw.applied !== 'boolean') {
    throw new HistoryFormatError('"applied" must be a boolean', line);
  }
  if (type === 'invoke' && f === 'cas' && (!Array.isArray(raw.value) || raw.value.length !== 2)) {
    throw new HistoryFormatError('a cas invocation needs "value": [expected, new]', line);
  }
  return raw as unknown as HistoryEvent;
}

/**
 * Parses JSON Lines text into events. Blank lines are skipped.
 *
 * @throws HistoryFormatError on a line that is not JSON or not a valid event.
 */
export function parseHistory(text: string): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  forEachEvent(text, (e) => {
    out.push(e);
  });
  return out;
}

/**
 * Calls `visit` with each event of JSON Lines `text` and its 1-based line number (blank lines skipped); the first
 * line of `text` is line `firstLine`. Returns the number of lines in `text` (a last line without a newline counts).
 */
function forEachEvent(text: string, visit: (e: HistoryEvent, line: number) => void, firstLine = 1): number {
  // Line by line with indexOf rather than split + trim: no array of every line, no trimmed copies (JSON.parse accepts
  // the surrounding whitespace itself, a CR of CRLF included); a blank line is the rare case that fails to parse.
  let lineNo = firstLine - 1;
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    lineNo++;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      if (line.trim() === '') continue;
      throw new HistoryFormatError(`not JSON (${(e as Error).message})`, lineNo);
    }
    visit(validateEvent(raw, lineNo), lineNo);
  }
  return lineNo - firstLine + 1;
}

/**
 * Bytes of a file as text. A history is nearly always ASCII, and then decoding it as Latin-1 gives the same string
 * several times faster than UTF-8 decoding (measured: 17 MB in 40 ms against 270 ms).
 */
const decode = (bytes: Buffer): string => bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');

/** How much of a file {@link forEachFileEvent} reads at a time (grown for a longer line). */
const CHUNK_BYTES = 1 << 16;

/**
 * Calls `visit` with each event of a JSON Lines file, read in chunks of whole lines through one reused buffer
 * rather than as one Buffer and one string of the whole file: where touching fresh memory is slow (the virtual
 * machine the benchmarks run on takes some 15 µs to fault in each new 4 KiB page), reading and decoding a 17 MB
 * history whole took 130 to 165 ms, and the whole check of 100,000 operations went from 1,155 to 864 ms (best of 7)
 * with a reused 64 KiB buffer. A chunk ends at its last newline, so a UTF-8 sequence is never split (a newline byte
 * never occurs inside one).
 */
function forEachFileEvent(path: string, visit: (e: HistoryEvent, line: number) => void): void {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let held = 0; // bytes at the front of buf carried over from the last read: the start of an unfinished line
    let line = 1;
    for (;;) {
      if (held === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, held);
        buf = bigger;
      }
      const n = readSync(fd, buf, held, buf.length - held, null);
      const filled = held + n;
      if (n === 0) {
        if (filled > 0) forEachEvent(decode(buf.subarray(0, filled)), visit, line);
        return;
      }
      const lastNewline = buf.lastIndexOf(10, filled - 1);
      if (lastNewline === -1) {
        held = filled;
        continue;
      }
      // The text up to and including the last newline: every line in it is whole.
      line += forEachEvent(decode(buf.subarray(0, lastNewline + 1)), visit, line);
      held = filled - lastNewline - 1;
      buf.copy(buf, 0, lastNewline + 1, filled);
    }
  } finally {
    closeSync(fd);
  }
}

/** One event as a JSON line (no trailing newline), fields in the documented order. */
export function formatEvent(e: HistoryEvent): string {
  const o: Record<string, unknown> = { process: e.process, type: e.type, f: e.f, key: e.key };
  if (e.value !== undefined) o.value = e.value;
  if (e.prev !== undefined) o.prev = e.prev;
  if (e.applied !== undefined) o.applied = e.applied;
  o.time = e.time;
  if (e.error !== undefined) o.error = e.error;
  return JSON.stringify(o);
}

/** Events as JSON Lines text (each line ends with a newline). */
export function formatHistory(events: readonly HistoryEvent[]): string {
  return events.map((e) => `${formatEvent(e)}\n`).join('');
}

/** Reads a JSON Lines history file. */
export function readHistoryFile(path: string): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  forEachFileEvent(path, (e) => {
    out.push(e);
  });
  return out;
}

/**
 * Reads a JSON Lines history file straight into operations: {@link pairOperations} of {@link readHistoryFile}, but
 * each event is paired as it is read, so completions are dropped at once instead of all events being kept until
 * the end (most of the garbage collector's work on a large file). Errors name the file's line (blank lines count);
 * the first problem in file order is reported, whether malformed or unpaired.
 *
 * @throws HistoryFormatError on a malformed line or events that do not pair up.
 */
export function readOperationsFile(path: string): Operation[] {
  const pairs = new Pairer();
  forEachFileEvent(path, (e, line) => pairs.add(e, line));
  return pairs.finish();
}

/** Writes a JSON Lines history file (replacing it). */
export function writeHistoryFile(path: string, events: readonly HistoryEvent[]): void {
  writeFileSync(path, formatHistory(events));
}

/** Appends events to a JSON Lines history file, so a long run can stream its history to disk. */
export function appendHistoryFile(path: string, events: readonly HistoryEvent[]): void {
  appendFileSync(path, formatHistory(events));
}

/**
 * Pairs invocations with completions, per process, into {@link Operation}s (ordered by invocation).
 * An invocation never completed counts as `info`. Events are taken in the given order (the file order);
 * a completion must come after its invocation, and a process may have at most one operation outstanding.
 *
 * @throws HistoryFormatError when events do not pair up (a completion with no invocation, mismatched f or key,
 *   a second invocation while one is outstanding, or a completion earlier in time than its invocation).
 */
export function pairOperations(events: readonly HistoryEvent[]): Operation[] {
  const pairs = new Pairer();
  for (let i = 0; i < events.length; i++) pairs.add(events[i], i + 1);
  return pairs.finish();
}

/** An invocation waiting for its completion. */
interface Pending {
  readonly inv: HistoryEvent;
  readonly line: number;
  readonly slot: number;
}

/** Pairs events fed one at a time, in file order (see {@link pairOperations}). */
class Pairer {
  private readonly pending = new Map<ProcessId, Pending>();
  private readonly ops: (Operation | undefined)[] = [];

  /** Takes the next event; `line` is what errors and operations report as its line. */
  add(e: HistoryEvent, line: number): void {
    if (e.type === 'invoke') {
      if (this.pending.has(e.process)) {
        throw new HistoryFormatError(`process ${e.process} invoked a second operation while one is outstanding`, line);
      }
      this.pending.set(e.process, { inv: e, line, slot: this.ops.length });
      this.ops.push(undefined);
      return;
    }
    const p = this.pending.get(e.process);
    if (!p) throw new HistoryFormatError(`process ${e.process} completed an operation it never invoked`, line);
    if (p.inv.f !== e.f || p.inv.key !== e.key) {
      throw new HistoryFormatError(
        `completion ${e.f} ${JSON.stringify(e.key)} does not match the invocation ${p.inv.f} ${JSON.stringify(p.inv.key)} on line ${p.line}`,
        line,
      );
    }
    if (e.time < p.inv.time) throw new HistoryFormatError('completion time is before its invocation time', line);
    this.pending.delete(e.process);
    this.ops[p.slot] = makeOp(p.slot, p.inv, p.line, e, line);
  }

  /** The operations; an invocation never completed becomes `info`. */
  finish(): Operation[] {
    for (const p of this.pending.values()) this.ops[p.slot] = makeOp(p.slot, p.inv, p.line, undefined, undefined);
    this.pending.clear();
    return this.ops as Operation[];
  }
}

function makeOp(
  id: number,
  inv: HistoryEvent,
  invokeLine: number,
  done: HistoryEvent | undefined,
  completeLine: number | undefined,
): Operation {
  const status = done === undefined ? 'info' : done.type === 'invoke' ? 'info' : done.type;
  const ret = status === 'info' || done === undefined ? Number.POSITIVE_INFINITY : done.time;
  // Built by assignment rather than object spreads: spreads of many small objects dominated reading large histories.
  // Optional fields stay absent (not undefined) when they do not apply.
  const casArgs = inv.f === 'cas' ? (inv.value as [JsonValue, JsonValue]) : undefined;
  const value = inv.f === 'put' ? (inv.value ?? null) : casArgs !== undefined ? casArgs[1] : null;
  const op: { -readonly [K in keyof Operation]: Operation[K] } = {
    id,
    process: inv.process,
    f: inv.f,
    key: inv.key,
    status,
    call: inv.time,
    ret,
    invokeLine,
    value,
  };
  if (completeLine !== undefined && done !== undefined) {
    op.completeLine = completeLine;
    op.completeTime = done.time;
  }
  if (casArgs !== undefined) op.expected = casArgs[0];
  if (status === 'ok' && done !== undefined) {
    if ((inv.f === 'put' || inv.f === 'delete') && done.prev !== undefined) op.prev = done.prev;
    if (inv.f === 'get') op.output = done.value ?? null;
    if (inv.f === 'cas') op.applied = done.applied ?? true;
  }
  return op;
}

/**
 * Turns operations back into events (invocation, then completion unless the operation never completed),
 * in time order. Useful to save histories built by tests or generators.
 */
export function operationsToEvents(ops: readonly Operation[]): HistoryEvent[] {
  const tagged: { e: HistoryEvent; t: number; order: number }[] = [];
  for (const op of ops) {
    const inv: HistoryEvent =
      op.f === 'put'
        ? { process: op.process, type: 'invoke', f: op.f, key: op.key, value: op.value, time: op.call }
        : op.f === 'cas'
          ? {
              process: op.process,
              type: 'invoke',
              f: op.f,
              key: op.key,
              value: [op.expected ?? null, op.value],
              time: op.call,
            }
          : { process: op.process, type: 'invoke', f: op.f, key: op.key, time: op.call };
    tagged.push({ e: inv, t: op.call, order: 0 });
    // An info operation is written with its info event when it had one; without, it stays outstanding forever.
    if (op.status === 'info' && op.completeTime === undefined) continue;
    const done: Record<string, unknown> = { process: op.process, type: op.status, f: op.f, key: op.key };
    if (op.status === 'ok') {
      if (op.f === 'get') done.value = op.output ?? null;
      if (op.f === 'put') done.value = op.value;
      if (op.prev !== undefined) done.prev = op.prev;
      if (op.f === 'cas') {
        done.value = [op.expected ?? null, op.value];
        done.applied = op.applied ?? true;
      }
    }
    const t = op.completeTime ?? op.ret;
    done.time = t;
    tagged.push({ e: done as unknown as HistoryEvent, t, order: 1 });
  }
  // Stable sort by time; at equal times invocations first, which keeps every invocation before its completion.
  return tagged
    .map((x, i) => ({ ...x, i }))
    .sort((a, b) => a.t - b.t || a.order - b.order || a.i - b.i)
    .map((x) => x.e);
}
