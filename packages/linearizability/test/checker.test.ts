import type { JsonValue } from '@raft/runtime';
import { describe, expect, it } from 'vitest';
import { checkHistory, checkOperations, formatResult, formatWitness } from '../src/check.js';
import type { HistoryEvent, Operation, OpFn, OpStatus } from '../src/types.js';

/** A compact way to write hand-made operations: `op(process, f, key, [call, ret], extras)`. */
let nextId = 0;
function op(
  process: number,
  f: OpFn,
  key: string,
  [call, ret]: [number, number | 'info'],
  extra: {
    value?: JsonValue;
    expected?: JsonValue;
    output?: JsonValue;
    prev?: JsonValue;
    applied?: boolean;
    status?: OpStatus;
  } = {},
): Operation {
  const status = extra.status ?? (ret === 'info' ? 'info' : 'ok');
  return {
    id: nextId++,
    process,
    f,
    key,
    value: extra.value ?? null,
    ...(extra.expected !== undefined ? { expected: extra.expected } : {}),
    ...(extra.output !== undefined ? { output: extra.output } : {}),
    ...(extra.prev !== undefined ? { prev: extra.prev } : {}),
    ...(extra.applied !== undefined ? { applied: extra.applied } : {}),
    status,
    call,
    ret: ret === 'info' || status === 'info' ? Number.POSITIVE_INFINITY : ret,
    invokeLine: 0,
  };
}
const put = (p: number, k: string, v: JsonValue, t: [number, number | 'info'], prev?: JsonValue) =>
  op(p, 'put', k, t, { value: v, ...(prev !== undefined ? { prev } : {}) });
const get = (p: number, k: string, out: JsonValue, t: [number, number]) => op(p, 'get', k, t, { output: out });
const cas = (p: number, k: string, e: JsonValue, v: JsonValue, t: [number, number | 'info'], applied?: boolean) =>
  op(p, 'cas', k, t, { expected: e, value: v, ...(applied !== undefined ? { applied } : {}) });
const verdict = (ops: Operation[]) => checkOperations(ops).verdict;

describe('hand-made histories', () => {
  it('an empty history is linearizable', () => {
    expect(verdict([])).toBe('linearizable');
  });

  it('a sequential history that follows the model is linearizable', () => {
    expect(
      verdict([
        get(1, 'x', null, [0, 1]),
        put(1, 'x', 1, [2, 3], null),
        get(2, 'x', 1, [4, 5]),
        cas(1, 'x', 1, 2, [6, 7]),
        cas(2, 'x', 1, 3, [8, 9], false),
        op(1, 'delete', 'x', [10, 11], { prev: 2 }),
        get(2, 'x', null, [12, 13]),
      ]),
    ).toBe('linearizable');
  });

  it('classic stale read: a read after a completed write returns the older value', () => {
    const r = checkOperations([put(1, 'x', 1, [0, 10]), put(1, 'x', 2, [20, 30]), get(2, 'x', 1, [40, 50])]);
    expect(r.verdict).toBe('not-linearizable');
    expect(r.witness?.key).toBe('x');
    // The witness is just the overwrite and the stale read: whatever x held before, after put(2) it cannot read 1.
    expect(r.witness?.ops.map((o) => o.f)).toEqual(['put', 'get']);
    expect(r.witness?.initial).toBe('any');
    expect(formatResult(r)).toMatch(/NOT linearizable/);
  });

  it('a read concurrent with a write may return either value', () => {
    expect(verdict([put(1, 'x', 1, [0, 10]), put(1, 'x', 2, [20, 30]), get(2, 'x', 1, [25, 35])])).toBe('linearizable');
    expect(verdict([put(1, 'x', 1, [0, 10]), put(1, 'x', 2, [20, 30]), get(2, 'x', 2, [25, 35])])).toBe('linearizable');
  });

  it('operations that touch at one instant count as concurrent', () => {
    expect(verdict([put(1, 'x', 1, [0, 10]), get(2, 'x', null, [10, 20])])).toBe('linearizable');
    expect(verdict([put(1, 'x', 1, [0, 10]), get(2, 'x', null, [11, 20])])).toBe('not-linearizable');
  });

  it('lost write: an acknowledged write is never seen, and a later put reports the wrong previous value', () => {
    expect(verdict([put(1, 'x', 'a', [0, 1]), put(2, 'x', 'b', [2, 3]), get(1, 'x', 'a', [4, 5])])).toBe(
      'not-linearizable',
    );
    expect(
      verdict([put(1, 'x', 'a', [0, 1], null), put(2, 'x', 'b', [2, 3], 'a'), put(1, 'x', 'c', [4, 5], 'a')]),
    ).toBe('not-linearizable');
    // Two acknowledged concurrent puts both claiming the key was absent: one of them must have seen the other.
    expect(verdict([put(1, 'x', 'a', [0, 10], null), put(2, 'x', 'b', [5, 15], null)])).toBe('not-linearizable');
  });

  it('cas anomalies: double apply, and a cas that did not apply although the value matched', () => {
    expect(verdict([cas(1, 'x', null, 'a', [0, 10]), cas(2, 'x', null, 'b', [1, 11])])).toBe('not-linearizable');
    expect(verdict([cas(1, 'x', null, 'a', [0, 10]), cas(2, 'x', null, 'b', [1, 11], false)])).toBe('linearizable');
    expect(verdict([put(1, 'x', 'a', [0, 1]), cas(1, 'x', 'a', 'b', [2, 3], false), get(2, 'x', 'a', [4, 5])])).toBe(
      'not-linearizable',
    );
    // With a concurrent writer, the failed cas is explained by it.
    expect(
      verdict([
        put(1, 'x', 'a', [0, 1]),
        put(3, 'x', 'q', [2, 9]),
        cas(1, 'x', 'a', 'b', [3, 4], false),
        put(2, 'x', 'a2', [10, 11]),
      ]),
    ).toBe('linearizable');
  });

  it('an info write may have taken effect: a later read of its value is fine', () => {
    expect(verdict([put(1, 'x', 5, [0, 'info']), get(2, 'x', 5, [100, 110])])).toBe('linearizable');
    // ...even long after, and interleaved with other writes (it can take effect at any time after invocation).
    expect(
      verdict([
        put(1, 'x', 5, [0, 'info']),
        put(2, 'x', 6, [10, 20]),
        get(2, 'x', 6, [30, 40]),
        get(2, 'x', 5, [50, 60]),
      ]),
    ).toBe('linearizable');
  });

  it('an info write may not have taken effect: reads never seeing it are fine', () => {
    expect(verdict([put(1, 'x', 5, [0, 'info']), get(2, 'x', null, [100, 110]), get(2, 'x', null, [120, 130])])).toBe(
      'linearizable',
    );
  });

  it('an info write cannot take effect before it was invoked, nor be undone', () => {
    expect(verdict([get(2, 'x', 5, [0, 10]), put(1, 'x', 5, [20, 'info'])])).toBe('not-linearizable');
    expect(
      verdict([
        put(1, 'x', 4, [0, 1]),
        put(1, 'x', 5, [2, 'info']),
        get(2, 'x', 5, [10, 11]),
        get(2, 'x', 4, [12, 13]),
      ]),
    ).toBe('not-linearizable');
  });

  it('an info write that must have taken effect (a later put saw it as previous value)', () => {
    expect(verdict([put(1, 'x', 5, [0, 'info']), put(2, 'x', 6, [10, 20], 5)])).toBe('linearizable');
    expect(verdict([put(2, 'x', 6, [0, 5], 5), put(1, 'x', 5, [10, 'info'])])).toBe('not-linearizable');
  });

  it('an info cas applies only if the value matched when it took effect', () => {
    expect(verdict([put(1, 'x', 1, [0, 1]), cas(1, 'x', 1, 2, [2, 'info']), get(2, 'x', 2, [5, 6])])).toBe(
      'linearizable',
    );
    expect(verdict([put(1, 'x', 1, [0, 1]), cas(1, 'x', 9, 2, [2, 'info']), get(2, 'x', 2, [5, 6])])).toBe(
      'not-linearizable',
    );
  });

  it('a failed operation definitely did not happen', () => {
    expect(verdict([op(1, 'put', 'x', [0, 1], { value: 5, status: 'fail' }), get(2, 'x', 5, [2, 3])])).toBe(
      'not-linearizable',
    );
    expect(verdict([op(1, 'put', 'x', [0, 1], { value: 5, status: 'fail' }), get(2, 'x', null, [2, 3])])).toBe(
      'linearizable',
    );
  });

  it('deletes make the key absent', () => {
    expect(
      verdict([put(1, 'x', 1, [0, 1]), op(1, 'delete', 'x', [2, 3], { prev: 1 }), get(2, 'x', null, [4, 5])]),
    ).toBe('linearizable');
    expect(verdict([put(1, 'x', 1, [0, 1]), op(1, 'delete', 'x', [2, 3]), get(2, 'x', 1, [4, 5])])).toBe(
      'not-linearizable',
    );
  });

  it('values compare as JSON regardless of object key order', () => {
    expect(verdict([put(1, 'x', { a: 1, b: [2] }, [0, 1]), get(2, 'x', { b: [2], a: 1 }, [2, 3])])).toBe(
      'linearizable',
    );
    expect(verdict([put(1, 'x', { a: 1 }, [0, 1]), get(2, 'x', { a: '1' }, [2, 3])])).toBe('not-linearizable');
  });

  it('a string is never equal to another JSON value with the same text', () => {
    // Strings are compared by their own text (behind a marker), everything else by canonical JSON: the two must not
    // meet. A string "1" is not the number 1, "null" is not absent, "[1]" is not an array.
    for (const [written, read] of [
      ['1', 1],
      [1, '1'],
      ['null', null],
      ['[1]', [1]],
      ['"a"', 'a'],
      ['true', true],
    ] as [JsonValue, JsonValue][]) {
      const label = `${JSON.stringify(written)} read as ${JSON.stringify(read)}`;
      expect(verdict([put(1, 'x', written, [0, 1]), get(2, 'x', read, [2, 3])]), label).toBe('not-linearizable');
      expect(verdict([put(1, 'x', written, [0, 1]), get(2, 'x', written, [2, 3])]), label).toBe('linearizable');
    }
    expect(verdict([put(1, 'x', 'null', [0, 1]), cas(2, 'x', null, 'b', [2, 3], true)])).toBe('not-linearizable');
  });

  it('keys are independent: a violation on one key is reported on that key only', () => {
    const r = checkOperations([
      put(1, 'x', 1, [0, 1]),
      put(1, 'y', 1, [2, 3]),
      put(1, 'y', 2, [4, 5]),
      get(2, 'y', 1, [6, 7]),
      get(2, 'x', 1, [8, 9]),
    ]);
    expect(r.keys.map((k) => [k.key, k.verdict])).toEqual([
      ['x', 'linearizable'],
      ['y', 'not-linearizable'],
    ]);
  });

  it('shrinks a violation deep in a long history to the few operations that cause it', () => {
    const ops: Operation[] = [];
    let t = 0;
    for (let i = 0; i < 300; i++) {
      ops.push(put(i % 5, 'x', `v${i}`, [t, t + 5]));
      ops.push(get((i + 1) % 5, 'x', `v${i}`, [t + 6, t + 8]));
      t += 10;
    }
    ops.push(put(1, 'x', 'w', [t, t + 2]));
    ops.push(get(2, 'x', 'v150', [t + 3, t + 4])); // stale read of a value overwritten long ago
    for (let i = 0; i < 50; i++) ops.push(put(3, 'x', `z${i}`, [t + 10 + i * 3, t + 11 + i * 3]));
    const r = checkOperations(ops);
    expect(r.verdict).toBe('not-linearizable');
    const w = r.witness!;
    expect(w.ops.length).toBeLessThanOrEqual(4);
    expect(w.ops.at(-1)).toMatchObject({ f: 'get', output: 'v150' });
    // The witness stands on its own: checking just its operations (from its initial state) fails too.
    expect(checkOperations(w.ops, { initial: w.initial }).verdict).toBe('not-linearizable');
    expect(formatWitness(w)).toContain('cannot be linearized');
  });

  it('reports unknown, not a verdict, when the step budget is exceeded', () => {
    const ops: Operation[] = [];
    // Many concurrent writes of observed values and a final contradiction force a wide search.
    for (let i = 0; i < 14; i++) ops.push(put(i, 'x', i, [0, 100]));
    for (let i = 0; i < 14; i++) ops.push(get(20 + i, 'x', i, [0, 100]));
    ops.push(get(40, 'x', 99, [200, 201]));
    const r = checkOperations(ops, { maxStepsPerKey: 1000 });
    expect(r.verdict).toBe('unknown');
    expect(r.keys[0].reason).toMatch(/1000 steps/);
  });
});

describe('checking events', () => {
  it('pairs events and treats a never-completed invocation as info', () => {
    const events: HistoryEvent[] = [
      { process: 1, type: 'invoke', f: 'put', key: 'x', value: 1, time: 0 },
      { process: 2, type: 'invoke', f: 'put', key: 'x', value: 2, time: 1 },
      { process: 1, type: 'ok', f: 'put', key: 'x', value: 1, prev: null, time: 2 },
      { process: 1, type: 'invoke', f: 'get', key: 'x', time: 3 },
      { process: 1, type: 'ok', f: 'get', key: 'x', value: 2, time: 4 },
    ];
    const r = checkHistory(events);
    expect(r.verdict).toBe('linearizable');
    expect(r.counts).toEqual({ ok: 2, fail: 0, info: 1 });
    const bad = [...events, { process: 1, type: 'invoke', f: 'get', key: 'x', time: 5 } as HistoryEvent];
    bad.push({ process: 1, type: 'ok', f: 'get', key: 'x', value: 1, time: 6 });
    expect(checkHistory(bad).verdict).toBe('not-linearizable');
  });
});
