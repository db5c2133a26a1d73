/**
 * The directory lock: one open storage per data directory. Within this process a set of open directories refuses a
 * second open; across processes the `LOCK` file (created exclusively, holding the owner's pid) does, and a `LOCK`
 * left by a process that died is taken over. Separate because it is about ownership of the directory, not about
 * reading or writing the log.
 *
 * @packageDocumentation
 */

import fs from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from './errors.js';
import { LOCK_FILE } from './format.js';
import { isNotFound } from './fsutil.js';

/** Directories opened by this process (the LOCK file guards against other processes). */
const openDirs = new Set<string>();

/** Take the directory for this process; throws `LOCKED` if another storage (here or in a live process) has it. */
export async function takeLock(dir: string): Promise<void> {
  if (openDirs.has(dir))
    throw new StorageError('LOCKED', 'the data directory is already open in this process', { file: dir });
  const path = join(dir, LOCK_FILE);
  const mine = `${process.pid}\n`;
  try {
    // Exclusive creation: of two processes opening the directory at once, only one creates the file.
    await fs.writeFile(path, mine, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new StorageError('IO_ERROR', 'cannot create LOCK', { file: path, cause: e });
    // A LOCK left behind by a process that died (a crash, SIGKILL) is stale and taken over.
    let pid = Number.NaN;
    try {
      pid = Number((await fs.readFile(path, 'utf8')).trim());
    } catch (re) {
      if (!isNotFound(re)) throw new StorageError('IO_ERROR', 'cannot read LOCK', { file: path, cause: re });
    }
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid))
      throw new StorageError('LOCKED', `the data directory is in use by process ${pid}`, { file: path });
    await fs.writeFile(path, mine).catch((we) => {
      throw new StorageError('IO_ERROR', 'cannot write LOCK', { file: path, cause: we });
    });
  }
  openDirs.add(dir);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Forget that this process has the directory open (the `LOCK` file is left alone). */
export function unlockInProcess(dir: string): void {
  openDirs.delete(dir);
}

/** Delete the `LOCK` file (missing is fine). */
export function removeLockFile(dir: string): Promise<void> {
  return fs.rm(join(dir, LOCK_FILE), { force: true });
}
