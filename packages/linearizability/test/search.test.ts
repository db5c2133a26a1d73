/**
 * The two single-key searches on their own: each must agree with the brute-force oracle (the memo's effect classes
 * are sound), neither has a limit on overlapping operations, and together they decide the shapes that used to end
 * as `unknown` (issue 17).
 */

import type { JsonValue } from '@raft/runtime';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkOperations, compileKey } from '../src/check.js';
import { frontierKey } from '../src/frontier.js';
import { BENCH_SHAPES, generateBenchHistory, generateHistory } from '../src/generate.js';
import { pairOperations } from '../src/history.js';
import { entryOrder, type KeyOp, Kind, searchKey } from '../src/search.js';
import type { Operation } from '../src/types.js';
import { assertProperty, bruteForceLinearizable, prng } from './helpers.js';

/** One key's operations as `checkOperations` hands them to the searches: no `fail`, in invocation order. */
const keyOps = (ops: readonly Operation[]): Operation[] =>
  ops.filter((o) => o.status !== 'fail').sort((a, b) => a.call - b.call || a.id - b.id);

const budget = () => ({ maxSteps: 5_000_000, deadline: Date.now() + 20_000 });

describe('single-key searches', () => {
  it('the memoised depth-first search and the frontier search each agree with the brute-force oracle', () => {
    const name = 'the memoised depth-first search and the frontier search each agree with the brute-force oracle';
    // Few values and many info operations: the case where info operations of the same effect are merged into
    // classes (counted, not named) by both searches.
    const values: JsonValue[] = [null, 0, 1, 2];
    assertProperty(
      name,
      fc.tuple(
        fc.integer(),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 7 }),
        fc.constantFrom(0.2, 0.5, 0.8),
        fc.boolean(),
        fc.integer({ min: 0, max: 3 }),
      ),
      ([seed, processes, ops, infoRate, recordPrev, mutation]) => {
        const rand = prng(seed);
        type Mutable = { -readonly [K in keyof Operation]: Operation[K] };
        const history: Mutable[] = generateHistory(rand, {
          processes,
          keys: 1,
          ops,
          infoRate,
          failRate: 0,
          values: [0, 1, 2],
          recordPrev,
        }).map((o) => ({ ...o }));
        if (history.length > 0 && mutation > 0) {
          const o = history[Math.floor(rand() * history.length)];
          const v = values[Math.floor(rand() * values.length)];
          if (mutation === 1 && o.f === 'get' && o.status === 'ok') o.output = v;
          if (mutation === 2 && (o.f === 'put' || o.f === 'delete') && o.status === 'ok') o.prev = v;
          if (mutation === 3 && o.f === 'cas' && o.status === 'ok') o.applied = !o.applied;
        }
        const expected = bruteForceLinearizable(history) ? 'ok' : 'fail';
        const { kops, init } = compileKey(keyOps(history), 'absent');
        const dfs = searchKey(kops, init, budget()).kind;
        const frontier = frontierKey(kops, init, budget()).kind;
        if (dfs !== expected || frontier !== expected) {
          throw new Error(`brute force ${expected}, depth-first ${dfs}, frontier ${frontier}`);
        }
      },
      { numRuns: 2000 },
    );
  });

  /** `n` puts all running at once (more than 32), each reporting the previous value, then reads. */
  const wide = (n: number, reads: JsonValue[]): Operation[] => {
    const ops: Operation[] = [];
    for (let i = 0; i < n; i++) {
      const prev = i === 0 ? null : `v${i - 1}`;
      ops.push({
        id: i,
        process: i,
        f: 'put',
        key: 'k',
        value: `v${i}`,
        prev,
        status: 'ok',
        call: i,
        ret: 1000 + i,
        invokeLine: 0,
      });
    }
    reads.forEach((output, j) => {
      ops.push({
        id: n + j,
        process: n + j,
        f: 'get',
        key: 'k',
        value: null,
        output,
        status: 'ok',
        call: 2000 + 10 * j,
        ret: 2005 + 10 * j,
        invokeLine: 0,
      });
    });
    return ops;
  };

  it('the frontier search has no limit on overlapping operations (40 puts at once, then reads)', () => {
    const run = (ops: Operation[]) => {
      const { kops, init } = compileKey(keyOps(ops), 'absent');
      return frontierKey(kops, init, budget()).kind;
    };
    expect(run(wide(40, ['v39', 'v39']))).toBe('ok');
    // v38 was overwritten by v39 (its prev says so) before the first read: reading it after v39 is stale.
    expect(run(wide(40, ['v39', 'v38']))).toBe('fail');
    expect(checkOperations(wide(40, ['v39', 'v38'])).verdict).toBe('not-linearizable');
  });

  it('decides one key with values from {0,1,2,3} and 5% info (the benchmark shape), used to end as unknown', () => {
    const shape = BENCH_SHAPES.find((s) => s.name === 'key1-values4');
    if (shape === undefined) throw new Error('benchmark shape key1-values4 is gone');
    const ops = pairOperations(generateBenchHistory(shape).events);
    const r = checkOperations(ops, { timeLimitMs: 60_000 });
    expect(r.verdict).toBe('linearizable');
  });

  // The depth-first search places a read that fits the current value at once instead of trying every interleaving
  // of concurrent reads. Without that rule it took 5.8 million steps on the {0,1,2,3} shape and ran out of its
  // 20-million-step budget on the wide one (up to 54 overlapping operations); with it, about 140,000 each.
  it('the depth-first search alone decides the few-values and the wide-overlap benchmark shapes in under 1M steps', () => {
    for (const name of ['key1-values4', 'key1-wide']) {
      const shape = BENCH_SHAPES.find((s) => s.name === name);
      if (shape === undefined) throw new Error(`benchmark shape ${name} is gone`);
      const { kops, init } = compileKey(keyOps(pairOperations(generateBenchHistory(shape).events)), 'absent');
      const r = searchKey(kops, init, { maxSteps: 1_000_000, deadline: Date.now() + 30_000 });
      expect(r.kind, name).toBe('ok');
    }
  }, 60_000);

  it('orders call and return entries by time, calls first at equal times, as a plain sort does', () => {
    const name = 'orders call and return entries by time, calls first at equal times, as a plain sort does';
    const reference = (ops: readonly KeyOp[]): number[] => {
      const time = (e: number) => ((e & 1) === 1 ? ops[(e - 1) >> 1].call : ops[(e - 2) >> 1].ret);
      return Array.from({ length: 2 * ops.length }, (_, i) => i + 1).sort((x, y) =>
        time(x) < time(y) ? -1 : time(x) > time(y) ? 1 : (y & 1) - (x & 1) || x - y,
      );
    };
    assertProperty(
      name,
      fc.tuple(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), fc.option(fc.integer({ min: 0, max: 4 }))), {
          maxLength: 12,
        }),
        fc.boolean(),
      ),
      ([spans, sortByCall]) => {
        // Few distinct times, so ties (and info operations returning at Infinity) are common.
        const ops: KeyOp[] = spans.map(([call, len], i) => ({
          kind: Kind.Get,
          a: 0,
          b: 0,
          info: len === null,
          call,
          ret: len === null ? Number.POSITIVE_INFINITY : call + len,
          src: i,
        }));
        if (sortByCall) ops.sort((x, y) => x.call - y.call);
        expect(entryOrder(ops)).toEqual(reference(ops));
      },
      { numRuns: 2000 },
    );
  });

  // The depth-first search's memo (linearized set, value) and its forced reads against an independent algorithm on
  // histories too long for the brute-force oracle: few values (the memo collapses the search), coarse timestamps
  // (many operations share an instant, so many reads are placeable at once), info operations, and one mutation
  // that often makes the history not linearizable. Tiny ones are also checked against the oracle.
  it('the depth-first search agrees with the frontier search on longer few-valued, coarse-timed histories', () => {
    const name = 'the depth-first search agrees with the frontier search on longer few-valued, coarse-timed histories';
    const values: JsonValue[] = [null, 0, 1, 2];
    assertProperty(
      name,
      fc.tuple(
        fc.integer(),
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 1, max: 60 }),
        fc.constantFrom(0, 0.05, 0.2),
        fc.constantFrom(1, 3, 8),
        fc.integer({ min: 0, max: 3 }),
        fc.boolean(),
      ),
      ([seed, processes, n, infoRate, coarse, mutation, recordPrev]) => {
        const rand = prng(seed);
        type Mutable = { -readonly [K in keyof Operation]: Operation[K] };
        const history: Mutable[] = generateHistory(rand, {
          processes,
          keys: 1,
          ops: n,
          infoRate,
          failRate: 0,
          values: [0, 1, 2],
          recordPrev,
        }).map((o) => ({ ...o, call: Math.floor(o.call / coarse), ret: Math.floor(o.ret / coarse) }));
        if (history.length > 0 && mutation > 0) {
          const o = history[Math.floor(rand() * history.length)];
          const v = values[Math.floor(rand() * values.length)];
          if (mutation === 1 && o.f === 'get' && o.status === 'ok') o.output = v;
          if (mutation === 2 && (o.f === 'put' || o.f === 'delete') && o.status === 'ok') o.prev = v;
          if (mutation === 3 && o.f === 'cas' && o.status === 'ok') o.applied = !o.applied;
        }
        const { kops, init } = compileKey(keyOps(history), 'absent');
        const dfs = searchKey(kops, init, budget()).kind;
        const frontier = frontierKey(kops, init, budget()).kind;
        fc.pre(dfs !== 'unknown' && frontier !== 'unknown');
        if (dfs !== frontier) throw new Error(`depth-first ${dfs}, frontier ${frontier}`);
        if (mutation === 0 && dfs !== 'ok') throw new Error(`an unmutated history is ${dfs}`);
        if (history.length <= 7) {
          const expected = bruteForceLinearizable(history) ? 'ok' : 'fail';
          if (dfs !== expected) throw new Error(`brute force ${expected}, depth-first ${dfs}`);
        }
      },
      { numRuns: 500 },
    );
  }, 120_000);
});
