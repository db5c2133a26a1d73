import type { Entry, Index, Term } from './types.js';

/**
 * The in-memory Raft log: the entries after the latest snapshot, plus the index and term the snapshot ends at
 * (so the consistency check works for the entry right before the first retained one).
 *
 * `entries[k]` has index `snapshotIndex + 1 + k`. Entries are immutable values shared with messages and actions.
 */
export class RaftLog<C> {
  /** Index of the last entry covered by the snapshot (0 when there is none). */
  snapshotIndex: Index = 0;
  /** Term of the entry at `snapshotIndex`. */
  snapshotTerm: Term = 0;
  /** The retained entries, in index order. */
  entries: Entry<C>[] = [];

  /** Index of the last entry (or of the snapshot when the log is empty). */
  get lastIndex(): Index {
    return this.snapshotIndex + this.entries.length;
  }

  /** Term of the last entry. */
  get lastTerm(): Term {
    const n = this.entries.length;
    return n === 0 ? this.snapshotTerm : this.entries[n - 1].term;
  }

  /** The first index still held in memory. */
  get firstIndex(): Index {
    return this.snapshotIndex + 1;
  }

  /** Term of the entry at `index`, or undefined when it was compacted away or does not exist yet. */
  term(index: Index): Term | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex) return undefined;
    return this.entries[index - this.snapshotIndex - 1].term;
  }

  /** The entry at `index`, if held. */
  get(index: Index): Entry<C> | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex) return undefined;
    return this.entries[index - this.snapshotIndex - 1];
  }

  /** Entries from `from` to `to` inclusive; both must be held. */
  slice(from: Index, to: Index): Entry<C>[] {
    return this.entries.slice(from - this.snapshotIndex - 1, to - this.snapshotIndex);
  }

  /** Appends one entry; its index must be `lastIndex + 1`. */
  push(entry: Entry<C>): void {
    this.entries.push(entry);
  }

  /** Removes every entry at or after `index`. */
  truncateFrom(index: Index): void {
    const keep = Math.max(0, index - this.snapshotIndex - 1);
    if (keep < this.entries.length) this.entries.length = keep;
  }

  /** Drops entries up to and including `index` (which must be held), recording its term as the snapshot point. */
  compact(index: Index, term: Term): void {
    const drop = index - this.snapshotIndex;
    if (drop <= 0) return;
    this.entries = drop >= this.entries.length ? [] : this.entries.slice(drop);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** Discards every entry and starts again right after a snapshot at (`index`, `term`). */
  reset(index: Index, term: Term): void {
    this.entries = [];
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** The first index of the run of entries with `term` that contains `index` (for conflict hints). */
  firstIndexOfTerm(index: Index, term: Term): Index {
    let i = index;
    while (i - 1 > this.snapshotIndex && this.term(i - 1) === term) i--;
    return i;
  }

  /** The last index whose entry has `term`, or -1 when the log holds no entry of that term. */
  lastIndexOfTerm(term: Term): Index {
    for (let i = this.lastIndex; i > this.snapshotIndex; i--) {
      const t = this.entries[i - this.snapshotIndex - 1].term;
      if (t === term) return i;
      if (t < term) return -1;
    }
    return -1;
  }
}
