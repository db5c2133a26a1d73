/**
 * The exhaustive single-key search: Lowe's just-in-time linearization, run breadth-first over the history as a
 * frontier of configurations. It proves non-linearizability (and finds the first completion that cannot be
 * explained) where a depth-first search drowns in the combinations of operations with unknown outcome.
 *
 * @packageDocumentation
 */

import { type Budget, FRESH, type KeyOp, Kind, NO_PREV, REJECT, type SearchResult, step } from './search.js';

/**
 * One way the history so far can be linearized: the key's value; which still-running operations have already been
 * placed, as bit masks over running-operation slots (`w` for ones that write, `r` for reads and compare-and-sets
 * that did not apply); which info operations have been used (`info`, sorted, plus the first `u` interchangeable
 * ones).
 */
interface Config {
  readonly state: number;
  readonly w: number;
  readonly r: number;
  readonly info: readonly number[];
  readonly u: number;
}

/** Most operations on one key that may be running at once (one bit each in a 32-bit mask). */
export const MAX_RUNNING = 32;

const insertSorted = (xs: readonly number[], x: number): number[] => {
  const out = [...xs];
  let i = out.length;
  while (i > 0 && out[i - 1] > x) i--;
  out.splice(i, 0, x);
  return out;
};

/** Whether sorted `xs` contains `x` (binary search). */
function has(xs: readonly number[], x: number): boolean {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] === x) return true;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Whether sorted `a` is a subset of sorted `b`. */
function subset(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  let j = 0;
  for (const x of a) {
    while (j < b.length && b[j] < x) j++;
    if (j === b.length || b[j] !== x) return false;
    j++;
  }
  return true;
}

/**
 * Configurations with dominance pruning. Among configurations with the same value and the same placed writes, A
 * dominates B when A has placed at least B's reads (a read already placed need not be placed later, and placing it
 * changed nothing) and used at most B's info operations (info operations are optional): A can do everything B can.
 * Only undominated configurations are kept.
 */
class Frontier {
  private readonly groups = new Map<number, Config[]>();
  size = 0;

  /** Adds `c` unless an existing configuration dominates it; returns whether it was added. */
  add(c: Config): boolean {
    const key = c.state * 4294967296 + (c.w >>> 0);
    const group = this.groups.get(key);
    if (!group) {
      this.groups.set(key, [c]);
      this.size++;
      return true;
    }
    for (const g of group) {
      if ((g.r & c.r) === c.r && g.u <= c.u && subset(g.info, c.info)) return false;
    }
    const kept = group.filter((g) => !((c.r & g.r) === g.r && c.u <= g.u && subset(c.info, g.info)));
    this.size += kept.length + 1 - group.length;
    kept.push(c);
    this.groups.set(key, kept);
    return true;
  }

  *[Symbol.iterator](): IterableIterator<Config> {
    for (const group of this.groups.values()) yield* group;
  }
}

/**
 * Decides whether the operations on one key can be linearized from state `initial`, walking the events in time
 * order. At each completion of a (non-info) operation X, every configuration is extended by placing running
 * operations until X is placed ("just in time"); configurations that cannot place X die. The history is
 * linearizable iff some configuration survives every completion. Info operations never complete, so they are
 * placed only when some completion needs their effect. Reads that match the current value are placed at once
 * (that dominates placing them later), which keeps concurrent reads from multiplying the configurations.
 *
 * @param maxFrontier - give up (`unknown`) when this many configurations would be alive at once.
 */
export function frontierKey(
  ops: readonly KeyOp[],
  initial: number,
  budget: Budget,
  maxFrontier = 200_000,
): SearchResult {
  const n = ops.length;
  if (n === 0) return { kind: 'ok', steps: 0 };
  // Events: 2i = call of op i, 2i+1 = return of op i (info operations have none).
  const events: number[] = [];
  for (let i = 0; i < n; i++) {
    events.push(2 * i);
    if (!ops[i].info) events.push(2 * i + 1);
  }
  const timeOf = (e: number): number => ((e & 1) === 0 ? ops[e >> 1].call : ops[e >> 1].ret);
  events.sort((x, y) => {
    const tx = timeOf(x);
    const ty = timeOf(y);
    if (tx !== ty) return tx < ty ? -1 : 1;
    if ((x & 1) !== (y & 1)) return (x & 1) - (y & 1); // calls first: touching operations are concurrent
    return x - y;
  });
  const writes = (op: KeyOp): boolean => op.kind === Kind.Put || op.kind === Kind.CasApplied;

  const slotOf = new Int32Array(n).fill(-1);
  const slotOp = new Int32Array(MAX_RUNNING).fill(-1);
  const running: number[] = []; // regular operations invoked and not yet completed
  // Non-interchangeable info operations invoked so far: puts (always applicable), and cas by expected value (only
  // applicable when the value matches, so indexing them avoids scanning them all at every node).
  let infoPuts: number[] = [];
  const infoCas = new Map<number, number[]>();

  // Dead values: once the last operation that observes a value v has completed, nothing can tell v from any other
  // unobserved value, so v becomes FRESH. Info puts of dead values (and the interchangeable ones, whose values are
  // never observed) then all have the same effect, "the value becomes FRESH": they form a pool, and a configuration
  // only records how many of the pool it used (`u`), not which.
  let maxState = Math.max(FRESH, initial);
  for (const op of ops) maxState = Math.max(maxState, op.a, op.b);
  const lastObs = new Float64Array(maxState + 1).fill(-1);
  const observe = (v: number, at: number) => {
    if (v > FRESH) lastObs[v] = Math.max(lastObs[v], at);
  };
  events.forEach((e, ei) => {
    const op = ops[e >> 1];
    // An info cas keeps its expected value alive only if what it writes is observed: from v it could lead to an
    // observed value, which FRESH cannot. Writing an unobserved value from v changes nothing observable.
    if (op.kind === Kind.CasInfo && (e & 1) === 0 && op.b !== FRESH) observe(op.a, Number.POSITIVE_INFINITY);
    if ((e & 1) === 0) return;
    if (op.kind === Kind.Get || op.kind === Kind.CasApplied || op.kind === Kind.CasNotApplied) observe(op.a, ei);
    if (op.kind === Kind.Put && op.b !== NO_PREV) observe(op.b, ei);
  });
  const deathAt = new Map<number, number[]>();
  for (let v = FRESH + 1; v <= maxState; v++) {
    const at = lastObs[v];
    if (at === Number.POSITIVE_INFINITY) continue;
    const list = deathAt.get(at);
    if (list) list.push(v);
    else deathAt.set(at, [v]);
  }
  const dead = new Uint8Array(maxState + 1);
  const canon = (s: number): number => (s > FRESH && dead[s] === 1 ? FRESH : s);
  const stepC = (s: number, op: KeyOp): number => {
    const ns = step(s, op);
    return ns === REJECT ? REJECT : canon(ns);
  };
  let poolSize = 0;

  let frontier = new Frontier();
  frontier.add({ state: initial, w: 0, r: 0, info: [], u: 0 });
  let steps = 0;
  let deepest = 0;

  /** Places every running read (other than `except`) that matches the state: the result dominates `c`. */
  const saturate = (c: Config, except: number): Config => {
    let r = c.r;
    for (const o of running) {
      const bit = 1 << slotOf[o];
      if (o === except || writes(ops[o]) || ((c.w | r) & bit) !== 0) continue;
      if (step(c.state, ops[o]) !== REJECT) r |= bit;
    }
    return r === c.r ? c : { ...c, r };
  };

  for (let ei = 0; ei < events.length; ei++) {
    const e = events[ei];
    const x = e >> 1;
    if ((e & 1) === 0) {
      const op = ops[x];
      if (op.interchangeable || (op.info && op.kind === Kind.Put && canon(op.a) === FRESH)) poolSize++;
      else if (op.info && op.kind === Kind.CasInfo) {
        const list = infoCas.get(op.a);
        if (list) list.push(x);
        else infoCas.set(op.a, [x]);
      } else if (op.info) infoPuts.push(x);
      else {
        const slot = slotOp.indexOf(-1);
        if (slot < 0) return { kind: 'unknown', steps, reason: 'width' };
        slotOp[slot] = x;
        slotOf[x] = slot;
        running.push(x);
      }
      continue;
    }
    // Completion of x: place it in every configuration, placing other running/info operations first if needed.
    const xbit = 1 << slotOf[x];
    const next = new Frontier();
    for (const c of frontier) {
      if (((c.w | c.r) & xbit) !== 0) {
        next.add({ ...c, w: c.w & ~xbit, r: c.r & ~xbit });
        continue;
      }
      // Breadth-first, with the same dominance among the nodes visited: a node that used more info operations to
      // reach the same value as one already seen is pruned, which keeps chains of info operations from exploding.
      const seen = new Frontier();
      const first = saturate(c, x);
      seen.add(first);
      const queue: Config[] = [first];
      for (let qi = 0; qi < queue.length; qi++) {
        const node = queue[qi];
        steps++;
        if (steps > budget.maxSteps) return { kind: 'unknown', steps, reason: 'steps' };
        if ((steps & 1023) === 0 && performance.now() > budget.deadline) {
          return { kind: 'unknown', steps, reason: 'time' };
        }
        const s = node.state;
        const sx = stepC(s, ops[x]);
        if (sx !== REJECT) next.add(saturate({ state: sx, w: node.w, r: node.r, info: node.info, u: node.u }, x));
        const push = (child: Config): void => {
          const c2 = saturate(child, x);
          if (seen.add(c2)) queue.push(c2);
        };
        for (const o of running) {
          const bit = 1 << slotOf[o];
          if (o === x || ((node.w | node.r) & bit) !== 0) continue;
          const ns = stepC(s, ops[o]);
          if (ns === REJECT) continue;
          if (writes(ops[o])) push({ state: ns, w: node.w | bit, r: node.r, info: node.info, u: node.u });
          else push({ state: ns, w: node.w, r: node.r | bit, info: node.info, u: node.u });
        }
        // An info operation that changes nothing is never worth placing (leaving it out is at least as good).
        const tryInfo = (i: number): void => {
          if (has(node.info, i)) return;
          const ns = stepC(s, ops[i]);
          if (ns !== REJECT && ns !== s)
            push({ state: ns, w: node.w, r: node.r, info: insertSorted(node.info, i), u: node.u });
        };
        for (const i of infoPuts) tryInfo(i);
        const matching = infoCas.get(s);
        if (matching) for (const i of matching) tryInfo(i);
        if (node.u < poolSize && s !== FRESH) {
          push({ state: FRESH, w: node.w, r: node.r, info: node.info, u: node.u + 1 });
        }
      }
      if (next.size > maxFrontier) return { kind: 'unknown', steps, reason: 'steps' };
    }
    const at = running.indexOf(x);
    running.splice(at, 1);
    slotOp[slotOf[x]] = -1;
    if (next.size === 0) return { kind: 'fail', steps, stuck: ops[x].src, deepest };
    deepest++;
    frontier = next;
    const dying = deathAt.get(ei);
    if (dying !== undefined) {
      for (const v of dying) dead[v] = 1;
      const moved = infoPuts.filter((i) => dead[ops[i].a] === 1);
      if (moved.length > 0) {
        infoPuts = infoPuts.filter((i) => dead[ops[i].a] !== 1);
        poolSize += moved.length;
      }
      const rebuilt = new Frontier();
      for (const c of frontier) {
        const used = moved.filter((i) => has(c.info, i)).length;
        const info = used === 0 ? c.info : c.info.filter((i) => !moved.includes(i));
        rebuilt.add(saturate({ state: canon(c.state), w: c.w, r: c.r, info, u: c.u + used }, -1));
      }
      frontier = rebuilt;
    }
  }
  return { kind: 'ok', steps };
}
