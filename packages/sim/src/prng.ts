/**
 * A small, fast, seedable pseudo-random number generator (xoshiro128**), so that every simulation is a pure
 * function of its seed. Never uses `Math.random`.
 *
 * @packageDocumentation
 */

/**
 * One step of splitmix32: turns any 32-bit value into a well-mixed 32-bit value. Used to expand a seed into the
 * generator's 128-bit state (and handy as a cheap integer hash).
 *
 * @param x - any 32-bit integer
 * @returns a mixed unsigned 32-bit integer
 */
export function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Normalizes any JavaScript number (negative, fractional, larger than 32 bits) into an unsigned 32-bit seed.
 * Both halves of a safe integer take part, so `2**32 + 1` and `1` give different seeds.
 *
 * @param seed - any finite number
 * @returns an unsigned 32-bit integer
 */
export function normalizeSeed(seed: number): number {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  const t = Math.trunc(seed);
  const lo = t >>> 0;
  const hi = Math.floor(t / 4294967296) >>> 0;
  return (lo ^ splitmix32(hi ^ 0x5bd1e995)) >>> 0;
}

/**
 * The xoshiro128** generator by Blackman and Vigna: 128 bits of state, period 2^128 - 1, passes BigCrush, and is
 * fast in JavaScript because it only needs 32-bit integer operations.
 *
 * @example
 * ```ts
 * const rng = new Prng(42);
 * rng.int(100, 200); // an integer in [100, 200)
 * rng.chance(0.1);   // true one time in ten
 * ```
 */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** @param seed - any finite number; equal seeds give equal sequences. */
  constructor(seed: number) {
    let x = normalizeSeed(seed);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      return splitmix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** @returns the next unsigned 32-bit integer. */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** @returns a float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /**
   * @param min - inclusive lower bound (an integer)
   * @param max - exclusive upper bound (an integer > min)
   * @returns an integer in [min, max)
   */
  int(min: number, max: number): number {
    if (max <= min) return min;
    return min + Math.floor(this.next() * (max - min));
  }

  /**
   * @param min - inclusive lower bound
   * @param max - exclusive upper bound
   * @returns a float in [min, max)
   */
  float(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  /**
   * @param p - a probability in [0, 1]
   * @returns true with probability `p`. Always consumes exactly one draw, so the stream stays aligned when a
   *   probability is changed to 0 or 1.
   */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /**
   * @param items - a non-empty array
   * @returns one element, uniformly
   */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty array');
    return items[this.int(0, items.length)];
  }

  /**
   * Picks a key of `weights` with probability proportional to its weight. Keys with weight 0 are never picked.
   *
   * @param weights - non-negative weights, at least one positive
   */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    let total = 0;
    for (const k in weights) total += Math.max(0, weights[k]);
    if (total <= 0) throw new RangeError('weighted pick needs at least one positive weight');
    let r = this.next() * total;
    let last: K | undefined;
    for (const k in weights) {
      const w = Math.max(0, weights[k]);
      if (w === 0) continue;
      last = k;
      if (r < w) return k;
      r -= w;
    }
    return last as K;
  }

  /**
   * Fisher–Yates shuffle of a copy.
   *
   * @param items - the array to shuffle (not modified)
   * @returns a new array with the same elements in random order
   */
  shuffle<T>(items: readonly T[]): T[] {
    const a = items.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /**
   * Derives an independent generator (its seed comes from this one), so that a sub-component's consumption of
   * randomness does not shift this stream.
   */
  fork(): Prng {
    return new Prng(this.nextU32() ^ Math.imul(this.nextU32(), 0x9e3779b1));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
