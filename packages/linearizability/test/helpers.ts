/**
 * Test helpers: property runner, a brute-force oracle, witness minimality. The seeded PRNG, the history generator and
 * anomaly injection live in src/generate.ts (the benchmark uses them too) and are re-exported here.
 */

import { canonicalJson, type JsonValue } from '@raft/runtime';
import fc from 'fast-check';
import { checkOperations } from '../src/check.js';
import type { Operation } from '../src/types.js';

export {
  ANOMALIES,
  type Anomaly,
  type GenConfig,
  generateHistory,
  injectAnomaly,
  prng,
} from '../src/generate.js';

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
