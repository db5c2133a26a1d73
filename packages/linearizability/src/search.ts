/**
 * The single-key search: Wing & Gong's algorithm with Lowe's memoization (as in Porcupine), over a compiled
 * register model whose values are small integers.
 *
 * @packageDocumentation
 */

/** The model state "any value": used when a window starts mid-history, it binds on the first observation. */
export const ANY = -1;
/** The absent value (`null`). */
export const ABSENT = 0;
/** Every value nobody ever observes: such values behave identically, so they share one state. */
export const FRESH = 1;
/** A `put` / `delete` whose previous value was not recorded. */
export const NO_PREV = -3;

/** Operation kinds of the compiled model. A `delete` is a `put` of {@link ABSENT}. */
export const Kind = {
  Get: 0,
  Put: 1,
  CasApplied: 2,
  CasNotApplied: 3,
  /** A cas with unknown outcome: applies if the value matches, else has no effect. */
  CasInfo: 4,
} as const;
/** One of {@link Kind}'s values. */
export type Kind = (typeof Kind)[keyof typeof Kind];

/** One operation on one key, compiled to integers. */
export interface KeyOp {
  readonly kind: Kind;
  /** Get: the value read. Put: the value written. Cas: the expected value. */
  readonly a: number;
  /** Put: the recorded previous value or {@link NO_PREV}. Cas: the new value. */
  readonly b: number;
  /** Unknown outcome: may be left out of the linearization. */
  readonly info: boolean;
  readonly call: number;
  /** `Infinity` for info operations. */
  readonly ret: number;
  /** Index of the source operation, for reports. */
  readonly src: number;
}

/** Limits on one search. */
export interface Budget {
  /** Give up after this many search steps. */
  readonly maxSteps: number;
  /** Give up at this `Date.now()` time (ms since the epoch; `performance.now()` would load node:perf_hooks at start-up, a few ms the CLI does not need). */
  readonly deadline: number;
}

/** What one search found. `stuck` is the `src` of the operation the deepest partial linearization could not pass. */
export type SearchResult =
  | { readonly kind: 'ok'; readonly steps: number }
  | { readonly kind: 'fail'; readonly steps: number; readonly stuck: number; readonly deepest: number }
  | { readonly kind: 'unknown'; readonly steps: number; readonly reason: 'steps' | 'time' | 'memory' };

/** Returned by {@link step} when the recorded outcome is impossible in the given state. */
export const REJECT = -2;

/** Applies `op` in state `s`: the new state, or REJECT when the recorded outcome is impossible in `s`. */
export function step(s: number, op: KeyOp): number {
  switch (op.kind) {
    case Kind.Get:
      if (s === ANY) return op.a;
      return s === op.a ? s : REJECT;
    case Kind.Put:
      if (op.b === NO_PREV || s === ANY || s === op.b) return op.a;
      return REJECT;
    case Kind.CasApplied:
      return s === ANY || s === op.a ? op.b : REJECT;
    case Kind.CasNotApplied:
      // From ANY we cannot express "anything but a", so stay ANY: more permissive, never a false violation.
      if (s === ANY) return ANY;
      return s !== op.a ? s : REJECT;
    case Kind.CasInfo:
      if (s === ANY) return ANY;
      return s === op.a ? op.b : s;
  }
}

/** MurmurHash3's finalizer: a cheap, well-mixed 32-bit hash. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * A set of 64-bit hashes (two int32 halves), open addressing. The memo holds (linearized set, state) pairs as
 * Zobrist hashes rather than bitsets: 8 bytes per entry instead of n/8, and O(1) updates per step. A collision
 * (probability about entries² / 2⁶⁵) can only prune a branch, i.e. at worst report a violation that is not one;
 * at the default budget that is below one in ten million.
 */
class HashSet64 {
  private hi: Int32Array;
  private lo: Int32Array;
  private used: Uint8Array;
  private mask: number;
  private size = 0;

  constructor(capacity = 1 << 12) {
    this.hi = new Int32Array(capacity);
    this.lo = new Int32Array(capacity);
    this.used = new Uint8Array(capacity);
    this.mask = capacity - 1;
  }

  /** Adds the pair; false if it was already present. */
  add(a: number, b: number): boolean {
    const { hi, lo, used, mask } = this;
    let i = (a ^ Math.imul(b, 0x9e3779b1)) & mask;
    while (used[i] === 1) {
      if (hi[i] === a && lo[i] === b) return false;
      i = (i + 1) & mask;
    }
    used[i] = 1;
    hi[i] = a;
    lo[i] = b;
    if (++this.size * 2 > mask) this.grow();
    return true;
  }

  private grow(): void {
    const { hi, lo, used } = this;
    const cap = (this.mask + 1) * 2;
    this.hi = new Int32Array(cap);
    this.lo = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < used.length; i++) if (used[i] === 1) this.add(hi[i], lo[i]);
  }
}

/**
 * Groups info operations by effect: an info put of v (or delete, a put of {@link ABSENT}), or an info cas a -> b.
 * Info operations never complete, so once invoked, two with the same effect are interchangeable: a linearization
 * that uses a later-invoked one and leaves an earlier one out can use the earlier one instead. So the search uses
 * each class in invocation order (`rank`), and "which of them were used" becomes "how many": with few distinct
 * values the memo then sees the same (linearized set, state) pairs again and the search collapses.
 * `classOf[i]` is -1 for a completed operation.
 */
export function effectClasses(ops: readonly KeyOp[]): { classOf: Int32Array; rank: Int32Array; classes: number } {
  const n = ops.length;
  const classOf = new Int32Array(n).fill(-1);
  const rank = new Int32Array(n).fill(-1);
  const ids = new Map<string, number>();
  const counts: number[] = [];
  const byCall: number[] = [];
  for (let i = 0; i < n; i++) if (ops[i].info) byCall.push(i);
  byCall.sort((x, y) => ops[x].call - ops[y].call || x - y);
  for (const i of byCall) {
    const op = ops[i];
    const key = op.kind === Kind.Put ? `p${op.a}` : `c${op.a}:${op.b}`;
    let k = ids.get(key);
    if (k === undefined) {
      k = ids.size;
      ids.set(key, k);
      counts.push(0);
    }
    classOf[i] = k;
    rank[i] = counts[k]++;
  }
  return { classOf, rank, classes: ids.size };
}

/**
 * The call and return entries of `ops` in time order, calls before returns at equal times, then by entry number
 * (op i has call entry 2i+1 and return entry 2i+2). The callers hand operations in invocation order, so the calls
 * are already sorted and only the returns need sorting before a merge; other orders take the general sort.
 */
export function entryOrder(ops: readonly KeyOp[]): number[] {
  const n = ops.length;
  const order: number[] = [];
  let callsSorted = true;
  for (let i = 1; i < n && callsSorted; i++) callsSorted = ops[i - 1].call <= ops[i].call;
  if (callsSorted) {
    const rets: number[] = new Array(n);
    for (let i = 0; i < n; i++) rets[i] = i;
    rets.sort((x, y) => ops[x].ret - ops[y].ret || x - y);
    let r = 0;
    for (let i = 0; i < n; i++) {
      while (r < n && ops[rets[r]].ret < ops[i].call) order.push(2 * rets[r++] + 2);
      order.push(2 * i + 1);
    }
    while (r < n) order.push(2 * rets[r++] + 2);
    return order;
  }
  const timeOf = (e: number): number => ((e & 1) === 1 ? ops[(e - 1) >> 1].call : ops[(e - 2) >> 1].ret);
  for (let e = 1; e <= 2 * n; e++) order.push(e);
  return order.sort((x, y) => {
    const tx = timeOf(x);
    const ty = timeOf(y);
    if (tx !== ty) return tx < ty ? -1 : 1;
    const cx = x & 1;
    const cy = y & 1;
    if (cx !== cy) return cy - cx; // calls (odd) first
    return x - y;
  });
}

/**
 * Decides whether the operations on one key can be linearized starting from state `initial`.
 *
 * Entries (calls and returns) sit in a doubly linked list in time order, calls before returns at equal times (so
 * operations touching at an instant count as concurrent, the permissive reading). The cursor walks the list trying
 * to linearize each call it meets; reaching the return of an operation not yet linearized means the current
 * partial order is a dead end, so it backtracks. Info operations return at `Infinity`, so reaching the first info
 * return means every completed operation has been placed: success (the remaining info operations are left out).
 */
export function searchKey(ops: readonly KeyOp[], initial: number, budget: Budget): SearchResult {
  return createSearch(ops, initial)(budget);
}

/**
 * {@link searchKey} as a resumable search: each call continues where the previous one ran out of steps, up to the
 * new budget's `maxSteps` (counted from the start), so alternating it with another search wastes nothing. Once it
 * has decided, every call returns the same result.
 */
export function createSearch(ops: readonly KeyOp[], initial: number): (budget: Budget) => SearchResult {
  const n = ops.length;
  if (n === 0) return () => ({ kind: 'ok', steps: 0 });
  const entries = 2 * n;
  // Entry 0 is the list head; op i has call entry 2i+1 and return entry 2i+2.
  const order = entryOrder(ops);
  const next = new Int32Array(entries + 1);
  const prev = new Int32Array(entries + 1);
  let p = 0;
  for (const e of order) {
    next[p] = e;
    prev[e] = p;
    p = e;
  }
  next[p] = -1;

  let maxState = Math.max(FRESH, initial);
  for (const op of ops) maxState = Math.max(maxState, op.a, op.b);
  const sh1 = new Int32Array(maxState + 2);
  const sh2 = new Int32Array(maxState + 2);
  for (let s = ANY; s <= maxState; s++) {
    sh1[s + 1] = fmix32(Math.imul(s + 11, 0x7feb352d) ^ 0x5bd1e995);
    sh2[s + 1] = fmix32(Math.imul(s + 17, 0x846ca68b) ^ 0x1b873593);
  }
  const z1 = new Int32Array(n);
  const z2 = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    z1[i] = fmix32(Math.imul(i + 1, 0x9e3779b9) ^ 0x27d4eb2f);
    z2[i] = fmix32(Math.imul(i + 7, 0xc2b2ae3d) ^ 0x165667b1);
  }
  const { classOf, rank, classes } = effectClasses(ops);
  const used = new Int32Array(classes);

  const lift = (c: number): void => {
    const r = c + 1;
    next[prev[c]] = next[c];
    if (next[c] !== -1) prev[next[c]] = prev[c];
    next[prev[r]] = next[r];
    if (next[r] !== -1) prev[next[r]] = prev[r];
  };
  const unlift = (c: number): void => {
    const r = c + 1;
    if (next[r] !== -1) prev[next[r]] = r;
    next[prev[r]] = r;
    if (next[c] !== -1) prev[next[c]] = c;
    next[prev[c]] = c;
  };

  // Sized to the history: a 100-operation key should not allocate (and clear) the buffers of a long one.
  const memo = new HashSet64(Math.min(1 << 16, 1 << Math.ceil(Math.log2(4 * n + 16))));
  const stackEntry = new Int32Array(n);
  const stackState = new Int32Array(n);
  // 1 for a placement made by the forced rule (see `forcedAt`): the node below it has no other choice worth trying.
  const stackForced = new Uint8Array(n);
  let sp = 0;
  let state = initial;
  let h1 = 0;
  let h2 = 0;
  let steps = 0;
  let deepest = -1;
  let stuck = -1;
  let entry = next[0];
  // Whether the cursor has just arrived at a node (a new partial linearization) and must look for a forced placement.
  let arrived = true;
  let decided: SearchResult | undefined;
  return (budget: Budget): SearchResult => {
    if (decided !== undefined) return decided;
    const r = run(budget);
    if (r.kind !== 'unknown') decided = r;
    return r;
  };

  /**
   * The call entry of a completed read (a get, or a cas that did not apply) that may be linearized now, or -1.
   * Placing it at once loses nothing: any linearization that places it later can place it here instead (it is
   * minimal, so no unplaced operation returned before its call, and a read changes no value in any state where it
   * is allowed). So when one exists it is the only child worth trying, which collapses the interleavings of
   * concurrent reads. Only reads qualify: a put of the value the key already holds changes nothing now but would
   * change the value if placed later, so placing it now is a real choice (the brute-force oracle test caught that).
   */
  function forcedAt(): number {
    for (let e = next[0]; e !== -1 && (e & 1) === 1; e = next[e]) {
      const op = ops[(e - 1) >> 1];
      if ((op.kind === Kind.Get || op.kind === Kind.CasNotApplied) && step(state, op) === state) return e;
    }
    return -1;
  }

  /** Places the operation of call entry `e` (`ns` its new state, memo entry already added). */
  function place(e: number, ns: number, n1: number, n2: number, forced: number): void {
    const i = (e - 1) >> 1;
    stackEntry[sp] = e;
    stackState[sp] = state;
    stackForced[sp] = forced;
    sp++;
    state = ns;
    h1 = n1;
    h2 = n2;
    if (classOf[i] >= 0) used[classOf[i]]++;
    lift(e);
    entry = next[0];
    arrived = true;
  }

  /**
   * Undoes placements up to and including the latest unforced one, and moves the cursor past it; false when the
   * stack is empty (the root failed). A forced placement that fails proves its node fails too, so it is undone with
   * the one below it.
   */
  function backtrack(): boolean {
    for (;;) {
      if (sp === 0) return false;
      sp--;
      const c = stackEntry[sp];
      const ci = (c - 1) >> 1;
      state = stackState[sp];
      h1 ^= z1[ci];
      h2 ^= z2[ci];
      if (classOf[ci] >= 0) used[classOf[ci]]--;
      unlift(c);
      if (stackForced[sp] === 0) {
        entry = next[c];
        return true;
      }
    }
  }

  function run(budget: Budget): SearchResult {
    while (entry !== -1) {
      if (steps >= budget.maxSteps) return { kind: 'unknown', steps, reason: 'steps' };
      steps++;
      if ((steps & 4095) === 0 && Date.now() > budget.deadline) return { kind: 'unknown', steps, reason: 'time' };
      if (arrived) {
        arrived = false;
        const e = forcedAt();
        if (e !== -1) {
          const i = (e - 1) >> 1;
          const n1 = h1 ^ z1[i];
          const n2 = h2 ^ z2[i];
          // Seen before means explored and failed (it cannot be on the current path: it holds one more operation).
          if (memo.add(n1 ^ sh1[state + 1], n2 ^ sh2[state + 1])) place(e, state, n1, n2, 1);
          else if (!backtrack()) return { kind: 'fail', steps, stuck, deepest };
          continue;
        }
      }
      if ((entry & 1) === 1) {
        const i = (entry - 1) >> 1;
        const op = ops[i];
        const k = classOf[i];
        if (k >= 0 && rank[i] !== used[k]) {
          entry = next[entry];
          continue;
        }
        const ns = step(state, op);
        // An info op that would change nothing is better left out (it stays available for later), so never place it.
        if (ns !== REJECT && !(op.info && ns === state)) {
          const n1 = h1 ^ z1[i];
          const n2 = h2 ^ z2[i];
          if (memo.add(n1 ^ sh1[ns + 1], n2 ^ sh2[ns + 1])) {
            place(entry, ns, n1, n2, 0);
            continue;
          }
        }
        entry = next[entry];
      } else {
        const i = (entry - 2) >> 1;
        if (ops[i].info) return { kind: 'ok', steps };
        if (sp > deepest) {
          deepest = sp;
          stuck = ops[i].src;
        }
        if (!backtrack()) return { kind: 'fail', steps, stuck, deepest };
      }
    }
    return { kind: 'ok', steps };
  }
}
