import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RaftLog } from '../src/log.js';
import type { Entry } from '../src/types.js';

// The chunked in-memory log against a plain-array model, under random appends, truncations, compactions and
// resets that cross chunk boundaries (4096 entries per chunk).
describe('RaftLog', () => {
  it('behaves like a plain array of entries after a snapshot point', () => {
    type Op =
      | { op: 'push'; n: number; bump: boolean }
      | { op: 'truncate'; back: number }
      | { op: 'compact'; keep: number }
      | { op: 'reset'; ahead: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: 1, max: 6000 }), bump: fc.boolean() }),
      fc.record({ op: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 7000 }) }),
      fc.record({ op: fc.constant('compact' as const), keep: fc.integer({ min: 0, max: 7000 }) }),
      fc.record({ op: fc.constant('reset' as const), ahead: fc.integer({ min: 0, max: 100 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const log = new RaftLog<number>();
        let base = 0;
        let baseTerm = 0;
        let model: Entry<number>[] = [];
        let term = 1;
        const last = () => base + model.length;
        for (const o of ops) {
          if (o.op === 'push') {
            if (o.bump) term++;
            for (let i = 0; i < o.n; i++) {
              const e: Entry<number> = { term, index: last() + 1, type: 'command', command: i };
              model.push(e);
              log.push(e);
            }
          } else if (o.op === 'truncate') {
            const from = Math.max(base + 1, last() + 1 - o.back);
            model = model.slice(0, from - base - 1);
            log.truncateFrom(from);
          } else if (o.op === 'compact') {
            const to = Math.max(base, last() - o.keep);
            if (to > base) {
              const t = model[to - base - 1].term;
              model = model.slice(to - base);
              base = to;
              baseTerm = t;
              log.compact(to, t);
            }
          } else {
            base = last() + o.ahead;
            baseTerm = term;
            model = [];
            log.reset(base, baseTerm);
          }
          expect(log.lastIndex).toBe(last());
          expect(log.length).toBe(model.length);
          expect(log.lastTerm).toBe(model.length > 0 ? model[model.length - 1].term : baseTerm);
          expect(log.term(base)).toBe(baseTerm);
          expect(log.term(last() + 1)).toBeUndefined();
          if (model.length > 0) {
            const probes = [base + 1, last(), base + 1 + (model.length >> 1), Math.min(last(), base + 4097)];
            for (const i of probes) expect(log.get(i)).toBe(model[i - base - 1]);
            const from = base + 1 + (model.length >> 2);
            expect(log.slice(from, last())).toEqual(model.slice(from - base - 1));
            expect(log.lastIndexOfTerm(model[0].term)).toBe(
              base + model.map((e) => e.term).lastIndexOf(model[0].term) + 1,
            );
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
