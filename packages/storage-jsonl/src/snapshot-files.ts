/**
 * Snapshot files: the data file (`snapshot-<index>-<generation>.bin`, raw state-machine bytes) and the metadata file
 * (`snapshot.json`, one checksummed JSON line that names the data file). Both are written to a temporary file,
 * fsynced and renamed into place; the metadata rename is the moment a new snapshot takes effect, and it is followed
 * by an fsync of the directory.
 *
 * @packageDocumentation
 */

import fs from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, crcHex } from './crc32.js';
import { StorageError } from './errors.js';
import { encodeLine, SNAPSHOT_META_FILE, type SnapshotMetaRecord, snapshotMetaBody, TMP_SUFFIX } from './format.js';
import { close, fsync, fsyncDir, ioError, open, writeAll, writeFileAtomic } from './fsutil.js';
import type { Counters } from './stats.js';

/** Size and checksum of snapshot data that has been written. */
export interface WrittenData {
  readonly size: number;
  readonly crc: number;
}

/** Write snapshot data to `<name>.tmp`, fsync it and rename it to `name` (the directory is fsynced later). */
export async function writeSnapshotData(
  dir: string,
  name: string,
  data: Uint8Array,
  sync: boolean,
): Promise<WrittenData> {
  const path = join(dir, name);
  try {
    await writeFileAtomic(path, data, sync);
  } catch (e) {
    throw ioError('writing snapshot data', path, e);
  }
  return { size: data.byteLength, crc: crc32(data) };
}

/** Replace `snapshot.json` atomically and durably (temporary file, fsync, rename, fsync of the directory). */
export async function writeSnapshotMeta(dir: string, rec: SnapshotMetaRecord, sync: boolean): Promise<void> {
  const path = join(dir, SNAPSHOT_META_FILE);
  try {
    await writeFileAtomic(path, encodeLine(snapshotMetaBody(rec)), sync);
    if (sync) await fsyncDir(dir);
  } catch (e) {
    throw ioError('writing snapshot metadata', path, e);
  }
}

/** Read the whole data file of a snapshot and verify its size and checksum. */
export async function readSnapshotData(dir: string, rec: SnapshotMetaRecord): Promise<Uint8Array> {
  const path = join(dir, rec.file);
  const buf = await fs.readFile(path);
  if (buf.length !== rec.size)
    throw new StorageError('CORRUPT_SNAPSHOT', `snapshot data has ${buf.length} bytes, expected ${rec.size}`, {
      file: path,
    });
  const crc = crcHex(crc32(buf));
  if (crc !== rec.dataCrc)
    throw new StorageError('CORRUPT_SNAPSHOT', `snapshot data checksum is ${crc}, expected ${rec.dataCrc}`, {
      file: path,
    });
  const out = new Uint8Array(buf.length);
  out.set(buf);
  return out;
}

/** Read up to `maxBytes` bytes at `offset` of a snapshot's data file (fewer at the end; none past it). */
export async function readSnapshotRange(
  dir: string,
  rec: SnapshotMetaRecord,
  offset: number,
  maxBytes: number,
): Promise<Uint8Array> {
  const len = Math.max(0, Math.min(maxBytes, rec.size - offset));
  const out = new Uint8Array(len);
  if (len === 0) return out;
  const fh = await fs.open(join(dir, rec.file), 'r');
  try {
    let got = 0;
    while (got < len) {
      const { bytesRead } = await fh.read(out, got, len - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === len ? out : out.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/**
 * Receives a snapshot in chunks into `<name>.tmp`. Chunks must arrive in order: each `write` continues at the
 * current size, or restarts the transfer at offset 0. `finish` fsyncs the file and renames it to `name`.
 */
export class ChunkFile {
  private fd: number | null = null;
  private size = 0;
  private crc = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private done = false;
  private readonly tmpPath: string;

  constructor(
    private readonly dir: string,
    readonly name: string,
    private readonly sync: boolean,
    private readonly counters: Counters,
  ) {
    this.tmpPath = join(dir, name + TMP_SUFFIX);
  }

  /** Bytes received so far (the offset the next chunk must start at). */
  get receivedBytes(): number {
    return this.size;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Store `data` at `offset` (see the class description). */
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.serial(async () => {
      if (this.done) throw new StorageError('INVALID_ARGUMENT', 'snapshot transfer already finished or aborted');
      if (offset !== 0 && offset !== this.size)
        throw new StorageError(
          'INVALID_ARGUMENT',
          `snapshot chunk at offset ${offset}, expected ${this.size} (or 0 to restart the transfer)`,
        );
      try {
        if (offset === 0) {
          if (this.fd !== null) await close(this.fd);
          this.fd = await open(this.tmpPath, 'w');
          this.size = 0;
          this.crc = 0;
        }
        if (this.fd === null) this.fd = await open(this.tmpPath, 'w');
        await writeAll(this.fd, data);
      } catch (e) {
        throw ioError('writing snapshot chunk', this.tmpPath, e);
      }
      this.size += data.byteLength;
      this.crc = crc32(data, 0, data.byteLength, this.crc);
    });
  }

  /** Make the received data durable under its final name; resolves to its size and checksum. */
  finish(): Promise<WrittenData> {
    return this.serial(async () => {
      if (this.done) throw new StorageError('INVALID_ARGUMENT', 'snapshot transfer already finished or aborted');
      this.done = true;
      try {
        if (this.fd === null) this.fd = await open(this.tmpPath, 'w');
        if (this.sync) {
          this.counters.fsyncs++;
          await fsync(this.fd);
        }
        await close(this.fd);
        this.fd = null;
        await fs.rename(this.tmpPath, join(this.dir, this.name));
      } catch (e) {
        throw ioError('finishing snapshot transfer', this.tmpPath, e);
      }
      return { size: this.size, crc: this.crc };
    });
  }

  /** Give up: close and delete the temporary file. */
  abort(): Promise<void> {
    return this.serial(async () => {
      if (this.done) return;
      this.done = true;
      if (this.fd !== null) await close(this.fd).catch(() => undefined);
      this.fd = null;
      await fs.rm(this.tmpPath, { force: true });
    });
  }
}
