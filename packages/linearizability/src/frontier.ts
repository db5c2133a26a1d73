/**
 * The exhaustive single-key search: Lowe's just-in-time linearization, run breadth-first over the history as a
 * frontier of configurations. It proves non-linearizability (and finds the first completion that cannot be
 * explained) where a depth-first search drowns in the combinations of operations with unknown outcome.
 *
 * @packageDocumentation
 */

import {
  type Budget,
  effectClasses,
  FRESH,
  type KeyOp,
  Kind,
  NO_PREV,
  REJECT,
  type SearchResult,
  step,
} from './search.js';

/**
 * One way the history so far can be linearized: the key's value; which still-running operations have already been
 * placed, as bit masks over running-operation slots (`w` for ones that write, `r` for reads and compare-and-sets
 * that did not apply; BigInts, so any number of operations may overlap); how many info operations of each effect
 * class have been used (`info`: a sorted multiset of class ids, see {@link effectClasses}: info operations with the
 * same effect are interchangeable once invoked, so only the count matters), plus `u` from the pool of info puts
 * whose value nobody can observe any more.
 */
interface Config {
  readonly state: number;
  readonly w: bigint;
  readonly r: bigint;
  readonly info: readonly number[];
  readonly u: number;
}

const insertSorted = (xs: readonly number[], x: number): number[] => {
  const out = [...xs];
  let i = out.length;
  while (i > 0 && out[i - 1] > x) i--;
  out.splice(i, 0, x);
  return out;
};

/** How many times sorted `xs` contains `x`. */
function count(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  let c = 0;
  while (lo + c < xs.length && xs[lo + c] === x) c++;
  return c;
}

/** Whether sorted multiset `a` is contained in sorted multiset `b` (each element at most as often). */
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
 * changed nothing) and used at most as many info operations of each effect (info operations are optional, and
 * one of a class is as good as another): A can do everything B can. Only undominated configurations are kept.
 */
class Frontier {
  private readonly groups = new Map<number, Map<bigint, Config[]>>();
  size = 0;

  /** Adds `c` unless an existing configuration dominates it; returns whether it was added. */
  add(c: Config): boolean {
    let byW = this.groups.get(c.state);
    if (!byW) this.groups.set(c.state, (byW = new Map()));
    const group = byW.get(c.w);
    if (!group) {
      byW.set(c.w, [c]);
      this.size++;
      return true;
    }
    for (const g of group) {
      if ((g.r & c.r) === c.r && g.u <= c.u && subset(g.info, c.info)) return false;
    }
    const kept = group.filter((g) => !((c.r & g.r) === g.r && c.u <= g.u && subset(c.info, g.info)));
    this.size += kept.length + 1 - group.length;
    kept.push(c);
    byW.set(c.w, kept);
    return true;
  }

  *[Symbol.iterator](): IterableIterator<Config> {
    for (const byW of this.groups.values()) for (const group of byW.values()) yield* group;
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
  return createFrontier(ops, initial, maxFrontier)(budget);
}

/**
 * {@link frontierKey} as a resumable search: each call continues where the previous one ran out of steps or time,
 * with the new budget (`maxSteps` counted from the start). Once it has decided, or its frontier outgrew
 * `maxFrontier` (reason `memory`), every call returns the same result.
 */
export function createFrontier(
  ops: readonly KeyOp[],
  initial: number,
  maxFrontier = 200_000,
): (budget: Budget) => SearchResult {
  let budget: Budget = { maxSteps: 0, deadline: 0 };
  let decided: SearchResult | undefined;
  // A generator keeps the search's whole state (frontier, position, the configuration being expanded) across
  // calls: it yields when the budget runs out and resumes on the next call.
  const gen = frontierSearch(ops, initial, maxFrontier, () => budget);
  return (b: Budget): SearchResult => {
    if (decided !== undefined) return decided;
    budget = b;
    const r = gen.next();
    const result = r.value;
    if (r.done || result.kind !== 'unknown' || result.reason === 'memory') decided = result;
    return result;
  };
}

function* frontierSearch(
  ops: readonly KeyOp[],
  initial: number,
  maxFrontier: number,
  getBudget: () => Budget,
): Generator<SearchResult, SearchResult, void> {
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

  const bitOf: bigint[] = new Array(n).fill(0n);
  const slotOf = new Int32Array(n).fill(-1);
  const freeSlots: number[] = [];
  let slots = 0;
  const running: number[] = []; // regular operations invoked and not yet completed
  // Effect classes of the info operations invoked so far (`avail[k]` of class k): puts (always applicable), and cas
  // by expected value (only applicable when the value matches, so indexing them avoids scanning them all at every
  // node). `rep[k]` is one operation of class k.
  const { classOf, classes } = effectClasses(ops);
  const avail = new Int32Array(classes);
  const rep = new Int32Array(classes).fill(-1);
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
  frontier.add({ state: initial, w: 0n, r: 0n, info: [], u: 0 });
  let steps = 0;
  let deepest = 0;

  /** Places every running read (other than `except`) that matches the state: the result dominates `c`. */
  const saturate = (c: Config, except: number): Config => {
    let r = c.r;
    for (const o of running) {
      const bit = bitOf[o];
      if (o === except || writes(ops[o]) || ((c.w | r) & bit) !== 0n) continue;
      if (step(c.state, ops[o]) !== REJECT) r |= bit;
    }
    return r === c.r ? c : { ...c, r };
  };

  for (let ei = 0; ei < events.length; ei++) {
    const e = events[ei];
    const x = e >> 1;
    if ((e & 1) === 0) {
      const op = ops[x];
      if (op.info && op.kind === Kind.Put && canon(op.a) === FRESH) poolSize++;
      else if (op.info) {
        const k = classOf[x];
        if (avail[k]++ === 0) {
          rep[k] = x;
          if (op.kind === Kind.CasInfo) {
            const list = infoCas.get(op.a);
            if (list) list.push(k);
            else infoCas.set(op.a, [k]);
          } else infoPuts.push(k);
        }
      } else {
        const slot = freeSlots.length > 0 ? (freeSlots.pop() as number) : slots++;
        slotOf[x] = slot;
        bitOf[x] = 1n << BigInt(slot);
        running.push(x);
      }
      continue;
    }
    // Completion of x: place it in every configuration, placing other running/info operations first if needed.
    const xbit = bitOf[x];
    const next = new Frontier();
    for (const c of frontier) {
      if (((c.w | c.r) & xbit) !== 0n) {
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
        while (steps > getBudget().maxSteps) yield { kind: 'unknown', steps: steps - 1, reason: 'steps' };
        // Checked often: one step can cost microseconds when the frontier is large, and a slice that overruns
        // steals the time of the depth-first search it alternates with.
        if ((steps & 15) === 0 && Date.now() > getBudget().deadline) {
          while (Date.now() > getBudget().deadline) yield { kind: 'unknown', steps, reason: 'time' };
        }
        const s = node.state;
        const sx = stepC(s, ops[x]);
        if (sx !== REJECT) next.add(saturate({ state: sx, w: node.w, r: node.r, info: node.info, u: node.u }, x));
        const push = (child: Config): void => {
          const c2 = saturate(child, x);
          if (seen.add(c2)) queue.push(c2);
        };
        for (const o of running) {
          const bit = bitOf[o];
          if (o === x || ((node.w | node.r) & bit) !== 0n) continue;
          const ns = stepC(s, ops[o]);
          if (ns === REJECT) continue;
          if (writes(ops[o])) push({ state: ns, w: node.w | bit, r: node.r, info: node.info, u: node.u });
          else push({ state: ns, w: node.w, r: node.r | bit, info: node.info, u: node.u });
        }
        // An info operation that changes nothing is never worth placing (leaving it out is at least as good).
        const tryInfo = (k: number): void => {
          if (count(node.info, k) >= avail[k]) return;
          const ns = stepC(s, ops[rep[k]]);
          if (ns !== REJECT && ns !== s)
            push({ state: ns, w: node.w, r: node.r, info: insertSorted(node.info, k), u: node.u });
        };
        for (const i of infoPuts) tryInfo(i);
        const matching = infoCas.get(s);
        if (matching) for (const i of matching) tryInfo(i);
        if (node.u < poolSize && s !== FRESH) {
          push({ state: FRESH, w: node.w, r: node.r, info: node.info, u: node.u + 1 });
        }
      }
      if (next.size > maxFrontier) return { kind: 'unknown', steps, reason: 'memory' };
    }
    const at = running.indexOf(x);
    running.splice(at, 1);
    freeSlots.push(slotOf[x]);
    if (next.size === 0) return { kind: 'fail', steps, stuck: ops[x].src, deepest };
    deepest++;
    frontier = next;
    const dying = deathAt.get(ei);
    if (dying !== undefined) {
      for (const v of dying) dead[v] = 1;
      const moved = infoPuts.filter((k) => dead[ops[rep[k]].a] === 1);
      if (moved.length > 0) {
        infoPuts = infoPuts.filter((k) => dead[ops[rep[k]].a] !== 1);
        for (const k of moved) poolSize += avail[k];
      }
      const rebuilt = new Frontier();
      for (const c of frontier) {
        let used = 0;
        for (const k of moved) used += count(c.info, k);
        const info = used === 0 ? c.info : c.info.filter((k) => !moved.includes(k));
        rebuilt.add(saturate({ state: canon(c.state), w: c.w, r: c.r, info, u: c.u + used }, -1));
      }
      frontier = rebuilt;
    }
  }
  return { kind: 'ok', steps };
}
