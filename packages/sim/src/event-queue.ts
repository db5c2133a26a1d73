/**
 * The deterministic event queue of virtual time: a binary min-heap ordered by (time, insertion sequence).
 *
 * @packageDocumentation
 */

/** Something scheduled at a virtual time. `seq` is assigned by the queue and breaks ties in insertion order. */
export interface Scheduled {
  /** Virtual time in milliseconds. */
  time: number;
  /** Insertion sequence number (set by {@link EventQueue.push}). */
  seq: number;
}

/**
 * A min-heap of events ordered by time, then by insertion order, so that two events at the same virtual time are
 * always processed in the order they were scheduled: the queue is fully deterministic.
 */
export class EventQueue<E extends Scheduled> {
  private readonly heap: E[] = [];
  private nextSeq = 0;

  /** Number of pending events. */
  get size(): number {
    return this.heap.length;
  }

  /** Schedules `event` (its `seq` is overwritten). */
  push(event: E): void {
    event.seq = this.nextSeq++;
    const h = this.heap;
    h.push(event);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      const t = h[i];
      h[i] = h[p];
      h[p] = t;
      i = p;
    }
  }

  /** @returns the earliest event without removing it. */
  peek(): E | undefined {
    return this.heap[0];
  }

  /** Removes and returns the earliest event. */
  pop(): E | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as E;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && less(h[l], h[m])) m = l;
        if (r < n && less(h[r], h[m])) m = r;
        if (m === i) break;
        const t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
      }
    }
    return top;
  }

  /** Removes every event for which `drop` returns true (order of the rest is preserved). */
  removeWhere(drop: (event: E) => boolean): number {
    const keep = this.heap.filter((e) => !drop(e));
    const removed = this.heap.length - keep.length;
    if (removed > 0) {
      this.heap.length = 0;
      keep.sort((a, b) => (less(a, b) ? -1 : 1));
      for (const e of keep) this.heap.push(e);
    }
    return removed;
  }

  /** @returns a copy of all pending events in processing order. */
  toArray(): E[] {
    return this.heap.slice().sort((a, b) => (less(a, b) ? -1 : 1));
  }
}

function less(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
