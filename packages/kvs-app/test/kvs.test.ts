import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvsStore, parseKvsInput } from '../src/kvs.js';

function run(store: KvsStore, input: unknown) {
  const r = parseKvsInput(input);
  if (!r.ok) throw new Error(r.error);
  return store.execute(r.op);
}

describe('kvs inputs', () => {
  it('accepts the tuple forms of raftpico’s README', () => {
    const s = new KvsStore();
    expect(run(s, { Put: ['foo', 123] })).toBeNull();
    expect(run(s, { Put: ['foo', 456] })).toBe(123);
    expect(run(s, { Get: 'foo' })).toBe(456);
    expect(run(s, { Put: ['bar', { a: [1, 2] }] })).toBeNull();
    expect(run(s, 'List')).toEqual(['bar', 'foo']);
    expect(run(s, { Delete: 'foo' })).toBe(456);
    expect(run(s, { Get: 'foo' })).toBeNull();
  });

  it('accepts the object forms of raftpico’s earlier README, including Get with a value field', () => {
    const s = new KvsStore();
    expect(run(s, { Put: { key: 'foo', value: 1 } })).toBeNull();
    expect(run(s, { Get: { key: 'foo', value: 1 } })).toBe(1);
    expect(run(s, { Get: { key: 'foo' } })).toBe(1);
    expect(run(s, { Delete: { key: 'foo' } })).toBe(1);
  });

  it('compare-and-set applies only when the current value equals the expected one', () => {
    const s = new KvsStore();
    expect(run(s, { Cas: ['k', null, 1] })).toBe(true);
    expect(run(s, { Cas: ['k', null, 2] })).toBe(false);
    expect(run(s, { Cas: ['k', 1, { x: 1, y: 2 }] })).toBe(true);
    expect(run(s, { Cas: ['k', { y: 2, x: 1 }, 3] })).toBe(true); // key order does not matter
    expect(run(s, { Get: 'k' })).toBe(3);
  });

  it.each([
    [{ Put: ['k'] }, /2 argument/],
    [{ Put: [1, 2] }, /key must be a string/],
    [{ Get: 7 }, /key must be a string/],
    [{ Frob: 'k' }, /unknown operation "Frob"/],
    [{ Get: 'a', Put: ['b', 1] }, /exactly one operation/],
    ['Lis', /must be "List" or an object/],
    [{ Put: { key: 'k' } }, /missing field/],
    [{ Put: { key: 'k', value: 1, ttl: 3 } }, /does not take field/],
    [{ Cas: ['k', 1] }, /3 argument/],
    [42, /must be "List" or an object/],
  ])('rejects %j with a clear message', (input, message) => {
    const r = parseKvsInput(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });
});

describe('kvs snapshots', () => {
  it('restore(snapshot()) reproduces the store, and equal states give equal bytes', () => {
    const ops = fc.array(
      fc.oneof(
        fc.record({ Put: fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.jsonValue()) }),
        fc.record({ Delete: fc.constantFrom('a', 'b', 'c', 'd') }),
      ),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(ops, (inputs) => {
        const s = new KvsStore();
        for (const i of inputs) run(s, JSON.parse(JSON.stringify(i)));
        const copy = new KvsStore();
        copy.restore(s.snapshot());
        expect(Buffer.from(copy.snapshot())).toEqual(Buffer.from(s.snapshot()));
        for (const k of ['a', 'b', 'c', 'd']) expect(run(copy, { Get: k })).toEqual(run(s, { Get: k }));
      }),
      { numRuns: 200 },
    );
  });

  it('snapshotInSlices gives the bytes of snapshot(), captured at the call even if the store changes meanwhile, for any run length', async () => {
    const keys = fc.string({ minLength: 1, maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(keys, fc.jsonValue()), { maxLength: 60 }),
        fc.array(fc.tuple(keys, fc.jsonValue()), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 300 }),
        // Short runs make the keys sorted in many runs and merged, as a large state is.
        fc.integer({ min: 1, max: 70 }),
        async (before, after, sliceBytes, runLength) => {
          const s = new KvsStore();
          for (const [k, v] of before) run(s, { Put: [k, JSON.parse(JSON.stringify(v ?? null))] });
          const expected = Buffer.from(s.snapshot());
          let pauses = 0;
          // Changes made while the slices are written (between pauses) must not show in the result.
          const pending = s.snapshotInSlices(
            sliceBytes,
            async () => {
              pauses++;
              const change = after[pauses % after.length];
              run(s, { Put: [change[0], JSON.parse(JSON.stringify(change[1] ?? null))] });
              run(s, { Delete: before[0]?.[0] ?? 'x' });
              // A snapshot installed meanwhile replaces the map; the capture still reads the state it began with.
              if (pauses % 4 === 0) s.restore(new TextEncoder().encode(JSON.stringify([[change[0], pauses]])));
            },
            runLength,
          );
          expect(Buffer.from(await pending)).toEqual(expected);
          expect(pauses).toBeGreaterThanOrEqual(1);
          const copy = new KvsStore();
          copy.restore(Buffer.from(expected));
          expect(Buffer.from(copy.snapshot())).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('snapshotInSlices splits a large state into many slices', async () => {
    const s = new KvsStore();
    for (let i = 0; i < 2000; i++) run(s, { Put: [`k${i}`, 'v'.repeat(500)] });
    let pauses = 0;
    const bytes = await s.snapshotInSlices(64 * 1024, async () => {
      pauses++;
    });
    expect(Buffer.from(bytes).equals(s.snapshot())).toBe(true);
    // ~1 MB of JSON in 64 KiB slices: one pause after the copy, then one per slice.
    expect(pauses).toBeGreaterThan(10);
  });

  it('snapshotInSlices sorts more keys than one run (the default 4096) into the bytes of snapshot()', async () => {
    const s = new KvsStore();
    // Keys in a scrambled order, some sharing prefixes, some non-ASCII: the merge must order them as the sort does.
    for (let i = 0; i < 10_000; i++) run(s, { Put: [`${(i * 7919) % 10_007}${i % 3 === 0 ? 'é' : ''}`, i] });
    const bytes = await s.snapshotInSlices(16 * 1024, async () => undefined);
    expect(Buffer.from(bytes).equals(s.snapshot())).toBe(true);
  });

  it('restore parses a large snapshot in groups of pairs, giving the same store as parsing it whole', () => {
    // Keys and values full of what the scanner must not be fooled by: quotes, escapes, brackets, commas, non-ASCII.
    const tricky = fc.string({ unit: fc.constantFrom('"', '\\', '[', ']', '{', '}', ',', 'a', 'é', '😀', '\n') });
    const value = fc.oneof(fc.jsonValue(), tricky, fc.array(tricky), fc.dictionary(tricky, tricky));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(tricky, value), { maxLength: 40 }),
        fc.integer({ min: 1, max: 200 }),
        (entries, sliceBytes) => {
          const s = new KvsStore();
          for (const [k, v] of entries) run(s, { Put: [k, JSON.parse(JSON.stringify(v ?? null))] });
          const bytes = s.snapshot();
          const whole = new KvsStore();
          whole.restore(bytes, Number.MAX_SAFE_INTEGER);
          const grouped = new KvsStore();
          grouped.restore(bytes, sliceBytes);
          expect(Buffer.from(grouped.snapshot())).toEqual(Buffer.from(bytes));
          expect(Buffer.from(whole.snapshot())).toEqual(Buffer.from(bytes));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses bytes that are not a snapshot, on both paths, and keeps its data', () => {
    const s = new KvsStore();
    run(s, { Put: ['keep', 1] });
    const bad = ['{"x":1}', '[["a",1],', '[["a",1]] x', '[["a",1],["b"]]', '[1,2,3]', 'x', '[["a",1],]'];
    for (const text of bad) {
      const bytes = new TextEncoder().encode(text);
      expect(() => s.restore(bytes), text).toThrow();
      expect(() => s.restore(bytes, 2), text).toThrow();
      expect(run(s, { Get: 'keep' })).toBe(1);
    }
    expect(() => s.restore(new TextEncoder().encode('{"x":1}'))).toThrow(/pairs/);
  });
});
