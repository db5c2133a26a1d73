/** Facts about the machine and the server processes that a benchmark reports beside its numbers (Linux /proc). */
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Result of {@link measureFsyncRate}. */
export interface FsyncRate {
  /** Append + fdatasync pairs completed (100 bytes each, to one file). */
  readonly ops: number;
  /** Measured wall-clock seconds (a little over the `seconds` asked for: the last sync finishes). */
  readonly seconds: number;
  /** fdatasync calls per second. */
  readonly perSecond: number;
  /** Mean ms per append + fdatasync (`1000 / perSecond`): about the least an unbatched durable write can take. */
  readonly meanMs: number;
}

/**
 * The raw durable-append rate of the disk under `dir`: append 100 bytes and fdatasync, in a loop, for about
 * `seconds`. This bounds any system that syncs every acknowledged write without batching, so it is the yardstick for
 * both clusters' write numbers. Blocks the event loop while it runs (nothing else should be measured meanwhile).
 */
export function measureFsyncRate(dir: string, seconds = 2): FsyncRate {
  const path = join(dir, `fsync-probe-${process.pid}.bin`);
  const fd = openSync(path, 'a');
  const line = Buffer.alloc(100, 0x61);
  let ops = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  try {
    while (performance.now() < until) {
      writeSync(fd, line);
      fdatasyncSync(fd);
      ops++;
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  const elapsed = (performance.now() - start) / 1000;
  return { ops, seconds: elapsed, perSecond: ops / elapsed, meanMs: (elapsed * 1000) / Math.max(1, ops) };
}

/** A process's resident set size in bytes (`VmRSS` of /proc/PID/status), or null when it cannot be read. */
export function residentBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat, or null. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): utime is the 14th field overall.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return ticks / 100; // USER_HZ is 100 on every Linux this runs on
  } catch {
    return null;
  }
}

/** The CPU model name from /proc/cpuinfo, or `unknown`. */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}
