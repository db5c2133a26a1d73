/** Shared test helpers: temporary directories, entries and state comparison. */

import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterConfig, Entry } from '@raft/core';
import { afterEach } from 'vitest';
import type { RecoveredState } from '../src/index.js';
import { payload } from './helpers-pure.js';

export { payload } from './helpers-pure.js';

const created: string[] = [];

/** A fresh temporary directory, removed after the current test. */
export async function tempDir(prefix = 'raft-storage-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

afterEach(async () => {
  while (created.length > 0) await rm(created.pop()!, { recursive: true, force: true });
});

/** A command entry carrying {@link payload}. */
export function cmd(index: number, term: number): Entry<Uint8Array> {
  return { index, term, type: 'command', command: payload(index, term) };
}

/** Command entries `from..to` in `term`. */
export function cmds(from: number, to: number, term: number): Entry<Uint8Array>[] {
  const out: Entry<Uint8Array>[] = [];
  for (let i = from; i <= to; i++) out.push(cmd(i, term));
  return out;
}

export const CONFIG: ClusterConfig = { voters: ['a', 'b', 'c'], learners: [] };

/** Entries as plain JSON-comparable values (byte arrays as number arrays). */
export function plain(entries: readonly Entry<Uint8Array>[]): unknown[] {
  return entries.map((e) => (e.type === 'command' ? { ...e, command: Array.from(e.command) } : { ...e }));
}

/** A recovered state as a plain value. */
export function plainState(s: RecoveredState<Uint8Array>): unknown {
  return { hardState: s.hardState, snapshot: s.snapshot, entries: plain(s.entries) };
}

/** The seed for a randomized test: `RAFT_STORAGE_SEED` if set, else a fresh one. */
export function testSeed(): number {
  const env = process.env.RAFT_STORAGE_SEED;
  return env !== undefined && env !== '' ? Number(env) : Math.floor(Math.random() * 2 ** 31);
}

/** Every file of a directory (not recursive) with its bytes, except the LOCK file. */
export function snapshotFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of fs.readdirSync(dir).sort()) if (name !== 'LOCK') out.set(name, fs.readFileSync(join(dir, name)));
  return out;
}

/** Copy the regular files of `from` into the (existing, empty) directory `to`. */
export function copyDir(from: string, to: string): void {
  for (const name of fs.readdirSync(from)) if (name !== 'LOCK') fs.copyFileSync(join(from, name), join(to, name));
}

/** Names of the segment files of a directory, in order. */
export function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => /^log-\d{10}\.jsonl$/.test(n))
    .sort();
}
