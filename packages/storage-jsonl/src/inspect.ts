/**
 * Read-only inspection of a data directory: the `raft-storage-inspect` command and any CLI that embeds it.
 *
 * @packageDocumentation
 */

import { resolve } from 'node:path';
import type { ClusterConfig, HardState, Index } from '@raft/core';
import { StorageError } from './errors.js';
import type { StoredEntry } from './format.js';
import { scanDataDir, type TornTail } from './recovery.js';

/** One segment file as reported by {@link inspectDataDir}. */
export interface InspectedSegment {
  /** File name. */
  readonly file: string;
  /** Sequence number. */
  readonly seq: number;
  /** Size on disk in bytes. */
  readonly bytes: number;
  /** Number of valid records (header, hard-state and entry lines). */
  readonly records: number;
  /** Lowest index of the live entries this file holds (after the snapshot), or `null` if none. */
  readonly firstIndex: Index | null;
  /** Highest index of the live entries this file holds, or `null` if none. */
  readonly lastIndex: Index | null;
}

/** Everything {@link inspectDataDir} reports. Plain JSON data. */
export interface InspectReport {
  /** The data directory (absolute path). */
  readonly dir: string;
  /** The latest term and vote. */
  readonly hardState: HardState;
  /** The snapshot, or `null`. */
  readonly snapshot: {
    readonly index: Index;
    readonly term: number;
    readonly config: ClusterConfig;
    readonly file: string;
    readonly bytes: number;
  } | null;
  /** The log after the snapshot. */
  readonly log: {
    /** First entry index, or `null` if the log is empty. */
    readonly firstIndex: Index | null;
    /** Last entry index (the snapshot's index if the log is empty). */
    readonly lastIndex: Index;
    /** Number of entries. */
    readonly count: number;
  };
  /** Segment files, oldest first. */
  readonly segments: readonly InspectedSegment[];
  /** A torn tail that opening the directory would truncate, or `null`. */
  readonly torn: TornTail | null;
  /** Leftover files that opening the directory would delete. */
  readonly leftovers: readonly string[];
  /** The requested entries as stored (commands in their JSON form), if `entries` was asked for. */
  readonly entries?: readonly StoredEntry[];
}

/** Options of {@link inspectDataDir}. */
export interface InspectOptions {
  /** Include entries in the report: `true` for all, or an inclusive index range (either end optional). */
  readonly entries?: boolean | { readonly from?: Index; readonly to?: Index };
}

/**
 * Describe a data directory without modifying it: term and vote, snapshot, log range, segment files, and any torn
 * tail or leftover files that opening it would clean up. Safe to run while a node is using the directory (it may
 * then see a write in progress as a torn tail).
 *
 * @throws StorageError if the directory does not exist (`IO_ERROR`) or is damaged (`CORRUPT_RECORD`, `LOG_GAP`,
 *   `MISSING_SEGMENT`, `CORRUPT_SNAPSHOT`, `UNSUPPORTED_VERSION`), naming the file and line.
 */
export async function inspectDataDir(dir: string, options: InspectOptions = {}): Promise<InspectReport> {
  const abs = resolve(dir);
  const scan = await scanDataDir(abs);
  if (!scan.exists) throw new StorageError('IO_ERROR', 'the data directory does not exist', { file: abs });
  const ranges = new Map<number, { first: number; last: number }>();
  scan.entries.forEach((e, k) => {
    const seq = scan.entrySegments[k];
    const r = ranges.get(seq);
    if (r) r.last = e.index;
    else ranges.set(seq, { first: e.index, last: e.index });
  });
  const snap = scan.snapshot;
  const report: InspectReport = {
    dir: abs,
    hardState: scan.hardState,
    snapshot: snap
      ? { index: snap.index, term: snap.term, config: snap.config, file: snap.file, bytes: snap.size }
      : null,
    log: {
      firstIndex: scan.entries.length > 0 ? scan.entries[0].index : null,
      lastIndex: scan.lastIndex,
      count: scan.entries.length,
    },
    segments: scan.segments.map((s) => ({
      file: s.file,
      seq: s.seq,
      bytes: s.fileBytes,
      records: s.records,
      firstIndex: ranges.get(s.seq)?.first ?? null,
      lastIndex: ranges.get(s.seq)?.last ?? null,
    })),
    torn: scan.torn,
    leftovers: scan.leftovers,
  };
  const want = options.entries;
  if (want) {
    const from = want === true ? 0 : (want.from ?? 0);
    const to = want === true ? Number.POSITIVE_INFINITY : (want.to ?? Number.POSITIVE_INFINITY);
    return { ...report, entries: scan.entries.filter((e) => e.index >= from && e.index <= to) };
  }
  return report;
}

function configText(c: ClusterConfig): string {
  const parts = [`voters [${c.voters.join(', ')}]`];
  if (c.oldVoters) parts.push(`old voters [${c.oldVoters.join(', ')}]`);
  if (c.learners.length > 0) parts.push(`learners [${c.learners.join(', ')}]`);
  return parts.join(', ');
}

/** Render a report as the human-readable text the inspect command prints (without the entries). */
export function formatInspectReport(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`data directory: ${r.dir}`);
  lines.push(`term: ${r.hardState.term}`);
  lines.push(`voted for: ${r.hardState.votedFor ?? '(nobody)'}`);
  if (r.snapshot) {
    const s = r.snapshot;
    lines.push(`snapshot: index ${s.index}, term ${s.term}, ${s.bytes} bytes (${s.file}), ${configText(s.config)}`);
  } else lines.push('snapshot: none');
  if (r.log.count > 0) lines.push(`log: entries ${r.log.firstIndex}..${r.log.lastIndex} (${r.log.count} entries)`);
  else lines.push(`log: empty (last index ${r.log.lastIndex})`);
  lines.push(`segments: ${r.segments.length}`);
  for (const s of r.segments) {
    const range = s.firstIndex === null ? 'no live entries' : `entries ${s.firstIndex}..${s.lastIndex}`;
    lines.push(`  ${s.file}  ${range}  ${s.records} records  ${s.bytes} bytes`);
  }
  if (r.torn)
    lines.push(
      `torn tail: ${r.torn.file} line ${r.torn.line}, ${r.torn.bytes} bytes at offset ${r.torn.offset} (${r.torn.reason}); ` +
        'opening the directory will truncate it',
    );
  if (r.leftovers.length > 0) lines.push(`leftover files (deleted on open): ${r.leftovers.join(', ')}`);
  return lines.join('\n');
}
