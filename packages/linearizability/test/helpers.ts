/**
 * Test helpers: a history generator from a sequential model (driven by @raft/sim's seeded `Prng`), anomaly injection,
 * a brute-force oracle.
 */

import { canonicalJson, type JsonValue } from '@raft/runtime';
import type { Prng } from '@raft/sim';
import fc from 'fast-check';
import { checkOperations } from '../src/check.js';
import type { Operation, OpFn, OpStatus } from '../src/types.js';

/** Options for {@link assertProperty}. */
export interface PropertyOptions<T> {
  /** Runs when `RAFT_LIN_RUNS` is not set (it overrides this, to soak a property locally). */
  readonly numRuns?: number;
  /** A fixed seed (a regression test pinned to a seed that once failed); `RAFT_LIN_SEED` still overrides it. */
  readonly seed?: number;
  /** Inputs tried before the generated ones (e.g. a counterexample fast-check once shrank to). */
  readonly examples?: readonly T[];
}

/**
 * Runs a fast-check property with a known seed (`RAFT_LIN_SEED` to replay, `RAFT_LIN_RUNS` to change the number of
 * runs) and, on failure, rethrows with the seed and a one-line replay command.
 */
export function assertProperty<T>(
  testName: string,
  arb: fc.Arbitrary<T>,
  pred: (v: T) => void,
  options: PropertyOptions<T> = {},
): void {
  const seed = process.env.RAFT_LIN_SEED
    ? Number(process.env.RAFT_LIN_SEED)
    : (options.seed ?? (Date.now() ^ (Math.random() * 2 ** 31)) | 0);
  const numRuns = process.env.RAFT_LIN_RUNS ? Number(process.env.RAFT_LIN_RUNS) : (options.numRuns ?? 100);
  try {
    fc.assert(
      fc.property(arb, (v) => {
        pred(v);
      }),
      { seed, numRuns, examples: options.examples ? [...options.examples].map((e) => [e] as [T]) : [] },
    );
  } catch (e) {
    const replay = `RAFT_LIN_SEED=${seed} pnpm --filter @raft/linearizability exec vitest run -t ${JSON.stringify(testName)}`;
    const cause = (e as Error).cause instanceof Error ? `\ncause: ${((e as Error).cause as Error).message}` : '';
    throw new Error(`property failed with seed ${seed}\nreplay: ${replay}\n${(e as Error).message}${cause}`);
  }
}

/** Shape of a generated history. */
export interface GenConfig {
  readonly processes: number;
  readonly keys: number;
  readonly ops: number;
  /** Chance an operation ends as info (half of them before taking effect, half after). */
  readonly infoRate: number;
  /** Chance an operation fails without taking effect. */
  readonly failRate: number;
  /** Values written: unique per write, or drawn from a few (so they repeat). */
  readonly values: 'unique' | 'few';
  /** Record the previous value on ok puts and deletes. */
  readonly recordPrev: boolean;
}

interface Running {
  readonly op: {
    id: number;
    process: number;
    f: OpFn;
    key: string;
    value: JsonValue;
    expected?: JsonValue;
    call: number;
  };
  applied: boolean;
  willBeInfo: boolean;
  result?: { output?: JsonValue; prev?: JsonValue; applied?: boolean };
}

/**
 * Simulates clients against one sequential map: each operation takes effect at one instant between its invocation
 * and completion (or never, for fail and half the info ones), so the history is linearizable by construction.
 */
export function generateHistory(rand: Prng, cfg: GenConfig): Operation[] {
  const state = new Map<string, JsonValue>();
  const procs: (Running | undefined)[] = new Array(cfg.processes).fill(undefined);
  const ops: Operation[] = [];
  const seen: JsonValue[] = [null];
  let nextValue = 0;
  let started = 0;
  let t = 0;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand.next() * xs.length)];
  const fresh = (): JsonValue => (cfg.values === 'unique' ? `v${nextValue++}` : pick(['a', 'b', 'c']));
  while (started < cfg.ops || procs.some((p) => p !== undefined)) {
    t += 1 + Math.floor(rand.next() * 3);
    const pi = Math.floor(rand.next() * cfg.processes);
    const run = procs[pi];
    if (run === undefined) {
      if (started >= cfg.ops) continue;
      const key = `k${Math.floor(rand.next() * cfg.keys)}`;
      const r = rand.next();
      const f: OpFn = r < 0.35 ? 'get' : r < 0.65 ? 'put' : r < 0.92 ? 'cas' : 'delete';
      const current = state.get(key) ?? null;
      const value = f === 'put' || f === 'cas' ? fresh() : null;
      const expected = f === 'cas' ? (rand.next() < 0.5 ? current : pick(seen)) : undefined;
      procs[pi] = {
        op: { id: started++, process: pi, f, key, value, ...(f === 'cas' ? { expected } : {}), call: t },
        applied: false,
        willBeInfo: rand.next() < cfg.infoRate,
      };
      continue;
    }
    const { op } = run;
    if (!run.applied) {
      if (rand.next() < cfg.failRate) {
        ops.push({ ...op, status: 'fail', ret: t, invokeLine: 0 });
        procs[pi] = undefined;
        continue;
      }
      if (run.willBeInfo && rand.next() < 0.5) {
        // Timed out before taking effect.
        ops.push({ ...op, status: 'info', ret: Number.POSITIVE_INFINITY, completeTime: t, invokeLine: 0 });
        procs[pi] = undefined;
        continue;
      }
      // The linearization point.
      const cur = state.get(op.key) ?? null;
      switch (op.f) {
        case 'get':
          run.result = { output: cur };
          seen.push(cur);
          break;
        case 'put':
          state.set(op.key, op.value);
          run.result = { prev: cur };
          break;
        case 'delete':
          state.delete(op.key);
          run.result = { prev: cur };
          break;
        case 'cas': {
          const applied = canonicalJson(cur) === canonicalJson(op.expected ?? null);
          if (applied) state.set(op.key, op.value);
          run.result = { applied };
          break;
        }
      }
      run.applied = true;
      continue;
    }
    const status: OpStatus = run.willBeInfo ? 'info' : 'ok';
    if (status === 'info') {
      ops.push({ ...op, status, ret: Number.POSITIVE_INFINITY, completeTime: t, invokeLine: 0 });
    } else {
      const res = run.result ?? {};
      const extra: Partial<Operation> = {};
      if (op.f === 'get') Object.assign(extra, { output: res.output });
      if ((op.f === 'put' || op.f === 'delete') && cfg.recordPrev) Object.assign(extra, { prev: res.prev });
      if (op.f === 'cas') Object.assign(extra, { applied: res.applied });
      ops.push({ ...op, ...extra, status, ret: t, completeTime: t, invokeLine: 0 });
    }
    procs[pi] = undefined;
  }
  return ops.sort((a, b) => a.id - b.id);
}

/** Kinds of anomaly {@link injectAnomaly} can add. */
export const ANOMALIES = [
  'stale-read-mid',
  'stale-read-tail',
  'cas-double-apply',
  'cas-false-when-equal',
  'read-before-write',
  'failed-write-seen',
  'info-write-undone',
  'lost-write-prev',
] as const;
/** One of {@link ANOMALIES}. */
export type Anomaly = (typeof ANOMALIES)[number];

/**
 * Returns a copy of a (linearizable, unique-valued) history with an anomaly that makes it certainly not
 * linearizable, or undefined when the history has no place for this kind (e.g. no suitable read).
 * Tail anomalies are appended after every completion, on a fresh key `k0`'s existing values so they interact with
 * the pending info operations.
 */
export function injectAnomaly(rand: Prng, ops: readonly Operation[], kind: Anomaly): Operation[] | undefined {
  const out = ops.map((o) => ({ ...o }));
  const finite = ops.filter((o) => o.ret !== Number.POSITIVE_INFINITY).map((o) => o.ret);
  const calls = ops.map((o) => o.call);
  let t = Math.max(0, ...finite, ...calls) + 10;
  let id = ops.length;
  const proc = 1000;
  const key = 'k0';
  const add = (o: Partial<Operation> & Pick<Operation, 'f' | 'status'>, len = 2): Operation => {
    const op: Operation = {
      id: id++,
      process: proc + id,
      key,
      value: null,
      call: t,
      ret: o.status === 'info' ? Number.POSITIVE_INFINITY : t + len,
      invokeLine: 0,
      ...o,
    };
    t += len + 1;
    out.push(op);
    return op;
  };
  // Values written by completed writes on k0: unique, so once overwritten by a completed write they never return.
  const written = ops
    .filter(
      (o) =>
        o.key === key &&
        o.status === 'ok' &&
        (o.f === 'put' || (o.f === 'cas' && o.applied !== false)) &&
        o.value !== null,
    )
    .map((o) => o.value);
  switch (kind) {
    case 'stale-read-mid': {
      const writes = out.filter(
        (o) => o.status === 'ok' && (o.f === 'put' || o.f === 'delete' || (o.f === 'cas' && o.applied !== false)),
      );
      const gets = out.filter((o) => o.status === 'ok' && o.f === 'get');
      for (let tries = 0; tries < 50 && gets.length > 0; tries++) {
        const g = gets[Math.floor(rand.next() * gets.length)];
        const w2s = writes.filter((w) => w.key === g.key && w.ret < g.call);
        if (w2s.length === 0) continue;
        const w2 = w2s[Math.floor(rand.next() * w2s.length)];
        const w1s = writes.filter((w) => w.key === g.key && w.ret < w2.call && w.f !== 'delete' && w.value !== null);
        if (w1s.length === 0) continue;
        const w1 = w1s[Math.floor(rand.next() * w1s.length)];
        (g as { output?: JsonValue }).output = w1.value;
        return out;
      }
      return undefined;
    }
    case 'stale-read-tail': {
      const old =
        written.length > 0
          ? written[Math.floor(rand.next() * written.length)]
          : add({ f: 'put', status: 'ok', value: 'x-old' }).value;
      add({ f: 'put', status: 'ok', value: 'x-new' });
      add({ f: 'get', status: 'ok', output: old });
      return out;
    }
    case 'cas-double-apply': {
      add({ f: 'put', status: 'ok', value: 'x-a' });
      const c1 = add({ f: 'cas', status: 'ok', expected: 'x-a', value: 'x-b', applied: true }, 6);
      // Overlapping the first: concurrent, yet both claim to have seen x-a.
      (c1 as { ret: number }).ret = t + 3;
      add({ f: 'cas', status: 'ok', expected: 'x-a', value: 'x-c', applied: true }, 6);
      return out;
    }
    case 'cas-false-when-equal': {
      add({ f: 'put', status: 'ok', value: 'x-a' });
      add({ f: 'cas', status: 'ok', expected: 'x-a', value: 'x-b', applied: false });
      add({ f: 'get', status: 'ok', output: 'x-a' });
      return out;
    }
    case 'read-before-write': {
      add({ f: 'get', status: 'ok', output: 'x-future' });
      add({ f: 'put', status: 'ok', value: 'x-future' });
      return out;
    }
    case 'failed-write-seen': {
      add({ f: 'put', status: 'fail', value: 'x-failed' });
      add({ f: 'get', status: 'ok', output: 'x-failed' });
      return out;
    }
    case 'info-write-undone': {
      add({ f: 'put', status: 'ok', value: 'x-y' });
      add({ f: 'put', status: 'info', value: 'x-z' });
      add({ f: 'get', status: 'ok', output: 'x-z' });
      add({ f: 'get', status: 'ok', output: 'x-y' });
      return out;
    }
    case 'lost-write-prev': {
      add({ f: 'put', status: 'ok', value: 'x-1' });
      add({ f: 'put', status: 'ok', value: 'x-2', prev: 'x-1' });
      // Reports x-1 as the previous value: the write of x-2 was lost.
      add({ f: 'put', status: 'ok', value: 'x-3', prev: 'x-1' });
      return out;
    }
  }
}

/**
 * Brute-force oracle for tiny histories: tries every order consistent with real time, with info operations
 * optional, against the real JSON model. Exponential; keep histories under ~8 operations.
 */
export function bruteForceLinearizable(all: readonly Operation[]): boolean {
  const ops = all.filter((o) => o.status !== 'fail' && !(o.status === 'info' && o.f === 'get'));
  const n = ops.length;
  const placed = new Array<boolean>(n).fill(false);
  const eq = (a: JsonValue | undefined, b: JsonValue | undefined) => canonicalJson(a) === canonicalJson(b);
  const apply = (s: JsonValue, o: Operation): JsonValue | undefined => {
    const info = o.status === 'info';
    switch (o.f) {
      case 'get':
        return eq(s, o.output) ? s : undefined;
      case 'put':
      case 'delete':
        if (!info && o.prev !== undefined && !eq(s, o.prev)) return undefined;
        return o.f === 'put' ? o.value : null;
      case 'cas':
        if (info) return eq(s, o.expected) ? o.value : s;
        if (o.applied === false) return eq(s, o.expected) ? undefined : s;
        return eq(s, o.expected) ? o.value : undefined;
    }
  };
  const dfs = (s: JsonValue, count: number): boolean => {
    if (ops.every((o, i) => placed[i] || o.status === 'info')) return true;
    for (let i = 0; i < n; i++) {
      if (placed[i]) continue;
      // Every completed op that returned before this one was invoked must already be placed.
      const ready = ops.every((o, j) => placed[j] || o.status === 'info' || j === i || !(o.ret < ops[i].call));
      if (!ready) continue;
      const ns = apply(s, ops[i]);
      if (ns === undefined) continue;
      placed[i] = true;
      const ok = dfs(ns, count + 1);
      placed[i] = false;
      if (ok) return true;
    }
    return false;
  };
  return dfs(null, 0);
}

/** A history as `checkOperations` sees a window that ends at time `t`: operations still running then become info. */
function asInfo(op: Operation): Operation {
  const { output: _o, prev: _p, applied: _a, completeLine: _l, completeTime: _t, ...rest } = op;
  return { ...rest, status: 'info', ret: Number.POSITIVE_INFINITY };
}

/**
 * What a witness promises besides failing on its own (see `Witness` in src/check.ts): none of the three shrinking
 * steps could take it one step further. Returns what could, or undefined. Each smaller variant is checked starting
 * from any value, the most permissive start, so a variant that still fails is a real missed shrink:
 * - dropping any one completed read or non-applying cas makes it pass;
 * - cutting it after the completion before its last one (operations still running become info) makes it pass;
 * - cutting it before the next invocation that no completed write spans (dropping the completed operations invoked
 *   earlier) makes it pass.
 * The witness's size is not bounded otherwise: a window holds every write between the anomaly and whatever forces
 * its start (a chain of overlapping writes, or an info write that a much earlier operation proves took effect).
 */
export function witnessMinimalityProblem(w: readonly Operation[]): string | undefined {
  const fails = (ops: readonly Operation[]) =>
    checkOperations(ops, { initial: 'any', shrink: false }).verdict === 'not-linearizable';
  const droppable = (o: Operation) => o.status === 'ok' && (o.f === 'get' || (o.f === 'cas' && o.applied === false));
  for (const op of w) {
    if (droppable(op) && fails(w.filter((o) => o !== op))) return `it still fails without op ${op.id}`;
  }
  const ends = [...new Set(w.filter((o) => o.status === 'ok').map((o) => o.ret))].sort((a, b) => a - b);
  if (ends.length >= 2) {
    const t1 = ends[ends.length - 2];
    const cut = w.filter((o) => o.call <= t1).map((o) => (o.status === 'info' || o.ret <= t1 ? o : asInfo(o)));
    if (fails(cut)) return `it still fails when cut after ${t1}`;
  }
  // Only completed operations' invocations: cutting at an info one's removes nothing the next one would not.
  const starts = [...new Set(w.filter((o) => o.status === 'ok').map((o) => o.call))].sort((a, b) => a - b);
  for (const t0 of starts.slice(1)) {
    if (w.some((o) => o.status === 'ok' && !droppable(o) && o.call < t0 && o.ret >= t0)) continue;
    if (fails(w.filter((o) => o.status === 'info' || o.call >= t0))) return `it still fails when cut before ${t0}`;
    break;
  }
  return undefined;
}
