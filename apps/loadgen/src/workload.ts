/**
 * Request generation: the templates of raftpico's benchmark (random three-letter keys, random u32 values) as
 * abstract operations, so that every target encodes the very same sequence of keys and values.
 */
import { Prng } from '@raft/sim';
import { LoadgenError } from './errors.js';

/** Which operations a run sends. */
export type WorkloadKind = 'command' | 'query' | 'local' | 'mix';

/** Every workload name the CLI accepts. */
export const WORKLOADS: readonly WorkloadKind[] = ['command', 'query', 'local', 'mix'];

/**
 * One abstract operation. `consistency: 'linearizable'` is raftpico's `Query` (etcd: a default range);
 * `'local'` is `LocalQuery` (etcd: `serializable: true`).
 */
export type Op =
  | { readonly type: 'put'; readonly key: string; readonly value: number | string }
  | { readonly type: 'get'; readonly key: string; readonly consistency: 'linearizable' | 'local' };

const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Options of {@link Workload}. */
export interface WorkloadOptions {
  /** `command` (puts), `query` (linearizable gets), `local` (local gets) or `mix` (half puts, half queries). */
  readonly kind: WorkloadKind;
  /**
   * Seed of the PRNG (`Prng` from @raft/sim, xoshiro128**): the same seed, kind and `valueSize` give the same
   * operations on every target.
   */
  readonly seed: number;
  /**
   * 0 (the default): values are random u32 numbers, as in raftpico's benchmark. Otherwise values are strings of
   * exactly this many ASCII characters (a random u32 in decimal, padded with filler), so 1 KiB / 64 KiB payload runs
   * carry the same bytes to every target.
   */
  readonly valueSize?: number;
}

/** Produces the operation for each request index, deterministically from the seed. */
export class Workload {
  /** The kind given, checked against {@link WORKLOADS}: decides what {@link Workload.next} returns. */
  readonly kind: WorkloadKind;
  /** Characters (= bytes: ASCII) of each string value, 0 to 16 MiB; 0 means values are random u32 numbers. */
  readonly valueSize: number;
  private readonly prng: Prng;
  private readonly filler: string;

  constructor(options: WorkloadOptions) {
    if (!WORKLOADS.includes(options.kind)) {
      throw new LoadgenError(
        'BAD_OPTION',
        `unknown workload "${options.kind}"; expected one of ${WORKLOADS.join(', ')}`,
      );
    }
    const size = options.valueSize ?? 0;
    if (!Number.isInteger(size) || size < 0 || size > 16 * 1024 * 1024) {
      throw new LoadgenError('BAD_OPTION', `valueSize must be an integer in [0, 16 MiB], got ${size}`);
    }
    this.kind = options.kind;
    this.valueSize = size;
    this.prng = new Prng(options.seed);
    // One filler string per run: generating 64 KiB of randomness per request would make the client the bottleneck.
    let filler = '';
    for (let i = 0; i < size; i++) filler += ALPHA[this.prng.int(0, ALPHA.length)];
    this.filler = filler;
  }

  /** A random three-letter key (52^3 distinct keys, like rjg's `$alpha` x 3). */
  key(): string {
    const p = this.prng;
    return ALPHA[p.int(0, 52)] + ALPHA[p.int(0, 52)] + ALPHA[p.int(0, 52)];
  }

  /** A random value: a u32, or a string of exactly `valueSize` characters. */
  value(): number | string {
    const n = this.prng.nextU32();
    if (this.valueSize === 0) return n;
    const head = String(n);
    return head.length >= this.valueSize ? head.slice(0, this.valueSize) : head + this.filler.slice(head.length);
  }

  /** The next operation of this workload. */
  next(): Op {
    switch (this.kind) {
      case 'command':
        return { type: 'put', key: this.key(), value: this.value() };
      case 'query':
        return { type: 'get', key: this.key(), consistency: 'linearizable' };
      case 'local':
        return { type: 'get', key: this.key(), consistency: 'local' };
      case 'mix':
        return (this.prng.nextU32() & 1) === 0
          ? { type: 'put', key: this.key(), value: this.value() }
          : { type: 'get', key: this.key(), consistency: 'linearizable' };
    }
  }
}
