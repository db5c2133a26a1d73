/**
 * Test 2: flipped bytes anywhere in a data directory are detected and never accepted as data. A bad record in the
 * middle of a segment, or a missing segment, stops the open with an error naming the file (and line), and nothing is
 * deleted or repaired.
 */

import fs from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { isStorageError, type JsonlStorage, openStorage, type StorageError } from '../src/index.js';
import {
  CONFIG,
  cmd,
  cmds,
  copyDir,
  payload,
  plain,
  prng,
  segmentFiles,
  snapshotFiles,
  tempDir,
  testSeed,
} from './helpers.js';

/** A directory with a snapshot (index 20), three segments of entries 15..60 and some hard-state records. */
async function buildDir(dir: string): Promise<void> {
  const s = await openStorage(dir, { sync: false, segmentBytes: 2000 });
  await s.saveHardState({ term: 1, votedFor: 'a' });
  for (let i = 1; i <= 60; i += 5) {
    await s.appendEntries(cmds(i, i + 4, 1 + Math.floor(i / 20)));
    if (i === 31) await s.saveHardState({ term: 3, votedFor: 'b' });
  }
  await s.saveSnapshot({ index: 20, term: 1, config: CONFIG }, payload(20, 1, 300));
  expect(s.lastIndex).toBe(60);
  await s.compact(14);
  await s.close();
}

function expectNothingChanged(dir: string, before: Map<string, Buffer>, what: string): void {
  const after = snapshotFiles(dir);
  expect([...after.keys()], what).toEqual([...before.keys()]);
  for (const [name, bytes] of before) expect(after.get(name)?.equals(bytes), `${what}: ${name} changed`).toBe(true);
}

describe('corruption', () => {
  it('random byte flips are detected, never accepted as data', { timeout: 180_000 }, async () => {
    const seed = testSeed();
    console.log(
      `corruption test seed ${seed} (replay: RAFT_STORAGE_SEED=${seed} pnpm --filter @raft/storage-jsonl exec vitest run test/corruption.test.ts)`,
    );
    const rnd = prng(seed);
    const pristine = await tempDir();
    await buildDir(pristine);
    const ref = await openStorage(pristine, { sync: false });
    const full = { hardState: ref.state.hardState, snapshot: ref.state.snapshot, entries: plain(ref.state.entries) };
    const fullEntries = ref.state.entries;
    const snapshotData = Array.from((await ref.readSnapshot())!.data);
    await ref.close();
    const names = [...snapshotFiles(pristine).keys()];
    expect(names.length).toBe(5); // three segments, snapshot.json, snapshot data
    const segs = segmentFiles(pristine);

    const outcomes = { error: 0, torn: 0, badSnapshotData: 0 };
    for (let trial = 0; trial < 150; trial++) {
      const dir = await tempDir();
      copyDir(pristine, dir);
      const name = names[Math.floor(rnd() * names.length)];
      const path = join(dir, name);
      const bytes = fs.readFileSync(path);
      const flips = 1 + Math.floor(rnd() * 3);
      const positions: number[] = [];
      for (let f = 0; f < flips; f++) {
        const pos = Math.floor(rnd() * bytes.length);
        bytes[pos] ^= 1 + Math.floor(rnd() * 255);
        positions.push(pos);
      }
      fs.writeFileSync(path, bytes);
      const what = `seed ${seed} trial ${trial}: ${name} flipped at ${positions.join(',')}`;
      const before = snapshotFiles(dir);
      let s: JsonlStorage<Uint8Array>;
      try {
        s = await openStorage(dir, { sync: false });
      } catch (e) {
        outcomes.error++;
        expect(isStorageError(e), `${what}: ${e}`).toBe(true);
        const err = e as StorageError;
        expect(err.file, what).toBeDefined();
        if (err.code === 'CORRUPT_RECORD') {
          expect(err.file, what).toBe(path);
          expect(err.line, what).toBeGreaterThan(0);
        }
        expectNothingChanged(dir, before, what);
        continue;
      }
      try {
        if (name.endsWith('.bin')) {
          // The snapshot data is verified when it is read, not on open (it can be large).
          outcomes.badSnapshotData++;
          await expect(s.readSnapshot(), what).rejects.toMatchObject({ code: 'CORRUPT_SNAPSHOT' });
          expect(plain(s.state.entries), what).toEqual(full.entries);
        } else {
          // Only a flip in the last record(s) of the last segment can be taken for a torn write: the records
          // before it are recovered unchanged, nothing else.
          outcomes.torn++;
          expect(name, what).toBe(segs[segs.length - 1]);
          expect(s.recovery.tornBytes, what).toBeGreaterThan(0);
          expect(s.state.snapshot, what).toEqual(full.snapshot);
          const got = s.state.entries;
          expect(got.length, what).toBeLessThan(fullEntries.length + 1);
          expect(plain(got), what).toEqual(plain(fullEntries.slice(0, got.length)));
          expect(Array.from((await s.readSnapshot())!.data), what).toEqual(snapshotData);
        }
      } finally {
        await s.close();
      }
    }
    console.log(`corruption outcomes: ${JSON.stringify(outcomes)}`);
    expect(outcomes.error).toBeGreaterThan(50);
  });

  it('a bad record in the middle of a segment stops the open, naming file and line; nothing is deleted', async () => {
    const dir = await tempDir();
    await buildDir(dir);
    const [first] = segmentFiles(dir);
    const path = join(dir, first);
    const lines = fs.readFileSync(path, 'utf8').split('\n');
    // Change one digit of an entry's term on line 4: still valid JSON, but the checksum no longer matches.
    lines[3] = lines[3].replace('"term":1', '"term":7');
    fs.writeFileSync(path, lines.join('\n'));
    // A leftover temporary file and a torn last line elsewhere must survive the failed open too.
    fs.writeFileSync(join(dir, 'snapshot.json.tmp'), 'x');
    const before = snapshotFiles(dir);
    const err = (await openStorage(dir).catch((e: unknown) => e)) as StorageError;
    expect(err.code).toBe('CORRUPT_RECORD');
    expect(err.file).toBe(path);
    expect(err.line).toBe(4);
    expect(err.message).toContain(`${path}:4`);
    expect(err.message).toContain('checksum mismatch');
    expectNothingChanged(dir, before, 'after the failed open');
    expect(fs.existsSync(join(dir, 'LOCK'))).toBe(false);
  });

  it('a bad record followed by valid ones in the last segment is corruption, not a torn tail', async () => {
    const dir = await tempDir();
    await buildDir(dir);
    const segs = segmentFiles(dir);
    const path = join(dir, segs[segs.length - 1]);
    const lines = fs.readFileSync(path, 'utf8').split('\n');
    const k = lines.length - 3; // the second-to-last record (the file ends with a newline)
    lines[k] = lines[k].slice(0, 30) + lines[k].slice(31);
    fs.writeFileSync(path, lines.join('\n'));
    const before = snapshotFiles(dir);
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'CORRUPT_RECORD', file: path, line: k + 1 });
    expectNothingChanged(dir, before, 'after the failed open');
  });

  it('a missing segment stops the open, naming the missing file; nothing is deleted', async () => {
    const dir = await tempDir();
    await buildDir(dir);
    const segs = segmentFiles(dir);
    expect(segs.length).toBe(3);
    fs.rmSync(join(dir, segs[1]));
    const before = snapshotFiles(dir);
    const err = (await openStorage(dir).catch((e: unknown) => e)) as StorageError;
    expect(err.code).toBe('MISSING_SEGMENT');
    expect(err.file).toBe(join(dir, segs[1]));
    expectNothingChanged(dir, before, 'after the failed open');

    // The first segment missing, without a snapshot that covers its entries.
    const d2 = await tempDir();
    const w = await openStorage(d2, { sync: false, segmentBytes: 500 });
    for (let i = 1; i <= 20; i++) await w.appendEntries([cmd(i, 1)]);
    await w.close();
    const s2 = segmentFiles(d2);
    expect(s2.length).toBeGreaterThan(2);
    fs.rmSync(join(d2, s2[0]));
    await expect(openStorage(d2)).rejects.toMatchObject({ code: 'MISSING_SEGMENT', file: join(d2, s2[0]) });
  });

  it('a damaged snapshot.json or a missing snapshot data file stops the open', async () => {
    const dir = await tempDir();
    await buildDir(dir);
    const meta = join(dir, 'snapshot.json');
    const text = fs.readFileSync(meta, 'utf8');
    fs.writeFileSync(meta, text.replace('"index":20', '"index":21'));
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'CORRUPT_SNAPSHOT', file: meta, line: 1 });
    fs.writeFileSync(meta, text);
    const data = fs.readdirSync(dir).find((n) => n.endsWith('.bin'))!;
    fs.rmSync(join(dir, data));
    const before = snapshotFiles(dir);
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'CORRUPT_SNAPSHOT', file: join(dir, data) });
    expectNothingChanged(dir, before, 'after the failed open');
  });

  it('an entry that skips an index is a LOG_GAP naming file and line', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false });
    await s.appendEntries(cmds(1, 3, 1));
    await s.close();
    // Forge a valid (checksummed) record for entry 5 with the package's own encoder.
    const { encodeLine, entryBody } = await import('../src/format.js');
    const e: Entry<Uint8Array> = cmd(5, 1);
    const b64 = Buffer.from((e as { command: Uint8Array }).command).toString('base64');
    fs.appendFileSync(join(dir, 'log-0000000001.jsonl'), encodeLine(entryBody(5, 1, 'command', `{"$bytes":"${b64}"}`)));
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'LOG_GAP', line: 5 });
  });
});
