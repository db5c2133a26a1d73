/**
 * Recovery: read a data directory, verify every checksum, and rebuild the hard state, the log and the snapshot
 * metadata. {@link scanDataDir} never modifies anything; it also reports what opening the directory would repair
 * (a torn tail to truncate, leftover files to delete), so that the inspect tool can share it.
 *
 * Rules (see docs/storage.md):
 * - Segments are replayed in sequence order. An entry record at index `i` replaces every entry at or after `i`
 *   (that is how a truncated suffix is recorded: by appending its replacement), so `i` may be at most one past the
 *   previous record's index. A header opens each segment and repeats the hard state and the index the log had
 *   reached (`prev`); it must match the end of the previous segment.
 * - An invalid line at the end of the last segment, with no valid record after it, is a torn write: it is dropped.
 *   Any other invalid line stops recovery with `CORRUPT_RECORD` naming the file and line.
 * - Segments with a sequence number below the snapshot's `logStart` are obsolete (the snapshot replaced them).
 *
 * @packageDocumentation
 */

import fs from 'node:fs/promises';
import { join } from 'node:path';
import type { HardState } from '@raft/core';
import { StorageError } from './errors.js';
import {
  checkLine,
  isSnapshotDataFileName,
  type LogRecord,
  parseSegmentFileName,
  SNAPSHOT_META_FILE,
  type SnapshotMetaRecord,
  type StoredEntry,
  segmentFileName,
  TMP_SUFFIX,
  toLogRecord,
  toSnapshotMetaRecord,
} from './format.js';
import { isNotFound } from './fsutil.js';

/** What recovery learned about one retained segment file. */
export interface SegmentScan {
  /** Sequence number (from the file name). */
  readonly seq: number;
  /** File name (relative to the data directory). */
  readonly file: string;
  /** The log index reached before this segment (from its header); `null` if the header was torn away. */
  readonly prev: number | null;
  /** Highest entry index of any record in the file, or `null` if it holds no entry records. */
  readonly maxIndex: number | null;
  /** Number of valid records (header included). */
  readonly records: number;
  /** Bytes of valid records (the file is truncated to this on open). */
  readonly validBytes: number;
  /** Size of the file on disk. */
  readonly fileBytes: number;
}

/** A torn write found at the end of the last segment. */
export interface TornTail {
  /** File name of the segment. */
  readonly file: string;
  /** 1-based line number of the first torn line. */
  readonly line: number;
  /** Byte offset where the torn data starts (the file is truncated to this). */
  readonly offset: number;
  /** Number of bytes that will be dropped. */
  readonly bytes: number;
  /** Why the first dropped line is invalid. */
  readonly reason: string;
}

/** The result of scanning a data directory. */
export interface ScanResult {
  /** The snapshot metadata file's contents, or `null`. */
  readonly snapshot: SnapshotMetaRecord | null;
  /** The latest hard state. */
  readonly hardState: HardState;
  /** Live entries after the snapshot's index, in order, commands in their stored JSON form. */
  readonly entries: StoredEntry[];
  /** For each entry of `entries`, the sequence number of the segment holding it. */
  readonly entrySegments: number[];
  /** Index of the last entry record replayed (at least the snapshot index). */
  readonly lastIndex: number;
  /** Retained segments in order (the last one is where appends continue). */
  readonly segments: SegmentScan[];
  /** A torn tail to truncate, if any. */
  readonly torn: TornTail | null;
  /** Files that opening the directory deletes: obsolete segments, temporary files, unreferenced snapshot data. */
  readonly leftovers: string[];
  /** Whether the data directory exists at all. */
  readonly exists: boolean;
}

const EMPTY_HS: HardState = { term: 0, votedFor: null };

async function readSnapshotMeta(dir: string): Promise<SnapshotMetaRecord | null> {
  const file = join(dir, SNAPSHOT_META_FILE);
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw new StorageError('IO_ERROR', `cannot read snapshot metadata: ${(e as Error).message}`, { file, cause: e });
  }
  const end = buf.length > 0 && buf[buf.length - 1] === 0x0a ? buf.length - 1 : buf.length;
  const checked = checkLine(buf, 0, end);
  if (typeof checked === 'string' || end !== buf.length - 1)
    throw new StorageError('CORRUPT_SNAPSHOT', typeof checked === 'string' ? checked : 'missing final newline', {
      file,
      line: 1,
    });
  const rec = toSnapshotMetaRecord(checked);
  if (typeof rec === 'string') {
    const code = rec.startsWith('unsupported format version') ? 'UNSUPPORTED_VERSION' : 'CORRUPT_SNAPSHOT';
    throw new StorageError(code, rec, { file, line: 1 });
  }
  const dataFile = join(dir, rec.file);
  let size: number;
  try {
    size = (await fs.stat(dataFile)).size;
  } catch (e) {
    if (isNotFound(e))
      throw new StorageError('CORRUPT_SNAPSHOT', `snapshot data file ${rec.file} is missing`, { file: dataFile });
    throw new StorageError('IO_ERROR', `cannot stat snapshot data: ${(e as Error).message}`, { file: dataFile });
  }
  if (size !== rec.size)
    throw new StorageError('CORRUPT_SNAPSHOT', `snapshot data has ${size} bytes, expected ${rec.size}`, {
      file: dataFile,
    });
  return rec;
}

/** Does any complete line in `buf[from..)` pass its checksum? */
function hasValidLineAfter(buf: Buffer, from: number): boolean {
  let pos = from;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) return false;
    if (typeof checkLine(buf, pos, nl) !== 'string') return true;
    pos = nl + 1;
  }
  return false;
}

/**
 * Read and verify a data directory without modifying it.
 *
 * @throws StorageError `CORRUPT_RECORD`, `LOG_GAP`, `MISSING_SEGMENT`, `CORRUPT_SNAPSHOT`, `UNSUPPORTED_VERSION`
 *   or `IO_ERROR`; the error's `file` and `line` say where.
 */
export async function scanDataDir(dir: string): Promise<ScanResult> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if (isNotFound(e))
      return {
        snapshot: null,
        hardState: EMPTY_HS,
        entries: [],
        entrySegments: [],
        lastIndex: 0,
        segments: [],
        torn: null,
        leftovers: [],
        exists: false,
      };
    throw new StorageError('IO_ERROR', `cannot list data directory: ${(e as Error).message}`, { file: dir, cause: e });
  }
  names.sort();

  const snapshot = await readSnapshotMeta(dir);
  const base = snapshot?.index ?? 0;
  const logStart = snapshot?.logStart ?? 0;

  const leftovers: string[] = [];
  const seqs: number[] = [];
  for (const name of names) {
    const seq = parseSegmentFileName(name);
    if (seq !== null) {
      if (seq < logStart) leftovers.push(name);
      else seqs.push(seq);
    } else if (name.endsWith(TMP_SUFFIX)) leftovers.push(name);
    else if (isSnapshotDataFileName(name) && name !== snapshot?.file) leftovers.push(name);
    // Anything else (LOCK, snapshot.json, files the user put there) is left alone.
  }
  seqs.sort((a, b) => a - b);
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1)
      throw new StorageError(
        'MISSING_SEGMENT',
        `segment ${segmentFileName(seqs[i - 1] + 1)} is missing between ${segmentFileName(seqs[i - 1])} and ${segmentFileName(seqs[i])}`,
        { file: join(dir, segmentFileName(seqs[i - 1] + 1)) },
      );
  }

  let hardState: HardState = snapshot?.hardState ?? EMPTY_HS;
  const entries: StoredEntry[] = [];
  const entrySegments: number[] = [];
  let lastWritten = base;
  const segments: SegmentScan[] = [];
  let torn: TornTail | null = null;

  for (let s = 0; s < seqs.length; s++) {
    const seq = seqs[s];
    const name = segmentFileName(seq);
    const file = join(dir, name);
    const isLast = s === seqs.length - 1;
    let buf: Buffer;
    try {
      buf = await fs.readFile(file);
    } catch (e) {
      throw new StorageError('IO_ERROR', `cannot read segment: ${(e as Error).message}`, { file, cause: e });
    }
    let pos = 0;
    let line = 0;
    let prev: number | null = null;
    let maxIndex: number | null = null;
    let records = 0;
    while (pos < buf.length) {
      line++;
      const nl = buf.indexOf(0x0a, pos);
      const end = nl < 0 ? buf.length : nl;
      const checked = nl < 0 ? 'incomplete line (no newline)' : checkLine(buf, pos, end);
      let rec: LogRecord | string = typeof checked === 'string' ? checked : toLogRecord(checked);
      if (typeof rec === 'string' && typeof checked === 'string') {
        // Checksum failure: torn only at the end of the last segment, with nothing valid after it.
        if (isLast && !(nl >= 0 && hasValidLineAfter(buf, nl + 1))) {
          torn = { file: name, line, offset: pos, bytes: buf.length - pos, reason: rec };
          break;
        }
        throw new StorageError('CORRUPT_RECORD', rec, { file, line });
      }
      if (typeof rec === 'string') {
        const code = rec.startsWith('unsupported format version') ? 'UNSUPPORTED_VERSION' : 'CORRUPT_RECORD';
        throw new StorageError(code, rec, { file, line });
      }
      rec = rec as LogRecord;
      if (line === 1) {
        if (rec.rec !== 'segment')
          throw new StorageError('CORRUPT_RECORD', 'the first record of a segment must be its header', { file, line });
        if (rec.seq !== seq)
          throw new StorageError('CORRUPT_RECORD', `header says segment ${rec.seq}, file name says ${seq}`, {
            file,
            line,
          });
        if (s === 0) {
          if (rec.prev > base)
            throw new StorageError(
              'MISSING_SEGMENT',
              `the log resumes after index ${rec.prev} but the snapshot only covers up to index ${base}: ` +
                `an earlier segment (or the snapshot) is missing`,
              { file: join(dir, segmentFileName(seq - 1)) },
            );
        } else if (rec.prev !== lastWritten) {
          throw new StorageError(
            'LOG_GAP',
            `segment starts after index ${rec.prev} but the previous segment ends at index ${lastWritten}`,
            { file, line },
          );
        }
        prev = rec.prev;
        lastWritten = rec.prev;
        hardState = rec.hardState;
      } else if (rec.rec === 'segment') {
        throw new StorageError('CORRUPT_RECORD', 'segment header in the middle of a segment', { file, line });
      } else if (rec.rec === 'hardState') {
        hardState = rec.hardState;
      } else {
        const e = rec.entry;
        const i = e.index;
        if (i > lastWritten + 1)
          throw new StorageError('LOG_GAP', `entry ${i} follows entry ${lastWritten}: entries are missing`, {
            file,
            line,
          });
        const keep = Math.max(0, i - 1 - base);
        if (entries.length > keep) {
          entries.length = keep;
          entrySegments.length = keep;
        }
        if (i > base) {
          entries.push(e);
          entrySegments.push(seq);
        }
        lastWritten = i;
        maxIndex = maxIndex === null ? i : Math.max(maxIndex, i);
      }
      records++;
      pos = end + 1;
    }
    if (prev === null && !isLast) throw new StorageError('CORRUPT_RECORD', 'segment has no header', { file, line: 1 });
    segments.push({
      seq,
      file: name,
      prev,
      maxIndex,
      records,
      validBytes: Math.min(pos, buf.length),
      fileBytes: buf.length,
    });
  }

  if (segments.length > 0 && lastWritten < base) {
    const last = segments[segments.length - 1];
    throw new StorageError('LOG_GAP', `the log ends at index ${lastWritten}, before the snapshot's index ${base}`, {
      file: join(dir, last.file),
    });
  }

  return {
    snapshot,
    hardState,
    entries,
    entrySegments,
    lastIndex: Math.max(lastWritten, base),
    segments,
    torn,
    leftovers,
    exists: true,
  };
}
