// canonicalJson: the one canonical JSON text that the key-value store's compare-and-set and the linearizability
// checker compare values by.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, type JsonValue } from '../src/index.js';

const SEED = process.env.RAFT_RUNTIME_SEED ? Number(process.env.RAFT_RUNTIME_SEED) : Date.now() % 2 ** 31;
const REPLAY = `RAFT_RUNTIME_SEED=${SEED} pnpm --filter @raft/runtime exec vitest run test/canonical-json.test.ts`;

/** Runs a property with {@link SEED}, naming the seed and the replay command when it fails. */
function property<T>(arb: fc.Arbitrary<T>, pred: (v: T) => void): void {
  console.log(`canonical-json property seed ${SEED} (replay: ${REPLAY})`);
  try {
    fc.assert(fc.property(arb, pred), { seed: SEED, numRuns: 300 });
  } catch (e) {
    throw new Error(`property failed with seed ${SEED}\nreplay: ${REPLAY}\n${(e as Error).message}`);
  }
}

/** The same value with every object's keys in reverse insertion order. */
function reverseKeys(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .reverse()
        .map(([k, x]) => [k, reverseKeys(x)]),
    );
  }
  return v;
}

describe('canonicalJson', () => {
  it('sorts object keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: [1, { d: 2, c: 3 }], a: null })).toBe('{"a":null,"b":[1,{"c":3,"d":2}]}');
    expect(canonicalJson({ z: 1, a: { y: true, b: 'x' } })).toBe('{"a":{"b":"x","y":true},"z":1}');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
  });

  it('writes scalars as JSON.stringify does', () => {
    for (const v of [0, -1.5, 1e21, 'a"b\n', '', true, false, null]) expect(canonicalJson(v)).toBe(JSON.stringify(v));
  });

  it('counts undefined as null, at the top, in arrays and as an object member', () => {
    expect(canonicalJson(undefined)).toBe('null');
    expect(canonicalJson([1, undefined] as unknown as JsonValue)).toBe('[1,null]');
    expect(canonicalJson({ a: undefined } as unknown as JsonValue)).toBe('{"a":null}');
  });

  it('tells different values apart: a key, a type or an order of array elements', () => {
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ b: 1 }));
    expect(canonicalJson(1)).not.toBe(canonicalJson('1'));
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    expect(canonicalJson(null)).not.toBe(canonicalJson({}));
  });

  it('property: key order never matters, and the text parses back to the same value', () => {
    property(fc.jsonValue() as fc.Arbitrary<JsonValue>, (v) => {
      const text = canonicalJson(v);
      expect(canonicalJson(reverseKeys(v))).toBe(text);
      expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(v)));
    });
  });
});
