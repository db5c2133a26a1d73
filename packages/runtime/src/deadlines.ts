/**
 * Deadlines of requests in progress, on one timer.
 *
 * Why not a timer per request: at tens of thousands of requests per second every member created and cancelled a
 * host timer for each (about 2 % of a busy node's CPU in Node, plus the garbage of the timer objects), and a
 * forwarded request's timeout, being what is left of its sender's, differs from request to request, which is the
 * expensive case for Node's timer lists. Here a binary min-heap keeps the deadlines (add and remove are O(log n)
 * pointer moves), and one clock timer is armed for the earliest of them.
 *
 * @packageDocumentation
 */

import type { Clock, TimerHandle } from './io.js';

/** Something with a deadline: the heap keeps its position in `heapIndex` (-1 when it is not in a heap). */
export interface Deadline {
  /** When it expires, in the clock's milliseconds. */
  readonly deadline: number;
  /** Its position in the heap, or -1. Written only by {@link Deadlines}. */
  heapIndex: number;
  /** Called once, when the deadline has passed and it was not removed before. */
  expire(): void;
}

/** A set of {@link Deadline}s that expire on time, on a single timer of `clock`. */
export class Deadlines {
  private readonly heap: Deadline[] = [];
  private timer: TimerHandle | null = null;
  /** When the armed timer fires (the deadline it was armed for). */
  private armedFor = Number.POSITIVE_INFINITY;

  constructor(
    /** The clock the deadlines are read on and the timer is set with. */
    readonly clock: Clock,
  ) {}

  /** How many deadlines are pending. */
  get size(): number {
    return this.heap.length;
  }

  /** Add `d`; it expires at `d.deadline` unless removed first. */
  add(d: Deadline): void {
    const h = this.heap;
    d.heapIndex = h.length;
    h.push(d);
    this.up(d.heapIndex);
    if (d.deadline < this.armedFor) this.arm();
  }

  /**
   * Remove `d` (a no-op when it is not pending). The timer stays armed while other deadlines wait: firing early
   * costs one wake-up that re-arms it.
   */
  remove(d: Deadline): void {
    const i = d.heapIndex;
    const h = this.heap;
    if (i < 0 || h[i] !== d) return;
    d.heapIndex = -1;
    const last = h.pop() as Deadline;
    // Nothing left: no timer may keep a host alive (Node waits for armed timers before it exits).
    if (h.length === 0) this.disarm();
    if (i === h.length) return;
    h[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  /** Forget every deadline and the timer (nothing expires afterwards). */
  clear(): void {
    for (const d of this.heap) d.heapIndex = -1;
    this.heap.length = 0;
    this.disarm();
  }

  private arm(): void {
    this.disarm();
    const first = this.heap[0];
    if (first === undefined) return;
    this.armedFor = first.deadline;
    // At least 1 ms: a deadline a rounding error ahead of `now` must not re-arm a 0 ms timer forever (a virtual clock
    // would never move on). Node's timers have 1 ms grain anyway.
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(1, first.deadline - this.clock.now()));
  }

  private disarm(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    const h = this.heap;
    while (h.length > 0 && h[0].deadline <= now) {
      const d = h[0];
      this.remove(d);
      d.expire();
    }
    if (h.length > 0 && this.timer === null) this.arm();
  }

  private up(i: number): void {
    const h = this.heap;
    const d = h[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent];
      if (p.deadline <= d.deadline) break;
      h[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    h[i] = d;
    d.heapIndex = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const d = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r].deadline < h[l].deadline ? r : l;
      if (h[c].deadline >= d.deadline) break;
      h[i] = h[c];
      h[i].heapIndex = i;
      i = c;
    }
    h[i] = d;
    d.heapIndex = i;
  }
}
