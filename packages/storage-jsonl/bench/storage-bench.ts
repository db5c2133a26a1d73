/**
 * `pnpm bench:storage`: the disk's raw fsync rate, then durable appends per second with one writer awaiting each
 * append and with 1,000 concurrent appenders (group commit), for ~50-byte and ~1 KiB commands. Prints a table and
 * rewrites the storage section of docs/benchmarks.md.
 *
 * Environment: BENCH_DIR (directory to create temporary data directories in; default the OS temp directory, which
 * should be on the disk you care about), BENCH_SECONDS (seconds per measurement, default 2), BENCH_NO_WRITE=1 (do
 * not touch docs/benchmarks.md), BENCH_WARMUP_MS (untimed appends before each concurrent row, default 500).
 */

import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Entry } from '@raft/core';
import { openStorage } from '../src/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const BASE = process.env.BENCH_DIR ?? tmpdir();
const CONCURRENCY = 1000;
/**
 * Each storage measurement is split into slices that alternate with slices of the raw fsync loop on the same disk,
 * so that both see the same background load (the development machine is shared; its fsync rate drifts by 10x
 * within minutes). Ratios are computed from these paired slices.
 */
const SLICES = 10;
/**
 * Untimed appends by the concurrent appenders before their measured slices, on the same storage: without it a 2 s
 * row spends a good part of its first slices in unoptimized code (measured: ~430,000 instead of ~700,000 entries/s
 * for ~50 B commands), which is the JIT warming up, not a property of the storage.
 */
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 500);

interface Row {
  readonly name: string;
  readonly rate: number; // operations (fsyncs or entries) per second
  readonly unit: string;
  readonly note: string;
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(BASE, 'raft-storage-bench-'));
}

/** write(100 bytes) + fdatasync in a loop with synchronous system calls for `ms`: the disk's own rate. */
function rawFsyncSync(fd: number, ms: number): { n: number; s: number } {
  const buf = Buffer.alloc(100, 0x61);
  let n = 0;
  const t0 = performance.now();
  const stop = t0 + ms;
  while (performance.now() < stop) {
    fs.writeSync(fd, buf);
    fs.fdatasyncSync(fd);
    n++;
  }
  return { n, s: (performance.now() - t0) / 1000 };
}

/** The same through Node's asynchronous callbacks (two thread-pool round trips per operation). */
async function rawFsyncAsync(fd: number, ms: number): Promise<{ n: number; s: number }> {
  const buf = Buffer.alloc(100, 0x61);
  let n = 0;
  const t0 = performance.now();
  const stop = t0 + ms;
  while (performance.now() < stop) {
    await new Promise<void>((res, rej) => fs.write(fd, buf, (e) => (e ? rej(e) : res())));
    await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    n++;
  }
  return { n, s: (performance.now() - t0) / 1000 };
}

function payload(size: number, i: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (i + k * 31) & 0xff;
  return b;
}

interface Measured {
  /** Storage entries/s and raw fsyncs/s (synchronous and asynchronous loops) over the paired slices. */
  readonly rate: number;
  readonly rawSync: number;
  readonly rawAsync: number;
  readonly entries: number;
  readonly fsyncs: number;
  readonly bytesPerEntry: number;
  /** One-writer rows: median time per operation (ms) of raw sync, raw async and storage appends. */
  readonly medians?: { readonly rawSync: number; readonly rawAsync: number; readonly storage: number };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Durable appends of `size`-byte commands by `concurrency` appenders, each awaiting its append before the next. */
async function appends(size: number, concurrency: number, blockingFsync = false): Promise<Measured> {
  const dir = await tempDir();
  const rawFd = fs.openSync(join(dir, 'raw.dat'), 'a');
  const storage = await openStorage<Uint8Array>(join(dir, 'data'), { blockingFsync });
  // A few distinct payloads, made in advance so that the loop measures the storage, not payload generation.
  const payloads = Array.from({ length: 16 }, (_, k) => payload(size, k));
  const sliceMs = (SECONDS * 1000) / SLICES;
  const rawSync = { n: 0, s: 0 };
  const rawAsync = { n: 0, s: 0 };
  let storeS = 0;
  const concurrentAppends = async (stop: number): Promise<void> => {
    const worker = async (): Promise<void> => {
      while (performance.now() < stop) {
        const index = storage.lastIndex + 1;
        const e: Entry<Uint8Array> = { index, term: 1, type: 'command', command: payloads[index & 15] };
        await storage.appendEntries([e]);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  if (concurrency > 1) await concurrentAppends(performance.now() + WARMUP_MS);
  const start = storage.stats();
  const perOp = { rawSync: [] as number[], rawAsync: [] as number[], storage: [] as number[] };
  if (concurrency === 1) {
    // One writer: interleave single operations (raw sync, raw async, one storage append), so that every storage
    // append is paired with raw fsyncs made within a millisecond of it, under the same load.
    const buf = Buffer.alloc(100, 0x61);
    const stop = performance.now() + SECONDS * 1000;
    while (performance.now() < stop) {
      const t0 = performance.now();
      fs.writeSync(rawFd, buf);
      fs.fdatasyncSync(rawFd);
      const t1 = performance.now();
      await new Promise<void>((res, rej) => fs.write(rawFd, buf, (e) => (e ? rej(e) : res())));
      await new Promise<void>((res, rej) => fs.fdatasync(rawFd, (e) => (e ? rej(e) : res())));
      const t2 = performance.now();
      const index = storage.lastIndex + 1;
      await storage.appendEntries([{ index, term: 1, type: 'command', command: payloads[index & 15] }]);
      const t3 = performance.now();
      rawSync.n++;
      rawSync.s += (t1 - t0) / 1000;
      rawAsync.n++;
      rawAsync.s += (t2 - t1) / 1000;
      storeS += (t3 - t2) / 1000;
      perOp.rawSync.push(t1 - t0);
      perOp.rawAsync.push(t2 - t1);
      perOp.storage.push(t3 - t2);
    }
  }
  for (let slice = 0; concurrency > 1 && slice < SLICES; slice++) {
    const r = rawFsyncSync(rawFd, sliceMs / 2);
    rawSync.n += r.n;
    rawSync.s += r.s;
    const a = await rawFsyncAsync(rawFd, sliceMs / 2);
    rawAsync.n += a.n;
    rawAsync.s += a.s;
    const t0 = performance.now();
    await concurrentAppends(t0 + sliceMs);
    storeS += (performance.now() - t0) / 1000;
  }
  const stats = storage.stats();
  await storage.close();
  fs.closeSync(rawFd);
  await rm(dir, { recursive: true, force: true });
  const entries = stats.entriesAppended - start.entriesAppended;
  return {
    rate: entries / storeS,
    rawSync: rawSync.n / rawSync.s,
    rawAsync: rawAsync.n / rawAsync.s,
    entries,
    fsyncs: stats.fsyncs - start.fsyncs,
    bytesPerEntry: (stats.logBytesWritten - start.logBytesWritten) / Math.max(1, entries),
    medians:
      concurrency === 1
        ? { rawSync: median(perOp.rawSync), rawAsync: median(perOp.rawAsync), storage: median(perOp.storage) }
        : undefined,
  };
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0];
  console.log(`storage bench: ${SECONDS} s per measurement in ${SLICES} slices, data in ${BASE}`);
  const dir = await tempDir();
  const fd = fs.openSync(join(dir, 'raw.dat'), 'a');
  const rs = rawFsyncSync(fd, SECONDS * 500);
  const ra = await rawFsyncAsync(fd, SECONDS * 500);
  const rs2 = rawFsyncSync(fd, SECONDS * 500);
  fs.closeSync(fd);
  await rm(dir, { recursive: true, force: true });
  const rawSync = (rs.n + rs2.n) / (rs.s + rs2.s);
  const rawAsync = ra.n / ra.s;
  console.log(`raw fsync (sync calls):  ${fmt(rawSync)} /s`);
  console.log(`raw fsync (async calls): ${fmt(rawAsync)} /s`);
  const rows: Row[] = [
    { name: 'raw: write 100 B + fdatasync (synchronous calls)', rate: rawSync, unit: 'fsyncs/s', note: 'baseline' },
    {
      name: 'raw: write 100 B + fdatasync (async fs callbacks)',
      rate: rawAsync,
      unit: 'fsyncs/s',
      note: `${(rawAsync / rawSync).toFixed(2)}x raw (measured between two synchronous runs)`,
    },
  ];
  const ratios: Record<string, number> = {};
  // The last three rows use the opt-in `blockingFsync` (fdatasync on the event loop): what it gains for one writer
  // and what it costs many.
  const runs: [number, number, boolean][] = [
    [50, 1, false],
    [50, CONCURRENCY, false],
    [1024, 1, false],
    [1024, CONCURRENCY, false],
    [50, 1, true],
    [1024, 1, true],
    [50, CONCURRENCY, true],
  ];
  for (const [size, conc, blocking] of runs) {
    const r = await appends(size, conc, blocking);
    const label =
      `${size === 50 ? '~50 B' : '~1 KiB'} commands, ${conc === 1 ? '1 writer awaiting each append' : `${conc} concurrent appenders`}` +
      (blocking ? ', `blockingFsync: true`' : '');
    // Conservative: against the faster of the two raw loops measured in the paired slices.
    const raw = Math.max(r.rawSync, r.rawAsync);
    const ratio = r.rate / raw;
    ratios[`${size}/${conc}${blocking ? '/blocking' : ''}`] = ratio;
    const perFsync = r.entries / Math.max(1, r.fsyncs);
    const m = r.medians;
    const medianNote = m
      ? `; median per op ${m.storage.toFixed(3)} ms vs raw ${m.rawSync.toFixed(3)} ms sync, ` +
        `${m.rawAsync.toFixed(3)} ms async (${(Math.min(m.rawSync, m.rawAsync) / m.storage).toFixed(2)}x by medians)`
      : '';
    const detail =
      `${ratio.toFixed(2)}x raw (paired: ${fmt(r.rawSync)} fsyncs/s sync, ${fmt(r.rawAsync)} async)${medianNote}; ` +
      `${fmt(perFsync)} entries/fsync; ${Math.round(r.bytesPerEntry)} B/entry on disk`;
    console.log(`${label}: ${fmt(r.rate)} entries/s (${detail})`);
    rows.push({ name: label, rate: r.rate, unit: 'entries/s', note: detail });
  }
  const targets = [
    `one-at-a-time ≥ 0.80x raw: ~50 B ${ratios['50/1'].toFixed(2)}x, ~1 KiB ${ratios['1024/1'].toFixed(2)}x`,
    `1,000 concurrent ≥ 100x raw: ~50 B ${ratios[`50/${CONCURRENCY}`].toFixed(0)}x, ~1 KiB ${ratios[`1024/${CONCURRENCY}`].toFixed(0)}x`,
    `with the opt-in \`blockingFsync: true\`: one-at-a-time ~50 B ${ratios['50/1/blocking'].toFixed(2)}x, ~1 KiB ` +
      `${ratios['1024/1/blocking'].toFixed(2)}x; 1,000 concurrent ~50 B ${ratios[`50/${CONCURRENCY}/blocking`].toFixed(0)}x`,
  ];
  for (const t of targets) console.log(`target ${t}`);
  const loadAfter = loadavg()[0];
  const load = `1-minute load average ${loadBefore.toFixed(1)} before and ${loadAfter.toFixed(1)} after the run on ${cpus().length} CPUs`;
  console.log(load);

  if (process.env.BENCH_NO_WRITE === '1') return;
  const date = new Date().toISOString().slice(0, 10);
  const table = [
    `Measured ${date} with Node ${process.version} on ${process.platform}/${process.arch}, ${SECONDS} s per row, data on`,
    `the filesystem of \`${BASE}\` (\`pnpm bench:storage\`); ${load}.`,
    'The machine is shared and its fsync rate drifts a lot, so every storage row is paired with raw fsync loops',
    '(synchronous and asynchronous calls, same disk) measured alongside it and is compared with the faster of the',
    `two: the one-writer rows alternate single operations (raw sync, raw async, one append), the concurrent rows`,
    `alternate ${SLICES} time slices (after an untimed ${WARMUP_MS} ms warm-up of the appenders, for the JIT). Each`,
    'appender awaits its append (durable: fdatasynced) before it issues the next one.',
    '',
    '| measurement | rate | vs raw fsync |',
    '|---|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${fmt(r.rate)} ${r.unit} | ${r.note} |`),
    '',
    `Targets: ${targets.join('; ')}.`,
  ].join('\n');
  const here = dirname(fileURLToPath(import.meta.url));
  const doc = resolve(here, '../../../docs/benchmarks.md');
  const text = fs.readFileSync(doc, 'utf8');
  const start = '<!-- bench:storage:start -->';
  const end = '<!-- bench:storage:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`markers ${start} / ${end} not found in ${doc}`);
  fs.writeFileSync(doc, `${text.slice(0, a + start.length)}\n${table}\n${text.slice(b)}`);
  console.log(`wrote ${doc}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
