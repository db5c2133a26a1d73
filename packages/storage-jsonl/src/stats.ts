/**
 * The mutable counters behind `JsonlStorage.stats()`, shared by the write queue, the segment writer and the snapshot
 * writers (they are plain increments on the hot path, so they cost nothing measurable).
 *
 * @packageDocumentation
 */

/** Counters; see `StorageStats` in storage-api.ts for their meaning. */
export interface Counters {
  appendCalls: number;
  entriesAppended: number;
  hardStateCalls: number;
  flushes: number;
  fsyncs: number;
  logBytesWritten: number;
  segmentsCreated: number;
  segmentsDeleted: number;
}

/** All counters at zero. */
export function newCounters(): Counters {
  return {
    appendCalls: 0,
    entriesAppended: 0,
    hardStateCalls: 0,
    flushes: 0,
    fsyncs: 0,
    logBytesWritten: 0,
    segmentsCreated: 0,
    segmentsDeleted: 0,
  };
}
