/**
 * Test 5: group commit. Many concurrent appends are coalesced into few write+fdatasync rounds, complete in call
 * order, and each completes only after an fdatasync that covers its record has finished.
 */

import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStorage } from '../src/index.js';
import { cmd, payload, tempDir } from './helpers.js';

type Callback = (err: NodeJS.ErrnoException | null) => void;
const realFdatasync = fs.fdatasync;

interface Probe {
  /** fdatasync calls made while the probe was installed. */
  calls: number;
  /** For each fd: the file size covered by the completed fdatasyncs (the size when the call was issued). */
  readonly covered: Map<number, number>;
  /** Make the next fdatasync fail with EIO. */
  failNext: boolean;
}

/** Wrap `fs.fdatasync` (the storage calls it through the shared `node:fs` module object) to observe durability. */
function installProbe(): Probe {
  const probe: Probe = { calls: 0, covered: new Map(), failNext: false };
  (fs as { fdatasync: unknown }).fdatasync = (fd: number, cb: Callback): void => {
    probe.calls++;
    if (probe.failNext) {
      probe.failNext = false;
      const err = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      setImmediate(() => cb(err));
      return;
    }
    const size = fs.fstatSync(fd).size;
    realFdatasync(fd, (err) => {
      if (!err) probe.covered.set(fd, Math.max(probe.covered.get(fd) ?? 0, size));
      cb(err);
    });
  };
  return probe;
}

afterEach(() => {
  (fs as { fdatasync: unknown }).fdatasync = realFdatasync;
});

/** Byte offset just past the line of each entry index (the last occurrence: later lines replace earlier ones). */
function lineEnds(file: string): Map<number, number> {
  const buf = fs.readFileSync(file);
  const ends = new Map<number, number>();
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const m = /"rec":"entry","index":(\d+),/.exec(buf.subarray(pos, nl).toString('utf8'));
    if (m) ends.set(Number(m[1]), nl + 1);
    pos = nl + 1;
  }
  return ends;
}

describe('group commit', () => {
  it('coalesces concurrent appends, keeps their order, and completes each only after its fdatasync', async () => {
    const dir = await tempDir();
    const s = await openStorage<Uint8Array>(dir);
    const before = s.stats();
    const probe = installProbe();
    const WORKERS = 200;
    const PER_WORKER = 10;
    const resolved: { index: number; covered: number }[] = [];
    const hardStates: { term: number; covered: number; atIndex: number }[] = [];
    let next = 0;
    const fd = (): number => [...probe.covered.keys()][0] ?? -1;
    const worker = async (w: number): Promise<void> => {
      for (let k = 0; k < PER_WORKER; k++) {
        const index = ++next;
        const p = s.appendEntries([cmd(index, 1)]).then(() => {
          resolved.push({ index, covered: probe.covered.get(fd()) ?? 0 });
        });
        if (w === 0 && k % 3 === 0) {
          const term = 2 + k;
          void s.saveHardState({ term, votedFor: null }).then(() => {
            hardStates.push({ term, covered: probe.covered.get(fd()) ?? 0, atIndex: index });
          });
        }
        await p;
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    const after = s.stats();
    const appends = WORKERS * PER_WORKER;
    const flushes = after.flushes - before.flushes;
    console.log(`group commit: ${appends} appends in ${flushes} flushes (${probe.calls} fdatasyncs)`);

    // Coalesced: far fewer fsyncs than appends, and the counters agree with what the disk saw.
    expect(after.entriesAppended - before.entriesAppended).toBe(appends);
    expect(probe.calls).toBe(flushes);
    expect(after.fsyncs - before.fsyncs).toBe(probe.calls);
    expect(flushes).toBeLessThanOrEqual(appends / 20);
    expect(flushes).toBeGreaterThanOrEqual(PER_WORKER);

    // Completion in call order.
    expect(resolved.map((r) => r.index)).toEqual(Array.from({ length: appends }, (_, k) => k + 1));

    // Each completion came after an fdatasync that covered the entry's line.
    const ends = lineEnds(join(dir, s.segments()[0].file));
    for (const r of resolved) {
      expect(r.covered, `entry ${r.index} acknowledged before its fdatasync`).toBeGreaterThanOrEqual(
        ends.get(r.index)!,
      );
    }
    // A hard state queued after entry `atIndex` completes after that entry is durable too.
    expect(hardStates.length).toBe(Math.ceil(PER_WORKER / 3));
    for (const h of hardStates) expect(h.covered).toBeGreaterThanOrEqual(ends.get(h.atIndex)!);
    await s.close();
    const r = await openStorage(dir);
    expect(r.state.entries.length).toBe(appends);
    expect(r.state.hardState.term).toBe(2 + 9);
    await r.close();
  });

  it('pre-writes the next batch during an fdatasync, yet acknowledges each entry only after one that covers it', async () => {
    // Entries of ~1.4 KB on disk from 300 appenders: a batch passes 64 KiB while the previous batch's fdatasync
    // runs, so its first part is written early. Each fdatasync is slowed down (its completion is delayed) so that
    // this happens on a fast disk too, and small segments make pre-writes meet segment rotation.
    const dir = await tempDir();
    const s = await openStorage<Uint8Array>(dir, { segmentBytes: 256 * 1024 });
    const covered = new Map<number, number>(); // inode -> file size covered by completed fdatasyncs
    let syncing = 0;
    let writesDuringSync = 0;
    const realWriteSync = fs.writeSync;
    (fs as { writeSync: unknown }).writeSync = (...args: unknown[]): number => {
      if (syncing > 0) writesDuringSync++;
      return (realWriteSync as (...a: unknown[]) => number)(...args);
    };
    (fs as { fdatasync: unknown }).fdatasync = (fd: number, cb: Callback): void => {
      const { ino, size } = fs.fstatSync(fd);
      syncing++;
      realFdatasync(fd, (err) => {
        setTimeout(() => {
          syncing--;
          if (!err) covered.set(ino, Math.max(covered.get(ino) ?? 0, size));
          cb(err);
        }, 3);
      });
    };
    const WORKERS = 300;
    const PER_WORKER = 6;
    const resolved: { index: number; covered: Map<number, number> }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let k = 0; k < PER_WORKER; k++) {
        const index = ++next;
        const e = { index, term: 1, type: 'command' as const, command: payload(index, 1, 1000) };
        await s.appendEntries([e]);
        resolved.push({ index, covered: new Map(covered) });
      }
    };
    try {
      await Promise.all(Array.from({ length: WORKERS }, worker));
    } finally {
      (fs as { writeSync: unknown }).writeSync = realWriteSync;
    }
    const appends = WORKERS * PER_WORKER;
    console.log(
      `pre-write: ${appends} appends, ${s.stats().flushes} flushes, ${writesDuringSync} writes during an fdatasync`,
    );
    expect(writesDuringSync).toBeGreaterThan(0);
    expect(s.segments().length).toBeGreaterThan(2);
    expect(resolved.map((r) => r.index)).toEqual(Array.from({ length: appends }, (_, k) => k + 1));
    // Where each entry's line ends: the segment file's inode and the offset after the line.
    const where = new Map<number, { ino: number; end: number }>();
    for (const seg of s.segments()) {
      const file = join(dir, seg.file);
      const { ino } = fs.statSync(file);
      for (const [index, end] of lineEnds(file)) where.set(index, { ino, end });
    }
    for (const r of resolved) {
      const w = where.get(r.index)!;
      expect(r.covered.get(w.ino) ?? 0, `entry ${r.index} acknowledged before its fdatasync`).toBeGreaterThanOrEqual(
        w.end,
      );
    }
    await s.close();
    (fs as { fdatasync: unknown }).fdatasync = realFdatasync;
    const r = await openStorage<Uint8Array>(dir);
    expect(r.state.entries.length).toBe(appends);
    for (const e of r.state.entries) {
      expect(e.type === 'command' && Buffer.from(e.command).equals(Buffer.from(payload(e.index, 1, 1000)))).toBe(true);
    }
    await r.close();
  });

  it('calls made in one synchronous run share one flush', async () => {
    const dir = await tempDir();
    const s = await openStorage<Uint8Array>(dir);
    const before = s.stats().flushes;
    const ps = [];
    for (let i = 1; i <= 500; i++) ps.push(s.appendEntries([cmd(i, 1)]));
    ps.push(s.saveHardState({ term: 1, votedFor: 'a' }));
    await Promise.all(ps);
    // The early start (a batch over 64 KiB is written while later calls keep coming) may split it once or twice.
    expect(s.stats().flushes - before).toBeLessThanOrEqual(2);
    await s.close();
  });

  it('with sync: false nothing is fsynced, but writes still reach the file in order', async () => {
    const dir = await tempDir();
    const probe = installProbe();
    const s = await openStorage<Uint8Array>(dir, { sync: false });
    await Promise.all([s.appendEntries([cmd(1, 1), cmd(2, 1)]), s.appendEntries([cmd(2, 2)])]);
    expect(probe.calls).toBe(0);
    expect(s.stats().fsyncs).toBe(0);
    await s.close();
    const r = await openStorage(dir, { sync: false });
    expect(r.state.entries.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    await r.close();
  });

  it('a failed fdatasync rejects the batch and every later write (the process must restart and recover)', async () => {
    const dir = await tempDir();
    const s = await openStorage<Uint8Array>(dir);
    await s.appendEntries([cmd(1, 1)]);
    const probe = installProbe();
    probe.failNext = true;
    const a = s.appendEntries([cmd(2, 1)]);
    const b = s.saveHardState({ term: 1, votedFor: null });
    await expect(a).rejects.toMatchObject({ code: 'IO_ERROR' });
    await expect(b).rejects.toMatchObject({ code: 'IO_ERROR' });
    await expect(s.appendEntries([cmd(3, 1)])).rejects.toMatchObject({ code: 'IO_ERROR' });
    await s.close();
    (fs as { fdatasync: unknown }).fdatasync = realFdatasync;
    const r = await openStorage(dir);
    expect(r.state.entries.length).toBeGreaterThanOrEqual(1);
    await r.close();
  });
});

describe('blockingFsync', () => {
  const realSync = fs.fdatasyncSync;
  afterEach(() => {
    (fs as { fdatasyncSync: unknown }).fdatasyncSync = realSync;
  });

  it('makes appends durable with synchronous fdatasyncs, in order, each acknowledged after one that covers it', async () => {
    const dir = await tempDir();
    const s = await openStorage<Uint8Array>(dir, { blockingFsync: true });
    const covered = new Map<number, number>();
    let syncCalls = 0;
    (fs as { fdatasyncSync: unknown }).fdatasyncSync = (fd: number): void => {
      syncCalls++;
      const size = fs.fstatSync(fd).size;
      realSync(fd);
      covered.set(fd, Math.max(covered.get(fd) ?? 0, size));
    };
    // The asynchronous fdatasync must not be used for appends in this mode.
    const probe = installProbe();
    const before = s.stats();
    const resolved: { index: number; covered: number }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let k = 0; k < 20; k++) {
        const index = ++next;
        await s.appendEntries([cmd(index, 1)]);
        resolved.push({ index, covered: [...covered.values()][0] ?? 0 });
      }
    };
    await worker(); // one writer: one fdatasync per append
    await Promise.all(Array.from({ length: 50 }, worker)); // many: still coalesced into batches
    const after = s.stats();
    expect(probe.calls).toBe(0);
    expect(syncCalls).toBe(after.flushes - before.flushes);
    expect(syncCalls).toBeLessThan(20 + 50 * 20);
    expect(resolved.map((r) => r.index)).toEqual(Array.from({ length: 20 + 50 * 20 }, (_, k) => k + 1));
    const ends = lineEnds(join(dir, s.segments()[0].file));
    for (const r of resolved) {
      expect(r.covered, `entry ${r.index} acknowledged before its fdatasync`).toBeGreaterThanOrEqual(
        ends.get(r.index)!,
      );
    }
    await s.close();
    const reopened = await openStorage(dir);
    expect(reopened.state.entries.length).toBe(20 + 50 * 20);
    await reopened.close();
  });
});
