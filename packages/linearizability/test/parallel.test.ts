/** Checking keys in worker threads gives the same result as checking them on one thread. */
import { describe, expect, it } from 'vitest';
import { checkOperations } from '../src/check.js';
import { generateHistory, injectAnomaly, prng } from '../src/generate.js';
import { checkOperationsParallel, partitionKeys } from '../src/parallel.js';

describe('worker threads', () => {
  it('splits keys into shares of similar size, each key in one share', () => {
    const ops = generateHistory(prng(1), {
      processes: 8,
      keys: 10,
      ops: 500,
      infoRate: 0,
      failRate: 0,
      values: 'unique',
      recordPrev: true,
    });
    const shares = partitionKeys(ops, 3);
    expect(shares).toHaveLength(3);
    expect(shares.flat()).toHaveLength(ops.length);
    const owner = new Map<string, number>();
    shares.forEach((s, i) => {
      for (const o of s) {
        expect(owner.get(o.key) ?? i).toBe(i);
        owner.set(o.key, i);
      }
    });
    const sizes = shares.map((s) => s.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThan(ops.length / 5);
  });

  it('two workers find the same verdict, keys and witness as one thread', async () => {
    const rand = prng(7);
    const ops = generateHistory(rand, {
      processes: 8,
      keys: 6,
      ops: 600,
      infoRate: 0.05,
      failRate: 0.02,
      values: 'unique',
      recordPrev: true,
    });
    const bad = injectAnomaly(rand, ops, 'stale-read-mid');
    if (bad === undefined) throw new Error('seed 7 has no place for a stale read');
    for (const history of [ops, bad]) {
      const one = checkOperations(history);
      const two = await checkOperationsParallel(history, {}, 2, 0);
      expect(two.verdict).toBe(one.verdict);
      expect(two.counts).toEqual(one.counts);
      expect(two.keys.map((k) => [k.key, k.verdict, k.ops])).toEqual(one.keys.map((k) => [k.key, k.verdict, k.ops]));
      expect(two.witness?.ops.map((o) => o.id)).toEqual(one.witness?.ops.map((o) => o.id));
    }
    expect(checkOperations(bad).verdict).toBe('not-linearizable');
  }, 60_000);
});
