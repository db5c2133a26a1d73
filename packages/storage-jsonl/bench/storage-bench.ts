/**
 * `pnpm bench:storage`: the disk's raw fsync rate, then durable appends per second with one writer awaiting each
 * append and with 1,000 concurrent appenders (group commit), for ~50-byte and ~1 KiB commands. Prints a table and
 * rewrites the storage section of docs/benchmarks.md.
 *
 * Environment: BENCH_DIR (directory to create temporary data directories in; default the OS temp directory, which
 * should be on the disk you care about), BENCH_SECONDS (seconds per measurement, default 2), BENCH_NO_WRITE=1 (do
 * not touch docs/benchmarks.md).
 */

import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Entry } from '@raft/core';
import { openStorage } from '../src/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const BASE = process.env.BENCH_DIR ?? tmpdir();
const CONCURRENCY = 1000;

interface Row {
  readonly name: string;
  readonly rate: number; // operations (fsyncs or entries) per second
  readonly unit: string;
  readonly note: string;
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(BASE, 'raft-storage-bench-'));
}

/** write(100 bytes) + fdatasync in a loop with synchronous system calls: the disk's own rate. */
async function rawFsyncSync(): Promise<number> {
  const dir = await tempDir();
  const fd = fs.openSync(join(dir, 'raw.dat'), 'a');
  const buf = Buffer.alloc(100, 0x61);
  let n = 0;
  const t0 = performance.now();
  const stop = t0 + SECONDS * 1000;
  while (performance.now() < stop) {
    fs.writeSync(fd, buf);
    fs.fdatasyncSync(fd);
    n++;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  fs.closeSync(fd);
  await rm(dir, { recursive: true, force: true });
  return rate;
}

/** The same through Node's asynchronous callbacks (two thread-pool round trips per operation, as the storage does). */
async function rawFsyncAsync(): Promise<number> {
  const dir = await tempDir();
  const fd = fs.openSync(join(dir, 'raw.dat'), 'a');
  const buf = Buffer.alloc(100, 0x61);
  let n = 0;
  const t0 = performance.now();
  const stop = t0 + SECONDS * 1000;
  while (performance.now() < stop) {
    await new Promise<void>((res, rej) => fs.write(fd, buf, (e) => (e ? rej(e) : res())));
    await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
    n++;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  fs.closeSync(fd);
  await rm(dir, { recursive: true, force: true });
  return rate;
}

function payload(size: number, i: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (i + k * 31) & 0xff;
  return b;
}

interface AppendResult {
  readonly rate: number;
  readonly entries: number;
  readonly fsyncs: number;
  readonly bytesPerEntry: number;
}

async function appends(size: number, concurrency: number): Promise<AppendResult> {
  const dir = await tempDir();
  const storage = await openStorage<Uint8Array>(dir);
  // A few distinct payloads, made in advance so that the loop measures the storage, not payload generation.
  const payloads = Array.from({ length: 16 }, (_, k) => payload(size, k));
  let next = 0;
  const t0 = performance.now();
  const stop = t0 + SECONDS * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < stop) {
      const index = ++next;
      const e: Entry<Uint8Array> = { index, term: 1, type: 'command', command: payloads[index & 15] };
      await storage.appendEntries([e]);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const stats = storage.stats();
  await storage.close();
  await rm(dir, { recursive: true, force: true });
  return {
    rate: stats.entriesAppended / elapsed,
    entries: stats.entriesAppended,
    fsyncs: stats.fsyncs,
    bytesPerEntry: stats.logBytesWritten / Math.max(1, stats.entriesAppended),
  };
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

async function main(): Promise<void> {
  console.log(`storage bench: ${SECONDS} s per measurement, data in ${BASE}`);
  const rawSync = await rawFsyncSync();
  console.log(`raw fsync (sync calls):  ${fmt(rawSync)} /s`);
  const rawAsync = await rawFsyncAsync();
  console.log(`raw fsync (async calls): ${fmt(rawAsync)} /s`);
  const rows: Row[] = [
    { name: 'raw: write 100 B + fdatasync (synchronous calls)', rate: rawSync, unit: 'fsyncs/s', note: 'baseline' },
    {
      name: 'raw: write 100 B + fdatasync (async fs callbacks)',
      rate: rawAsync,
      unit: 'fsyncs/s',
      note: `${(rawAsync / rawSync).toFixed(2)}x raw`,
    },
  ];
  const ratios: Record<string, number> = {};
  for (const size of [50, 1024]) {
    for (const conc of [1, CONCURRENCY]) {
      const r = await appends(size, conc);
      const label = `${size === 50 ? '~50 B' : '~1 KiB'} commands, ${conc === 1 ? '1 writer awaiting each append' : `${conc} concurrent appenders`}`;
      const ratio = r.rate / rawSync;
      ratios[`${size}/${conc}`] = ratio;
      const perFsync = r.entries / Math.max(1, r.fsyncs);
      console.log(
        `${label}: ${fmt(r.rate)} entries/s (${ratio.toFixed(2)}x raw fsync; ${fmt(perFsync)} entries per fsync; ` +
          `${Math.round(r.bytesPerEntry)} bytes per entry on disk)`,
      );
      rows.push({
        name: label,
        rate: r.rate,
        unit: 'entries/s',
        note: `${ratio.toFixed(2)}x raw; ${fmt(perFsync)} entries/fsync; ${Math.round(r.bytesPerEntry)} B/entry on disk`,
      });
    }
  }
  const targets = [
    `one-at-a-time ≥ 0.80x raw: ~50 B ${ratios['50/1'].toFixed(2)}x, ~1 KiB ${ratios['1024/1'].toFixed(2)}x`,
    `1,000 concurrent ≥ 100x raw: ~50 B ${ratios[`50/${CONCURRENCY}`].toFixed(0)}x, ~1 KiB ${ratios[`1024/${CONCURRENCY}`].toFixed(0)}x`,
  ];
  for (const t of targets) console.log(`target ${t}`);

  if (process.env.BENCH_NO_WRITE === '1') return;
  const date = new Date().toISOString().slice(0, 10);
  const table = [
    `Measured ${date} with Node ${process.version} on ${process.platform}/${process.arch}, ${SECONDS} s per row, data on`,
    `the filesystem of \`${BASE}\` (\`pnpm bench:storage\`). Ratios are against the synchronous raw fsync rate.`,
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
