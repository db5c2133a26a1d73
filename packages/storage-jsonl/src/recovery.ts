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
 * - The first invalid line of the last segment, with no valid record after it, is a torn write (dropped, and
 *   reported) only if it has the shape a torn write can have: no newline before the end of the file, or a
 *   newline-terminated line whose damage is zero-filled sectors (see {@link classifyTail}). A complete line that fails
 *   its checksum is corruption, like any other invalid line: recovery stops with `CORRUPT_RECORD` naming the file
 *   and line.
 * - Everything opening the directory will change is listed in {@link ScanResult.repairs}.
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
  /** Why the dropped bytes are a torn write (the shape they have). */
  readonly reason: string;
}

/**
 * One change that opening a data directory makes to it. Plain JSON data, so that a runtime can log it or serve it
 * as is.
 */
export interface RecoveryRepair {
  /**
   * `truncated`: a torn write was cut off the end of the last segment. `rewroteHeader`: the last segment had no
   * complete header (a crash right after it was created), so its header was written again. `deleted`: a leftover
   * file (temporary file, obsolete segment, unreferenced snapshot data) was removed.
   */
  readonly action: 'truncated' | 'rewroteHeader' | 'deleted';
  /** Absolute path of the file concerned. */
  readonly file: string;
  /** Byte offset where the dropped bytes started (the file's new size when truncated); 0 for the other actions. */
  readonly offset: number;
  /** Number of bytes dropped: the torn tail, or the deleted file's size; 0 for `rewroteHeader`. */
  readonly bytes: number;
  /** 1-based line number of the first dropped line (`truncated`; 1 for `rewroteHeader`), else `null`. */
  readonly line: number | null;
  /** Why this was safe to do, in words. */
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
  /** Every change opening the directory makes, in the order it makes them (the torn tail first). */
  readonly repairs: RecoveryRepair[];
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
 * Disks write whole sectors; file offsets of sector boundaries are multiples of this (file system blocks are made of
 * whole sectors, and the smallest sector is 512 bytes).
 */
const SECTOR_BYTES = 512;

/**
 * Does every run of NUL bytes in `buf[start..end)` end on a sector boundary (and is there at least one)?
 *
 * The writer never produces a NUL byte (lines are JSON text, whose strings escape control characters). A file
 * system that grew a file before a power loss but never wrote some of its new blocks shows them as zeros, and
 * the first byte after such a hole is the first byte of a sector that was written. A flipped byte, by contrast,
 * lands anywhere.
 */
function zerosEndOnSectorBoundaries(buf: Buffer, start: number, end: number): boolean {
  let found = false;
  let p = buf.indexOf(0, start);
  while (p >= 0 && p < end) {
    let q = p;
    while (q < end && buf[q] === 0) q++;
    if (q % SECTOR_BYTES !== 0) return false;
    found = true;
    p = buf.indexOf(0, q);
  }
  return found;
}

/**
 * Decide whether the invalid line `buf[pos..nl)` (`nl` = -1 if no newline follows), the first invalid line of the
 * last segment with no valid line after it, is a torn write (`torn: true`) or corruption, and say why. `failure` is
 * why the line failed its check.
 *
 * Every write appends whole lines at the end of the file, and an append is acknowledged only after its fdatasync.
 * A process crash (`kill -9`) leaves the file a prefix of what was written, so only the last line can be
 * incomplete, and it then has no newline. A power loss can also lose unsynced sectors, which read back as zeros
 * on most file systems. So a torn write is either a line that reaches the end of the file without a newline, or a
 * line with holes of zeros that end on sector boundaries. A newline-terminated line with a bad checksum and no
 * such hole was written completely, and perhaps fsynced and acknowledged: dropping it could forget an entry or a
 * vote, so it is corruption (see docs/storage.md, "What a torn write can look like").
 */
function classifyTail(buf: Buffer, pos: number, nl: number, failure: string): { torn: boolean; reason: string } {
  if (nl < 0) {
    // A whole record followed by one byte that is neither its newline nor a zero (an unwritten sector) is not a
    // prefix of anything the writer wrote: the record is complete, and the byte where its newline was is damaged.
    if (buf[buf.length - 1] !== 0 && typeof checkLine(buf, pos, buf.length - 1) !== 'string')
      return {
        torn: false,
        reason:
          'the last record is complete but the byte after it is not a newline: a damaged record, not a torn write ' +
          `(the record starts at byte offset ${pos})`,
      };
    return { torn: true, reason: 'incomplete last line (no newline): a write cut short by a crash' };
  }
  if (zerosEndOnSectorBoundaries(buf, pos, nl))
    return {
      torn: true,
      reason: 'zero-filled sectors in the last line: a write that a power loss kept from reaching the disk',
    };
  return {
    torn: false,
    reason:
      `${failure}; the line is complete (newline-terminated), so it is not a torn write and may hold an ` +
      `acknowledged entry or vote (it starts at byte offset ${pos})`,
  };
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
        repairs: [],
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
        // Checksum failure: torn only at the end of the last segment, with nothing valid after it, and only if it
        // looks like a torn write.
        if (isLast && !(nl >= 0 && hasValidLineAfter(buf, nl + 1))) {
          const tail = classifyTail(buf, pos, nl, rec);
          if (tail.torn) {
            torn = { file: name, line, offset: pos, bytes: buf.length - pos, reason: tail.reason };
            break;
          }
          throw new StorageError('CORRUPT_RECORD', tail.reason, { file, line });
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
    repairs: await plannedRepairs(dir, segments, torn, leftovers, logStart),
    exists: true,
  };
}

/** What opening the directory will change, as {@link SegmentWriter.open} does it. */
async function plannedRepairs(
  dir: string,
  segments: readonly SegmentScan[],
  torn: TornTail | null,
  leftovers: readonly string[],
  logStart: number,
): Promise<RecoveryRepair[]> {
  const out: RecoveryRepair[] = [];
  if (torn)
    out.push({
      action: 'truncated',
      file: join(dir, torn.file),
      offset: torn.offset,
      bytes: torn.bytes,
      line: torn.line,
      reason: torn.reason,
    });
  const last = segments[segments.length - 1];
  if (last !== undefined && last.prev === null)
    out.push({
      action: 'rewroteHeader',
      file: join(dir, last.file),
      offset: 0,
      bytes: 0,
      line: 1,
      reason: 'the last segment had no complete header (a crash right after it was created)',
    });
  for (const name of leftovers) {
    const file = join(dir, name);
    let bytes = 0;
    try {
      bytes = (await fs.stat(file)).size;
    } catch (e) {
      if (!isNotFound(e))
        throw new StorageError('IO_ERROR', `cannot stat a leftover file: ${(e as Error).message}`, { file, cause: e });
    }
    const seq = parseSegmentFileName(name);
    const reason = name.endsWith(TMP_SUFFIX)
      ? 'temporary file of a write that a crash interrupted'
      : seq !== null
        ? `segment older than the snapshot's first needed segment ${segmentFileName(logStart)}: the snapshot replaced it`
        : 'snapshot data that snapshot.json does not name (an older or unfinished snapshot)';
    out.push({ action: 'deleted', file, offset: 0, bytes, line: null, reason });
  }
  return out;
}
