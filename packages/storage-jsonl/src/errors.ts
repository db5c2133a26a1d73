/**
 * The one error class this package throws, with a machine-readable `code`.
 *
 * @packageDocumentation
 */

/**
 * Machine-readable reasons a storage operation failed.
 *
 * - `CORRUPT_RECORD`: a line of a segment failed its checksum or is not a valid record, and it is not a torn tail
 *   (a valid record follows it, it is in a segment that is not the last one, or it is complete: newline-terminated,
 *   or a whole record whose newline is damaged, since a crash only cuts a line short). `file` and `line` name it.
 * - `LOG_GAP`: records are individually valid but do not form a contiguous log (an entry index jumps ahead, or a
 *   segment does not continue where the previous one ended). `file` and `line` name the offending record.
 * - `MISSING_SEGMENT`: a segment file that the log needs is absent (a hole in the sequence numbers, or the first
 *   segment starts after the snapshot). `file` names the missing file.
 * - `CORRUPT_SNAPSHOT`: `snapshot.json` fails its checksum, or the snapshot data file is missing, has the wrong size,
 *   or (when read) the wrong checksum.
 * - `UNSUPPORTED_VERSION`: the directory was written by an incompatible version of this package.
 * - `LOCKED`: another live process (or another open storage in this process) holds the data directory.
 * - `INVALID_ARGUMENT`: the caller broke the API contract (a non-contiguous append, a compaction beyond the snapshot,
 *   a command the codec cannot represent, ...). Nothing was written.
 * - `CLOSED`: the storage was closed.
 * - `IO_ERROR`: a write, fsync, rename or delete failed. The storage refuses every later write: after a failed
 *   fsync nothing about the file's contents can be trusted, so the process should restart and recover from disk.
 */
export type StorageErrorCode =
  | 'CORRUPT_RECORD'
  | 'LOG_GAP'
  | 'MISSING_SEGMENT'
  | 'CORRUPT_SNAPSHOT'
  | 'UNSUPPORTED_VERSION'
  | 'LOCKED'
  | 'INVALID_ARGUMENT'
  | 'CLOSED'
  | 'IO_ERROR';

/** Where in the data directory an error was found. */
export interface StorageErrorLocation {
  /** Absolute path of the file concerned (for `MISSING_SEGMENT`: the file that should exist). */
  readonly file?: string;
  /** 1-based line number within `file`, when the error concerns one record. */
  readonly line?: number;
  /** The underlying error (for `IO_ERROR`, say). */
  readonly cause?: unknown;
}

/**
 * Every error this package produces. Check `code` rather than the message; `file` and `line` (when present) say
 * where the problem is. Opening a damaged directory never deletes anything: fix or move the named file and retry.
 */
export class StorageError extends Error {
  /** The machine-readable reason. */
  readonly code: StorageErrorCode;
  /** Absolute path of the file concerned, if any. */
  readonly file: string | undefined;
  /** 1-based line number within `file`, if the error concerns one record. */
  readonly line: number | undefined;

  constructor(code: StorageErrorCode, message: string, where: StorageErrorLocation = {}) {
    const place =
      where.file === undefined ? '' : where.line === undefined ? ` (${where.file})` : ` (${where.file}:${where.line})`;
    super(`${code}: ${message}${place}`, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = 'StorageError';
    this.code = code;
    this.file = where.file;
    this.line = where.line;
  }
}

/** True if `e` is a {@link StorageError}, optionally with the given code. */
export function isStorageError(e: unknown, code?: StorageErrorCode): e is StorageError {
  return e instanceof StorageError && (code === undefined || e.code === code);
}
