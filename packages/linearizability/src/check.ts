/**
 * The checker: per-key decomposition, the memoized search, and shrinking a failure to a small window.
 *
 * @packageDocumentation
 */

import { canonicalJson, type JsonValue } from '@raft/runtime';
import { createFrontier, frontierKey } from './frontier.js';
import { pairOperations } from './history.js';
import {
  ABSENT,
  ANY,
  type Budget,
  createSearch,
  FRESH,
  type KeyOp,
  Kind,
  NO_PREV,
  type SearchResult,
} from './search.js';
import type { HistoryEvent, Operation } from './types.js';

/** The overall answer. `unknown` means a budget ran out before any key failed. */
export type Verdict = 'linearizable' | 'not-linearizable' | 'unknown';

/** The value a key holds before the first operation: `absent`, or `any` (for a window cut from a longer history). */
export type InitialState = 'absent' | 'any';

/** Options for {@link checkHistory} and {@link checkOperations}. */
export interface CheckOptions {
  /** Wall-clock budget for the whole search, in ms (keys left when it runs out are `unknown`). Default 60 000. */
  readonly timeLimitMs?: number;
  /** Search steps allowed per key before it is `unknown`. Default 20 000 000. */
  readonly maxStepsPerKey?: number;
  /** Shrink each failing key to a minimal window (default true). */
  readonly shrink?: boolean;
  /** Budget for shrinking one failing key, in ms. Default 10 000. */
  readonly shrinkTimeLimitMs?: number;
  /** The value every key holds before the history starts. Default `absent`. */
  readonly initial?: InitialState;
}

/**
 * A small set of operations on one key that cannot be linearized on its own, which proves the whole history
 * cannot either. It is the ops of a time window `[from, to]`: the history is cut after `to` (operations still
 * running there count as `info`) and before `from` at a quiescent point (no completed operation spans it, so the
 * key's value there is some value: `initial` is `any`), and then operations whose removal cannot help
 * (completed reads and compare-and-sets that did not apply) are dropped while it still fails. It is minimal for
 * those steps, not the smallest failing subset: every write in the window stays, so a window that must reach far
 * back (to an info write an early operation proves took effect, or to the start of a chain of overlapping writes)
 * gives a long witness.
 */
export interface Witness {
  /** The key whose operations cannot be linearized. */
  readonly key: string;
  /**
   * What the key holds when the window starts: `absent`, or `any` when the window was cut after the history's start
   * (or the check assumed `any`), in which case no starting value at all makes these operations linearizable.
   */
  readonly initial: InitialState;
  /** Start of the window (the earliest invocation kept). */
  readonly from: number;
  /** End of the window (the last completion kept). */
  readonly to: number;
  /** The operations, in invocation order, as the window sees them (possibly turned into `info`). */
  readonly ops: readonly Operation[];
  /** How many operations on the key the history had (before shrinking). */
  readonly keyOps: number;
}

/** Result for one key. */
export interface KeyReport {
  /** The key this report is about. */
  readonly key: string;
  /** `linearizable`, `not-linearizable`, or `unknown` when the key's search ran out of steps or time. */
  readonly verdict: Verdict;
  /** Operations on this key that the check considered (not counting `fail`). */
  readonly ops: number;
  /** Search steps taken (excluding shrinking). */
  readonly steps: number;
  /** Why the verdict is `unknown`. */
  readonly reason?: string;
  /** The operation whose completion the deepest partial linearization could not get past. */
  readonly stuck?: Operation;
  /** The shrunk failing window: only when `verdict` is `not-linearizable` and shrinking was not turned off. */
  readonly witness?: Witness;
}

/** What {@link checkHistory} found. `witness` is the first failing key's witness. */
export interface CheckResult {
  /**
   * `not-linearizable` if any key fails; else `unknown` if any key's search ran out of budget; else `linearizable`.
   */
  readonly verdict: Verdict;
  /** Operations in the history, and how they ended. */
  readonly ops: number;
  /** Operations by status; `ok + fail + info = ops` (an operation never completed counts as `info`). */
  readonly counts: { readonly ok: number; readonly fail: number; readonly info: number };
  /** One report per key that has operations other than `fail`, sorted by key. */
  readonly keys: readonly KeyReport[];
  /** Search steps taken over all keys (the sum of the keys' `steps`; shrinking not included). */
  readonly steps: number;
  /** Wall-clock time of the whole check, shrinking included, in ms. */
  readonly elapsedMs: number;
  /** The first failing key's (in key order) shrunk witness; absent when nothing failed or shrinking was off. */
  readonly witness?: Witness;
}

/**
 * Checks a history (events as read by {@link parseHistory}) for linearizability against the key-value model.
 *
 * @throws HistoryFormatError when events do not pair up.
 */
export function checkHistory(events: readonly HistoryEvent[], options: CheckOptions = {}): CheckResult {
  return checkOperations(pairOperations(events), options);
}

/** Checks paired operations (see {@link pairOperations}) for linearizability against the key-value model. */
export function checkOperations(ops: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const started = Date.now();
  const deadline = started + (options.timeLimitMs ?? 60_000);
  const maxSteps = options.maxStepsPerKey ?? 20_000_000;
  const initial = options.initial ?? 'absent';
  const counts = { ok: 0, fail: 0, info: 0 };
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    counts[op.status]++;
    if (op.status === 'fail') continue; // definitely did not happen
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, (list = []));
    list.push(op);
  }
  const keys: KeyReport[] = [];
  let steps = 0;
  for (const [key, list] of [...byKey.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    list.sort((a, b) => a.call - b.call || a.id - b.id);
    const r = runKey(list, initial, { maxSteps, deadline }, FIRST_CHECK_DFS_SLICE_MS);
    steps += r.steps;
    if (r.kind === 'ok') {
      keys.push({ key, verdict: 'linearizable', ops: list.length, steps: r.steps });
    } else if (r.kind === 'unknown') {
      const reason =
        r.reason === 'steps'
          ? `search exceeded ${maxSteps} steps`
          : `time limit of ${options.timeLimitMs ?? 60_000} ms`;
      keys.push({ key, verdict: 'unknown', ops: list.length, steps: r.steps, reason });
    } else {
      const stuck = list.find((o) => o.id === r.stuck);
      const witness =
        options.shrink === false
          ? undefined
          : shrink(key, list, initial, Date.now() + (options.shrinkTimeLimitMs ?? 10_000), maxSteps);
      keys.push({ key, verdict: 'not-linearizable', ops: list.length, steps: r.steps, stuck, witness });
    }
  }
  return resultOf(ops.length, counts, keys, steps, Date.now() - started);
}

/**
 * A check's result from its per-key reports: not linearizable if any key is (with the first such key's witness),
 * else unknown if any key is, else linearizable.
 */
export function resultOf(
  ops: number,
  counts: CheckResult['counts'],
  keys: KeyReport[],
  steps: number,
  elapsedMs: number,
): CheckResult {
  const failed = keys.find((k) => k.verdict === 'not-linearizable');
  const verdict: Verdict = failed
    ? 'not-linearizable'
    : keys.some((k) => k.verdict === 'unknown')
      ? 'unknown'
      : 'linearizable';
  return { verdict, ops, counts, keys, steps, elapsedMs, ...(failed?.witness ? { witness: failed.witness } : {}) };
}

/**
 * A text equal for two values exactly when their canonical JSON is: a string is itself behind a \u0001 (no canonical
 * JSON text starts with that character, and strings are the common case, which then skip JSON.stringify's escaping
 * scan); anything else is its canonical JSON. `null` and `undefined` give `'null'`.
 */
function valueKey(v: JsonValue | undefined): string {
  return typeof v === 'string' ? `\u0001${v}` : canonicalJson(v);
}

/**
 * Compiles one key's operations to the integer model. Values nobody observes (no read returned them, no cas
 * expected them, no put reported them as previous) are all mapped to {@link FRESH}: the model cannot tell them
 * apart, and merging them is what makes info puts of unique values cheap.
 */
export function compileKey(ops: readonly Operation[], initial: InitialState): { kops: KeyOp[]; init: number } {
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.f === 'get' && op.status === 'ok') observed.add(valueKey(op.output));
    if (op.f === 'cas') observed.add(valueKey(op.expected));
    if (op.prev !== undefined && op.status === 'ok') observed.add(valueKey(op.prev));
  }
  const ids = new Map<string, number>();
  const id = (v: JsonValue | undefined): number => {
    const c = valueKey(v);
    if (c === 'null') return ABSENT;
    if (!observed.has(c)) return FRESH;
    let x = ids.get(c);
    if (x === undefined) ids.set(c, (x = FRESH + 1 + ids.size));
    return x;
  };
  const kops: KeyOp[] = [];
  // One object shape for every KeyOp (no spreads): the searches read these in their hot loops.
  const push = (op: Operation, kind: Kind, a: number, b: number, info: boolean): void => {
    kops.push({ kind, a, b, info, call: op.call, ret: info ? Number.POSITIVE_INFINITY : op.ret, src: op.id });
  };
  for (const op of ops) {
    const info = op.status === 'info';
    switch (op.f) {
      case 'get':
        if (!info) push(op, Kind.Get, id(op.output), 0, false);
        break; // a read with unknown outcome constrains nothing
      case 'put':
      case 'delete':
        push(
          op,
          Kind.Put,
          op.f === 'put' ? id(op.value) : ABSENT,
          !info && op.prev !== undefined ? id(op.prev) : NO_PREV,
          info,
        );
        break;
      case 'cas': {
        const kind = info ? Kind.CasInfo : op.applied === false ? Kind.CasNotApplied : Kind.CasApplied;
        push(op, kind, id(op.expected), id(op.value), info);
        break;
      }
    }
  }
  return { kops, init: initial === 'any' ? ANY : ABSENT };
}

/**
 * Two searches, alternated in time slices that double each round until one decides: the depth-first search (fast
 * when the history is linearizable: it usually walks straight through, and with few distinct values its memo
 * collapses the combinations), and the exhaustive frontier search (proves failing histories with many info
 * operations, whose combinations the depth-first search would explore one by one). Both resume where they stopped,
 * so the total time stays within about twice the faster search's. Slices are wall-clock time because a step of the
 * two searches costs very different amounts (a frontier step, from 1 to over 50 depth-first steps); `maxSteps`
 * still bounds their steps together. The depth-first search's first slice is `firstDfsSliceMs` (see
 * {@link FIRST_CHECK_DFS_SLICE_MS}).
 */
function runKey(
  ops: readonly Operation[],
  initial: InitialState,
  budget: Budget,
  firstDfsSliceMs = FIRST_SLICE_MS,
): SearchResult {
  const { kops, init } = compileKey(ops, initial);
  const dfs = createSearch(kops, init);
  const frontier = createFrontier(kops, init);
  let slice = FIRST_SLICE_MS;
  let dfsSteps = 0;
  let frontierSteps = 0;
  let frontierUseful = true;
  for (let round = 0; ; round++) {
    const left = () => budget.maxSteps - dfsSteps - frontierSteps;
    const sliceEnd = (): number => Math.min(budget.deadline, Date.now() + slice);
    const dfsEnd = round === 0 ? Math.min(budget.deadline, Date.now() + firstDfsSliceMs) : sliceEnd();
    const quick = dfs({ maxSteps: dfsSteps + left(), deadline: dfsEnd });
    dfsSteps = quick.steps;
    const outOfBudget = () => left() <= 0 || Date.now() >= budget.deadline;
    if (quick.kind !== 'unknown' || outOfBudget()) {
      return quick.kind !== 'unknown' ? { ...quick, steps: dfsSteps + frontierSteps } : unknownNow();
    }
    if (frontierUseful) {
      const full = frontier({ maxSteps: frontierSteps + left(), deadline: sliceEnd() });
      frontierSteps = full.steps;
      if (full.kind !== 'unknown') return { ...full, steps: dfsSteps + frontierSteps };
      if (outOfBudget()) return unknownNow();
      // Its frontier outgrew the memory bound, which more time will not fix.
      if (full.reason === 'memory') frontierUseful = false;
    }
    slice *= 2;
  }
  function unknownNow(): SearchResult {
    const steps = dfsSteps + frontierSteps;
    return { kind: 'unknown', steps, reason: steps >= budget.maxSteps ? 'steps' : 'time' };
  }
}

/** The first time slice of each search, in ms: most keys are decided by the depth-first search well within it. */
const FIRST_SLICE_MS = 10;

/**
 * The depth-first search's first slice when checking a history (not a shrinking probe), in ms. With reads placed
 * at once it decides the benchmark's linearizable single-key shapes in 30 to 70 ms of its own time (some of it
 * still unoptimised code), and a frontier slice in between would only delay that: with 10 ms first slices those
 * keys took 2 to 3.5 times as long as the depth-first search alone. A failing key pays this once; shrinking
 * probes, many of which fail, keep the short first slice.
 */
const FIRST_CHECK_DFS_SLICE_MS = 100;

/** `op` as seen by a history cut at time `t`: still running then, so its outcome is unknown. */
function asInfo(op: Operation): Operation {
  const { output: _o, prev: _p, applied: _a, completeLine: _l, completeTime: _t, ...rest } = op;
  return { ...rest, status: 'info', ret: Number.POSITIVE_INFINITY };
}

/**
 * Droppable from a failing set without making it pass: it completed and changed nothing (a read, or a cas that did
 * not apply), so it only adds constraints. Info operations are not droppable: their effect may be what explains
 * another operation.
 */
function droppable(op: Operation): boolean {
  return op.status === 'ok' && (op.f === 'get' || (op.f === 'cas' && op.applied === false));
}

/**
 * Finds a small failing window for one key (see {@link Witness}). Both cuts are monotone (a failing window stays
 * failing when widened), so each is a binary search; every probe is a full search of the smaller window.
 */
function shrink(
  key: string,
  ops: readonly Operation[],
  initial: InitialState,
  deadline: number,
  maxSteps: number,
): Witness {
  const fails = (sub: readonly Operation[], init: InitialState): boolean =>
    runKey(sub, init, { maxSteps, deadline }).kind === 'fail';

  // 1. The earliest end: cut after the completion at `t1`; operations still running then become info.
  const ends = [...new Set(ops.filter((o) => o.status === 'ok').map((o) => o.ret))].sort((a, b) => a - b);
  const cutAfter = (t1: number): Operation[] =>
    ops.filter((o) => o.call <= t1).map((o) => (o.status === 'info' || o.ret <= t1 ? o : asInfo(o)));
  let lo = 0;
  let hi = ends.length - 1;
  // The frontier search walks the completions in time order and fails at the first one that no linearization of
  // what came before can explain, so the cut after its time is the earliest failing end: one frontier run and two
  // probes (it fails, the end before it does not) replace the binary search's dozen probes of long prefixes. If
  // the frontier cannot decide, or a probe disagrees, the binary search runs on what is left of the range.
  const compiled = compileKey(ops, initial);
  const first = frontierKey(compiled.kops, compiled.init, { maxSteps, deadline });
  if (first.kind === 'fail') {
    const at = ends.indexOf(ops.find((o) => o.id === first.stuck)?.ret ?? Number.NaN);
    if (at >= 0 && fails(cutAfter(ends[at]), initial)) {
      hi = at;
      if (at === 0 || !fails(cutAfter(ends[at - 1]), initial)) lo = at;
    }
  }
  while (lo < hi && Date.now() < deadline) {
    const mid = (lo + hi) >> 1;
    if (fails(cutAfter(ends[mid]), initial)) hi = mid;
    else lo = mid + 1;
  }
  const to = ends.length > 0 ? ends[hi] : Number.POSITIVE_INFINITY;
  let window = ends.length > 0 ? cutAfter(to) : [...ops];

  // 2. The latest start: an invocation time t0 that no completed write spans (every put, delete or applied cas
  // invoked before t0 has returned before it). Every completed op invoked before t0 is dropped: the writes all
  // precede what is kept, so the value at t0 is some value (hence initial "any"), and reads spanning t0 are dropped
  // outright, which is always safe (a read only adds constraints). Info ops invoked before t0 stay: they may take
  // effect later.
  const starts = [...new Set(window.map((o) => o.call))].sort((a, b) => a - b);
  let maxRetBefore = Number.NEGATIVE_INFINITY;
  const quiescent: number[] = [];
  let j = 0;
  const byCall = [...window].sort((a, b) => a.call - b.call);
  for (const t0 of starts) {
    while (j < byCall.length && byCall[j].call < t0) {
      if (byCall[j].status !== 'info' && !droppable(byCall[j])) maxRetBefore = Math.max(maxRetBefore, byCall[j].ret);
      j++;
    }
    if (maxRetBefore < t0) quiescent.push(t0);
  }
  const cutBefore = (idx: number): [Operation[], InitialState] => {
    if (idx === 0) return [window, initial];
    const t0 = quiescent[idx];
    return [window.filter((o) => o.status === 'info' || o.call >= t0), 'any'];
  };
  lo = 0;
  hi = quiescent.length - 1;
  while (lo < hi && Date.now() < deadline) {
    const mid = (lo + hi + 1) >> 1;
    const [sub, init] = cutBefore(mid);
    if (fails(sub, init)) lo = mid;
    else hi = mid - 1;
  }
  let [sub, init] = quiescent.length > 0 ? cutBefore(lo) : [window, initial];
  window = sub;

  // 3. Drop operations whose removal can only make a history easier to linearize, while it still fails.
  if (window.length <= 400) {
    for (const op of [...window]) {
      if (Date.now() >= deadline) break;
      if (!droppable(op)) continue;
      const without = window.filter((o) => o !== op);
      if (fails(without, init)) window = without;
    }
  }
  // With only info ops before it, a window needs no "any" start: report the tighter claim when it holds.
  if (init === 'any' && initial === 'absent' && window.length > 0) {
    const first = Math.min(...window.map((o) => o.call));
    if (!ops.some((o) => o.status !== 'info' && o.call < first) && fails(window, 'absent')) init = 'absent';
  }
  window.sort((a, b) => a.call - b.call || a.id - b.id);
  const from = window.length > 0 ? window[0].call : 0;
  return { key, initial: init, from, to, ops: window, keyOps: ops.length };
}

/** One operation as a human-readable line, e.g. `p3 put "k" "v5" ok prev=null [t 100 .. 130] (lines 7-9)`. */
export function formatOperation(op: Operation): string {
  const j = (v: JsonValue | undefined) => JSON.stringify(v ?? null);
  let what: string;
  switch (op.f) {
    case 'get':
      what = `get ${j(op.key)}${op.status === 'ok' ? ` -> ${j(op.output)}` : ''}`;
      break;
    case 'put':
      what = `put ${j(op.key)} ${j(op.value)}${op.prev !== undefined ? ` (prev ${j(op.prev)})` : ''}`;
      break;
    case 'delete':
      what = `delete ${j(op.key)}${op.prev !== undefined ? ` (prev ${j(op.prev)})` : ''}`;
      break;
    case 'cas':
      what = `cas ${j(op.key)} ${j(op.expected)} -> ${j(op.value)}${op.status === 'ok' ? (op.applied === false ? ' not applied' : ' applied') : ''}`;
      break;
  }
  const end = op.ret === Number.POSITIVE_INFINITY ? 'inf' : String(op.ret);
  const lines = op.completeLine !== undefined ? `lines ${op.invokeLine},${op.completeLine}` : `line ${op.invokeLine}`;
  return `p${op.process} ${what} ${op.status} [t ${op.call} .. ${end}] (${lines})`;
}

/** A witness as text: what it claims, then one line per operation. */
export function formatWitness(w: Witness): string {
  const start = w.initial === 'absent' ? 'starting from an absent value' : 'starting from any value';
  const head = `key ${JSON.stringify(w.key)}: these ${w.ops.length} of its ${w.keyOps} operations cannot be linearized (${start}; window ${w.from} .. ${w.to}):`;
  return [head, ...w.ops.map((o) => `  ${formatOperation(o)}`)].join('\n');
}

/** A check result as a short text report (verdict, counts, per-key problems, the witness). */
export function formatResult(r: CheckResult): string {
  const lines = [
    `verdict: ${r.verdict}`,
    `operations: ${r.ops} (ok ${r.counts.ok}, fail ${r.counts.fail}, info ${r.counts.info}) on ${r.keys.length} keys; ${r.steps} search steps in ${Math.round(r.elapsedMs)} ms`,
  ];
  for (const k of r.keys) {
    if (k.verdict === 'unknown') lines.push(`key ${JSON.stringify(k.key)}: unknown (${k.reason})`);
    if (k.verdict === 'not-linearizable') {
      lines.push(`key ${JSON.stringify(k.key)}: NOT linearizable`);
      if (k.stuck) lines.push(`  could not get past: ${formatOperation(k.stuck)}`);
      if (k.witness) lines.push(formatWitness(k.witness));
    }
  }
  return lines.join('\n');
}
