/**
 * Test 2: flipped bytes anywhere in a data directory are detected and never accepted as data. A bad record in the
 * middle of a segment, or a missing segment, stops the open with an error naming the file (and line), and nothing is
 * deleted or repaired.
 */

import fs from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '@raft/core';
import { Prng } from '@raft/sim';
import { describe, expect, it } from 'vitest';
import { isStorageError, type JsonlStorage, openStorage, type StorageError } from '../src/index.js';
import {
  CONFIG,
  cmd,
  cmds,
  copyDir,
  payload,
  plain,
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
    const rnd = new Prng(seed);
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

    const outcomes = { error: 0, torn: 0, unchanged: 0, badSnapshotData: 0 };
    for (let trial = 0; trial < 150; trial++) {
      const dir = await tempDir();
      copyDir(pristine, dir);
      const name = names[Math.floor(rnd.next() * names.length)];
      const path = join(dir, name);
      const bytes = fs.readFileSync(path);
      const flips = 1 + Math.floor(rnd.next() * 3);
      const positions: number[] = [];
      for (let f = 0; f < flips; f++) {
        const pos = Math.floor(rnd.next() * bytes.length);
        bytes[pos] ^= 1 + Math.floor(rnd.next() * 255);
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
        } else if (s.recovery.repaired.length === 0) {
          // Flips that cancelled out (the same byte flipped back): the file is as it was.
          outcomes.unchanged++;
          expect(fs.readFileSync(path).equals(fs.readFileSync(join(pristine, name))), what).toBe(true);
          expect(plain(s.state.entries), what).toEqual(full.entries);
        } else {
          // A complete line with a bad checksum is corruption, so only flips that turned a byte of the last line
          // into a zero (the mark of a sector a power loss left unwritten), or that replaced the file's final
          // newline and damaged the record before it (a line cut short, as far as anyone can tell), can be taken
          // for a torn write: the records before it are recovered unchanged, and the repair is reported.
          outcomes.torn++;
          expect(name, what).toBe(segs[segs.length - 1]);
          expect(s.recovery.tornBytes, what).toBeGreaterThan(0);
          expect(s.recovery.repaired[0], what).toMatchObject({ action: 'truncated', file: path });
          expect(
            positions.some((p) => bytes[p] === 0 || p === bytes.length - 1),
            what,
          ).toBe(true);
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

  it('a damaged last record is corruption, not a torn tail: the vote it holds is not forgotten', async () => {
    const dir = await tempDir();
    await buildDir(dir);
    const w = await openStorage(dir, { sync: false });
    await w.saveHardState({ term: 4, votedFor: 'c' });
    await w.close();
    const segs = segmentFiles(dir);
    const path = join(dir, segs[segs.length - 1]);
    const text = fs.readFileSync(path, 'utf8');
    const lines = text.split('\n');
    const k = lines.length - 2; // the last record (the file ends with a newline)
    expect(lines[k]).toContain('"rec":"hardState","term":4,"votedFor":"c"');
    // A one-byte change that keeps the line valid JSON: only the checksum can tell.
    lines[k] = lines[k].replace('"votedFor":"c"', '"votedFor":"a"');
    fs.writeFileSync(path, lines.join('\n'));
    const before = snapshotFiles(dir);
    const err = (await openStorage(dir).catch((e: unknown) => e)) as StorageError;
    expect(isStorageError(err, 'CORRUPT_RECORD'), String(err)).toBe(true);
    expect(err.file).toBe(path);
    expect(err.line).toBe(k + 1);
    expect(err.message).toContain('checksum mismatch');
    expect(err.message).toContain('not a torn write');
    expect(err.message).toContain(`byte offset ${text.length - lines[k].length - 1}`);
    expectNothingChanged(dir, before, 'after the failed open');
  });

  it('any one changed byte of the last complete record, its newline included, stops the open', {
    timeout: 120_000,
  }, async () => {
    const pristine = await tempDir();
    await buildDir(pristine);
    const segs = segmentFiles(pristine);
    const name = segs[segs.length - 1];
    const original = fs.readFileSync(join(pristine, name));
    const start = original.lastIndexOf(0x0a, original.length - 2) + 1;
    const line = original.subarray(0, start).filter((b) => b === 0x0a).length + 1;
    expect(original[original.length - 1]).toBe(0x0a);
    const dir = await tempDir();
    copyDir(pristine, dir);
    const path = join(dir, name);
    let tried = 0;
    for (let i = start; i < original.length; i++) {
      // XOR with 0x01 or 0x80 never yields a zero or a newline from the bytes the writer produces.
      for (const x of [0x01, 0x80]) {
        const bytes = Buffer.from(original);
        bytes[i] ^= x;
        fs.writeFileSync(path, bytes);
        const what = `byte ${i - start} of the last line ^ ${x}`;
        await expect(openStorage(dir, { sync: false }), what).rejects.toMatchObject({
          code: 'CORRUPT_RECORD',
          file: path,
          line,
        });
        expect(fs.readFileSync(path).equals(bytes), what).toBe(true);
        tried++;
      }
    }
    expect(tried).toBe(2 * (original.length - start));
  });

  it('a last line with holes of zeros that end on sector boundaries is a torn write; other zeros are not', async () => {
    const pristine = await tempDir();
    const s = await openStorage(pristine, { sync: false });
    await s.appendEntries(cmds(1, 3, 1));
    await s.saveHardState({ term: 2, votedFor: 'b' });
    await s.close();
    const path0 = join(pristine, 'log-0000000001.jsonl');
    const intact = fs.readFileSync(path0);
    // A long entry line that a power loss interrupted: its middle never reached the disk (zeros up to a sector
    // boundary), a later sector holding its end and newline did.
    const { encodeLine, entryBody } = await import('../src/format.js');
    const long = encodeLine(entryBody(4, 2, 'command', JSON.stringify({ $bytes: 'A'.repeat(1200) })));
    const off = intact.length;
    const boundary = Math.ceil((off + 40) / 512) * 512;
    expect(boundary + 10).toBeLessThan(off + long.length);
    const variant = (zerosEnd: number): Buffer => {
      const b = Buffer.concat([intact, long]);
      b.fill(0, off + 40, zerosEnd);
      return b;
    };

    const torn = await tempDir();
    copyDir(pristine, torn);
    fs.writeFileSync(join(torn, 'log-0000000001.jsonl'), variant(boundary));
    const r = await openStorage(torn, { sync: false });
    expect(plain(r.state.entries)).toEqual(plain(cmds(1, 3, 1)));
    expect(r.state.hardState).toEqual({ term: 2, votedFor: 'b' });
    expect(r.recovery.repaired).toEqual([
      {
        action: 'truncated',
        file: join(torn, 'log-0000000001.jsonl'),
        offset: off,
        bytes: long.length,
        line: 6,
        reason: expect.stringContaining('zero-filled sectors'),
      },
    ]);
    await r.close();
    expect(fs.readFileSync(join(torn, 'log-0000000001.jsonl')).equals(intact)).toBe(true);

    // Zeros that end one byte off a sector boundary, or a single zero, are not an unwritten sector.
    for (const zerosEnd of [boundary + 1, boundary - 1, off + 41]) {
      const bad = await tempDir();
      copyDir(pristine, bad);
      fs.writeFileSync(join(bad, 'log-0000000001.jsonl'), variant(zerosEnd));
      await expect(openStorage(bad, { sync: false }), `zeros up to ${zerosEnd}`).rejects.toMatchObject({
        code: 'CORRUPT_RECORD',
        line: 6,
      });
    }
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
