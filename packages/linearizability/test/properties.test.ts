import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkHistory, checkOperations } from '../src/check.js';
import { formatHistory, operationsToEvents, pairOperations, parseHistory } from '../src/history.js';
import type { Json, Operation } from '../src/types.js';
import {
  ANOMALIES,
  assertProperty,
  bruteForceLinearizable,
  type GenConfig,
  generateHistory,
  injectAnomaly,
  prng,
} from './helpers.js';

/**
 * Generator settings. `big` histories have up to `maxOps` operations over several keys and processes; small ones
 * fit the brute-force oracle. Failing histories with half their operations info are exponentially hard for any
 * checker, so anomaly tests use `maxInfo` 0.2 (realistic runs have a few percent).
 */
const config = (big: boolean, maxOps = 400, maxInfo = 0.5): fc.Arbitrary<GenConfig> =>
  fc.record({
    processes: fc.integer({ min: 2, max: big ? 10 : 3 }),
    keys: fc.integer({ min: 1, max: big ? 4 : 1 }),
    ops: fc.integer({ min: 1, max: big ? maxOps : 6 }),
    infoRate: fc.constantFrom(...[0, 0.05, 0.2, 0.5].filter((r) => r <= maxInfo)),
    failRate: fc.constantFrom(0, 0.1),
    values: big ? fc.constant('unique' as const) : fc.constantFrom('unique' as const, 'few' as const),
    recordPrev: fc.boolean(),
  });

describe('generated histories', () => {
  it('histories from a sequential model with random concurrency are linearizable', () => {
    assertProperty(
      'histories from a sequential model with random concurrency are linearizable',
      fc.tuple(fc.integer(), config(true, 400, 0.2)),
      ([seed, cfg]) => {
        const ops = generateHistory(prng(seed), cfg);
        const r = checkOperations(ops, { timeLimitMs: 20_000 });
        if (r.verdict !== 'linearizable') throw new Error(`verdict ${r.verdict} for ${JSON.stringify(cfg)}`);
      },
      150,
    );
  });

  for (const kind of ANOMALIES) {
    it(`injected anomaly "${kind}" is caught, with a witness that fails on its own`, () => {
      const name = `injected anomaly "${kind}" is caught, with a witness that fails on its own`;
      assertProperty(
        name,
        fc.tuple(fc.integer(), config(true, 200, 0.2)),
        ([seed, cfg]) => {
          const rand = prng(seed);
          const ops = generateHistory(rand, { ...cfg, values: 'unique' });
          const bad = injectAnomaly(rand, ops, kind);
          fc.pre(bad !== undefined);
          const r = checkOperations(bad!, { timeLimitMs: 20_000 });
          if (r.verdict !== 'not-linearizable') throw new Error(`verdict ${r.verdict}`);
          const w = r.witness!;
          const again = checkOperations(w.ops, { initial: w.initial });
          if (again.verdict !== 'not-linearizable') throw new Error('the witness alone is linearizable');
          // Writes overlapping the window cannot be cut away, and an info operation that an earlier read forced to
          // be used keeps that read in the window; beyond that the witness does not grow with the history.
          const infos = bad!.filter((o) => o.status === 'info').length;
          const limit = 4 * cfg.processes + 6 + 6 * infos;
          const completed = w.ops.filter((o) => o.status === 'ok').length;
          if (completed > limit) throw new Error(`witness has ${completed} > ${limit} completed operations`);
        },
        25,
      );
    });
  }

  it('agrees with a brute-force oracle on tiny histories, mutated or not', () => {
    const values: Json[] = [null, 'a', 'b', 'c'];
    assertProperty(
      'agrees with a brute-force oracle on tiny histories, mutated or not',
      fc.tuple(fc.integer(), config(false), fc.integer({ min: 0, max: 5 })),
      ([seed, cfg, mutation]) => {
        const rand = prng(seed);
        type Mutable = { -readonly [K in keyof Operation]: Operation[K] };
        const ops: Mutable[] = generateHistory(rand, cfg).map((o) => ({ ...o }));
        if (ops.length > 0 && mutation > 0) {
          const o = ops[Math.floor(rand() * ops.length)];
          const v = values[Math.floor(rand() * values.length)];
          if (mutation === 1 && o.f === 'get' && o.status === 'ok') o.output = v;
          if (mutation === 2 && (o.f === 'put' || o.f === 'delete') && o.status === 'ok') o.prev = v;
          if (mutation === 3 && o.f === 'cas' && o.status === 'ok') o.applied = !o.applied;
          if (mutation === 4 && o.status === 'ok') Object.assign(o, { status: 'info', ret: Number.POSITIVE_INFINITY });
          if (mutation === 5 && o.status === 'ok') o.status = 'fail';
        }
        const expected = bruteForceLinearizable(ops) ? 'linearizable' : 'not-linearizable';
        const got = checkOperations(ops).verdict;
        if (got !== expected) throw new Error(`checker says ${got}, brute force ${expected}`);
      },
      3000,
    );
  });

  it('a history survives the JSON Lines round trip with the same verdict and operations', () => {
    assertProperty(
      'a history survives the JSON Lines round trip with the same verdict and operations',
      fc.tuple(fc.integer(), config(true)),
      ([seed, cfg]) => {
        const ops = generateHistory(prng(seed), { ...cfg, ops: Math.min(cfg.ops, 60) });
        const events = parseHistory(formatHistory(operationsToEvents(ops)));
        const back = pairOperations(events);
        const strip = (o: Operation) => ({
          f: o.f,
          key: o.key,
          status: o.status,
          value: o.value,
          output: o.output,
          prev: o.prev,
          applied: o.applied,
          call: o.call,
          ret: o.ret,
        });
        const byCall = (a: Operation, b: Operation) =>
          a.call - b.call || String(a.process).localeCompare(String(b.process));
        expect([...back].sort(byCall).map(strip)).toEqual([...ops].sort(byCall).map(strip));
        expect(checkHistory(events).verdict).toBe(checkOperations(ops).verdict);
      },
      50,
    );
  });
});
