// Completion and the synchronous continuations the simulator relies on: nothing may wait for the microtask queue.
import { describe, expect, it } from 'vitest';
import { after, Completion } from '../src/index.js';

describe('Completion', () => {
  it('runs then-callbacks synchronously inside resolve, in order, and chains', () => {
    const c = new Completion<number>();
    const seen: string[] = [];
    const chained = c.then((v) => {
      seen.push(`a${v}`);
      return v + 1;
    });
    c.then((v) => seen.push(`b${v}`));
    chained.then((v) => seen.push(`c${v}`));
    expect(seen).toEqual([]);
    c.resolve(1);
    expect(seen).toEqual(['a1', 'c2', 'b1']);
  });

  it('calls back at once when already settled, passes rejections down the chain, and settles once', () => {
    const seen: unknown[] = [];
    Completion.resolved(5).then((v) => seen.push(v));
    const bad = new Completion<number>();
    bad.then((v) => v * 2).then(undefined, (e) => seen.push((e as Error).message));
    bad.reject(new Error('disk'));
    bad.resolve(3);
    expect(seen).toEqual([5, 'disk']);
  });

  it('after() is synchronous for plain values and completions, asynchronous only for real promises', async () => {
    const seen: string[] = [];
    after(1, () => seen.push('value'));
    after(Completion.resolved(2), () => seen.push('completion'));
    const p = after(Promise.resolve(3), () => seen.push('promise'));
    expect(seen).toEqual(['value', 'completion']);
    await p;
    expect(seen).toEqual(['value', 'completion', 'promise']);
  });
});
