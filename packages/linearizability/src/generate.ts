/**
 * Seeded history generators: clients run against one sequential key-value map, so every history is linearizable by
 * construction (the ground truth), and {@link injectAnomaly} turns one into a history that certainly is not.
 * The tests use them, and so does the benchmark (`pnpm bench:lincheck`, bench/lincheck-bench.ts) with the shapes
 * in {@link BENCH_SHAPES}. Pure: no I/O, no clock; the same seed gives the same history.
 *
 * @packageDocumentation
 */

import { canonicalJson, type JsonValue } from '@raft/runtime';
import { Prng } from '@raft/sim';
import { operationsToEvents } from './history.js';
import type { HistoryEvent, Operation, OpFn, OpStatus } from './types.js';

/**
 * A seeded generator of floats in [0, 1): `@raft/sim`'s `Prng` (the project's one PRNG; this module is used by the
 * tests and the benchmark only, not by the library's entry point).
 */
export function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
}

/** Shape of a generated history. */
export interface GenConfig {
  /** Clients, each with at most one operation outstanding (process ids 0 .. processes - 1). */
  readonly processes: number;
  /** Keys `k0` .. `k{keys - 1}`, each operation on one drawn uniformly. */
  readonly keys: number;
  /** Operations invoked. */
  readonly ops: number;
  /** Chance an operation ends as info (half of them before taking effect, half after). */
  readonly infoRate: number;
  /** Chance an operation fails without taking effect. */
  readonly failRate: number;
  /**
   * Values written: unique per write (`"v0"`, `"v1"`, ...), drawn from `"a"`, `"b"`, `"c"` (`few`), or drawn from the
   * given list (so they repeat, and reads cannot tell which write they saw).
   */
  readonly values: 'unique' | 'few' | readonly JsonValue[];
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
export function generateHistory(rand: () => number, cfg: GenConfig): Operation[] {
  const state = new Map<string, JsonValue>();
  const procs: (Running | undefined)[] = new Array(cfg.processes).fill(undefined);
  const ops: Operation[] = [];
  const seen: JsonValue[] = [null];
  let nextValue = 0;
  let started = 0;
  let t = 0;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const drawn: readonly JsonValue[] =
    cfg.values === 'unique' ? [] : cfg.values === 'few' ? ['a', 'b', 'c'] : cfg.values;
  const fresh = (): JsonValue => (cfg.values === 'unique' ? `v${nextValue++}` : pick(drawn));
  while (started < cfg.ops || procs.some((p) => p !== undefined)) {
    t += 1 + Math.floor(rand() * 3);
    const pi = Math.floor(rand() * cfg.processes);
    const run = procs[pi];
    if (run === undefined) {
      if (started >= cfg.ops) continue;
      const key = `k${Math.floor(rand() * cfg.keys)}`;
      const r = rand();
      const f: OpFn = r < 0.35 ? 'get' : r < 0.65 ? 'put' : r < 0.92 ? 'cas' : 'delete';
      const current = state.get(key) ?? null;
      const value = f === 'put' || f === 'cas' ? fresh() : null;
      const expected = f === 'cas' ? (rand() < 0.5 ? current : pick(seen)) : undefined;
      procs[pi] = {
        op: { id: started++, process: pi, f, key, value, ...(f === 'cas' ? { expected } : {}), call: t },
        applied: false,
        willBeInfo: rand() < cfg.infoRate,
      };
      continue;
    }
    const { op } = run;
    if (!run.applied) {
      if (rand() < cfg.failRate) {
        ops.push({ ...op, status: 'fail', ret: t, invokeLine: 0 });
        procs[pi] = undefined;
        continue;
      }
      if (run.willBeInfo && rand() < 0.5) {
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
export function injectAnomaly(rand: () => number, ops: readonly Operation[], kind: Anomaly): Operation[] | undefined {
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
        const g = gets[Math.floor(rand() * gets.length)];
        const w2s = writes.filter((w) => w.key === g.key && w.ret < g.call);
        if (w2s.length === 0) continue;
        const w2 = w2s[Math.floor(rand() * w2s.length)];
        const w1s = writes.filter((w) => w.key === g.key && w.ret < w2.call && w.f !== 'delete' && w.value !== null);
        if (w1s.length === 0) continue;
        const w1 = w1s[Math.floor(rand() * w1s.length)];
        (g as { output?: JsonValue }).output = w1.value;
        return out;
      }
      return undefined;
    }
    case 'stale-read-tail': {
      const old =
        written.length > 0
          ? written[Math.floor(rand() * written.length)]
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

/** One benchmark history: how to generate it, and what a checker must answer. */
export interface BenchShape {
  /** Short name, used for the file name (`<name>.jsonl`). */
  readonly name: string;
  /** What the history is, as the benchmark table shows it. */
  readonly label: string;
  /** The generator's settings. */
  readonly config: GenConfig;
  /** Seed for {@link prng}. */
  readonly seed: number;
  /** An anomaly injected after generating (the history is then certainly not linearizable). */
  readonly anomaly?: Anomaly;
  /**
   * Report times divided by this and rounded down (default 1: exact). Coarse timestamps make operations that
   * followed each other share an instant, so they count as concurrent: the history stays linearizable (intervals
   * only widen) but many more operations overlap.
   */
  readonly coarse?: number;
}

const manyKeys = (ops: number): GenConfig => ({
  processes: 32,
  keys: 100,
  ops,
  infoRate: 0.01,
  failRate: 0.01,
  values: 'unique',
  recordPrev: true,
});
const oneKey = (values: GenConfig['values'], extra: Partial<GenConfig> = {}): GenConfig => ({
  processes: 16,
  keys: 1,
  ops: 2000,
  infoRate: 0.05,
  failRate: 0.01,
  values,
  recordPrev: true,
  ...extra,
});

/**
 * The benchmark's histories (issue 17's shapes, plus wide overlap and two with an injected anomaly). Operations are
 * 35 % get, 30 % put, 27 % cas, 8 % delete; a completed put or delete records its previous value.
 */
export const BENCH_SHAPES: readonly BenchShape[] = [
  { name: 'keys100-ops1k', label: '1,000 ops, 100 keys, 32 clients', config: manyKeys(1_000), seed: 1 },
  { name: 'keys100-ops10k', label: '10,000 ops, 100 keys, 32 clients', config: manyKeys(10_000), seed: 2 },
  { name: 'keys100-ops100k', label: '100,000 ops, 100 keys, 32 clients', config: manyKeys(100_000), seed: 3 },
  {
    name: 'key1-unique',
    label: '1 key, 16 clients, 2,000 ops, 5% info, unique values',
    config: oneKey('unique'),
    seed: 4,
  },
  {
    name: 'key1-values4',
    label: '1 key, 16 clients, 2,000 ops, 5% info, values from {0,1,2,3}',
    config: oneKey([0, 1, 2, 3]),
    seed: 5,
  },
  {
    name: 'key1-wide',
    label: '1 key, 64 clients, 2,000 ops, 1% info, unique values, coarse timestamps (up to 54 overlapping)',
    config: oneKey('unique', { processes: 64, infoRate: 0.01 }),
    coarse: 2,
    seed: 6,
  },
  {
    name: 'keys100-ops10k-stale',
    label: '10,000 ops, 100 keys, 32 clients, one stale read',
    config: manyKeys(10_000),
    seed: 7,
    anomaly: 'stale-read-mid',
  },
  {
    name: 'key1-unique-stale',
    label: '1 key, 16 clients, 2,000 ops, 5% info, unique values, one stale read',
    config: oneKey('unique'),
    seed: 8,
    anomaly: 'stale-read-mid',
  },
];

/**
 * Generates a benchmark history and its ground truth: `linearizable` for a plain generated history,
 * `not-linearizable` when an anomaly was injected (the generator's injections are certain violations on
 * unique-valued histories).
 *
 * @throws GenerateError when the shape's anomaly has no place in the history (pick another seed).
 */
export function generateBenchHistory(shape: BenchShape): {
  events: HistoryEvent[];
  expected: 'linearizable' | 'not-linearizable';
} {
  const rand = prng(shape.seed);
  let ops = generateHistory(rand, shape.config);
  if (shape.anomaly !== undefined) {
    const bad = injectAnomaly(rand, ops, shape.anomaly);
    if (bad === undefined) throw new GenerateError(`no place for anomaly ${shape.anomaly} in ${shape.name}`);
    ops = bad;
  }
  // Events are ordered by the exact times first, then coarsened: the file keeps the real order, so a process's
  // completion still comes before its next invocation when both round to the same instant.
  const events = operationsToEvents(ops);
  const coarse = shape.coarse ?? 1;
  const timed = coarse === 1 ? events : events.map((e) => ({ ...e, time: Math.floor(e.time / coarse) }));
  return { events: timed, expected: shape.anomaly === undefined ? 'linearizable' : 'not-linearizable' };
}

/** A benchmark shape that cannot be generated as asked. */
export class GenerateError extends Error {
  /** Always `GENERATE`. */
  readonly code = 'GENERATE';
  constructor(message: string) {
    super(message);
    this.name = 'GenerateError';
  }
}
