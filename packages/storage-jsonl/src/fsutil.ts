/**
 * Small promise wrappers over `node:fs` callbacks (cheaper than `fs/promises` file handles on the hot path), and the
 * durable-file helpers built on them.
 *
 * @packageDocumentation
 */

import fs from 'node:fs';
import { StorageError } from './errors.js';

/** Wrap a failed I/O call as an `IO_ERROR`. */
export function ioError(what: string, file: string, cause: unknown): StorageError {
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new StorageError('IO_ERROR', `${what} failed: ${msg}`, { file, cause });
}

/** Write all of `buf` at the file's current position (files are opened in append mode). */
export function writeAll(fd: number, buf: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const step = (): void => {
      fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
        if (err) return reject(err);
        off += n;
        if (off < buf.length) step();
        else resolve();
      });
    };
    if (buf.length === 0) resolve();
    else step();
  });
}

/**
 * Write all of `buf` with synchronous `write` calls. Used for small group-commit batches: copying a few KiB into the
 * page cache takes microseconds, far less than the thread-pool round trip of an asynchronous write, and that round
 * trip would otherwise be paid on every one-at-a-time append in addition to the fdatasync's.
 */
export function writeAllSync(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, null);
}

/** `fdatasync(2)`: the file's data (and the metadata needed to read it, such as its size) reach the disk. */
export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** `fdatasync(2)` on the calling thread: blocks the event loop until the data is on disk. */
export function fdatasyncSync(fd: number): void {
  fs.fdatasyncSync(fd);
}

/** `fsync(2)`. */
export function fsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Open a file. */
export function open(path: string, flags: string, mode = 0o644): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** Close a file descriptor. */
export function close(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * fsync a directory, so that file creations, renames and deletions in it are durable. (On Linux and macOS a
 * directory can be opened read-only and fsynced; platforms that refuse, such as Windows, are skipped.)
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fd: number;
  try {
    fd = await open(dir, 'r');
  } catch (e) {
    if (process.platform === 'win32') return;
    throw e;
  }
  try {
    await fsync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw e;
  } finally {
    await close(fd);
  }
}

/**
 * Write `data` to `path` through a temporary file: write `path.tmp`, fsync it, rename it over `path`. The caller
 * fsyncs the directory (once, after possibly several renames). With `sync` false the fsync is skipped.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, sync: boolean): Promise<void> {
  const tmp = `${path}.tmp`;
  const fd = await open(tmp, 'w');
  try {
    await writeAll(fd, data);
    if (sync) await fsync(fd);
  } finally {
    await close(fd);
  }
  await fs.promises.rename(tmp, path);
}

/** True if the error is "no such file". */
export function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
