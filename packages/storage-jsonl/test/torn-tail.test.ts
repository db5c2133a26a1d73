/**
 * Test 1: a crash can cut the last segment at any byte. Truncate a real data file at every offset and reopen: every
 * record written completely before the cut is recovered, nothing after it appears, and the torn tail is reported
 * and removed.
 */

import fs from 'node:fs';
import { join } from 'node:path';
import type { Entry, HardState } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { isStorageError, openStorage } from '../src/index.js';
import { cmd, plain, segmentFiles, tempDir } from './helpers.js';

interface Model {
  hardState: HardState;
  entries: Entry<Uint8Array>[];
}

interface Step {
  /** The segment file the step's records went to, and its size once the step was durable. */
  readonly file: string;
  readonly size: number;
  /** The state once the step was durable. */
  readonly state: Model;
}

/** Writes a log of single-record steps (entries, truncations, hard state) over two segments; returns every step. */
async function buildLog(dir: string): Promise<Step[]> {
  const s = await openStorage(dir, { segmentBytes: 1100 });
  const model: Model = { hardState: { term: 0, votedFor: null }, entries: [] };
  const steps: Step[] = [];
  let term = 1;
  for (let k = 0; ; k++) {
    if (k % 7 === 3) {
      term++;
      model.hardState = { term, votedFor: k % 2 === 0 ? 'n2' : null };
      await s.saveHardState(model.hardState);
    } else if (k % 11 === 5 && model.entries.length > 3) {
      // Replace the last two entries: a conflicting suffix truncated by its replacement.
      const at = model.entries.length - 1;
      const e = cmd(at, term);
      model.entries = [...model.entries.slice(0, at - 1), e];
      await s.appendEntries([e]);
    } else {
      const e = cmd(model.entries.length + 1, term);
      model.entries = [...model.entries, e];
      await s.appendEntries([e]);
    }
    const segs = s.segments();
    const last = segs[segs.length - 1];
    steps.push({ file: last.file, size: last.bytes, state: structuredClone(model) });
    if (segs.length === 2 && last.bytes >= 1000) break;
  }
  await s.close();
  return steps;
}

function expectState(
  actual: { hardState: HardState; entries: readonly Entry<Uint8Array>[] },
  expected: Model,
  what: string,
) {
  expect({ hardState: actual.hardState, entries: plain(actual.entries) }, what).toEqual({
    hardState: expected.hardState,
    entries: plain(expected.entries),
  });
}

describe('torn tail: truncate the last segment at every byte offset', () => {
  it('recovers exactly the records written completely before the cut', { timeout: 180_000 }, async () => {
    const dir = await tempDir();
    const steps = await buildLog(dir);
    const files = segmentFiles(dir);
    expect(files.length).toBe(2);
    const lastName = files[1];
    const lastPath = join(dir, lastName);
    const original = fs.readFileSync(lastPath);
    const inLast = steps.filter((st) => st.file === lastName);
    const beforeLast = steps[steps.indexOf(inLast[0]) - 1];
    const headerBytes = original.indexOf(0x0a) + 1;
    expect(inLast.length).toBeGreaterThan(8);
    expect(original.length).toBe(inLast[inLast.length - 1].size);

    for (let cut = 0; cut <= original.length; cut++) {
      fs.writeFileSync(lastPath, original.subarray(0, cut));
      const done = [...inLast].reverse().find((st) => st.size <= cut);
      const expected = done?.state ?? beforeLast.state;
      const intact = done?.size ?? (cut >= headerBytes ? headerBytes : 0);
      const s = await openStorage(dir, { sync: false });
      try {
        const what = `cut at byte ${cut} of ${original.length}`;
        expectState(s.state, expected, what);
        expect(s.lastIndex, what).toBe(expected.entries.length);
        expect(s.recovery.tornBytes, what).toBe(cut - intact);
        expect(s.recovery.tornFile, what).toBe(cut - intact > 0 ? lastPath : null);
        // Every repair is reported: where the torn write started, how much was dropped, and why it was safe.
        const line = original.subarray(0, intact).filter((b) => b === 0x0a).length + 1;
        const truncated = {
          action: 'truncated',
          file: lastPath,
          offset: intact,
          bytes: cut - intact,
          line,
          reason: 'incomplete last line (no newline): a write cut short by a crash',
        };
        const rewroteHeader = { action: 'rewroteHeader', file: lastPath, offset: 0, bytes: 0, line: 1 };
        expect(s.recovery.repaired, what).toMatchObject([
          ...(cut > intact ? [truncated] : []),
          ...(intact === 0 ? [rewroteHeader] : []),
        ]);
        // The torn bytes are gone from the file (a header torn away is rewritten).
        expect(fs.statSync(lastPath).size, what).toBe(intact === 0 ? headerBytes : intact);
        if (cut % 16 === 0) {
          // The repaired log accepts appends that survive another reopen.
          const next = cmd(expected.entries.length + 1, 99);
          await s.appendEntries([next]);
          await s.close();
          const r = await openStorage(dir, { sync: false });
          expectState(r.state, { ...expected, entries: [...expected.entries, next] }, `${what}, then appended`);
          await r.close();
        }
      } finally {
        await s.close();
      }
    }
  });

  it('a cut in a segment that is not the last one is an error naming it, or loses nothing', {
    timeout: 180_000,
  }, async () => {
    const dir = await tempDir();
    const steps = await buildLog(dir);
    const full = steps[steps.length - 1].state;
    const [firstName, lastName] = segmentFiles(dir);
    const firstPath = join(dir, firstName);
    const original = fs.readFileSync(firstPath);
    const lastBytes = fs.readFileSync(join(dir, lastName));
    let errors = 0;
    let tried = 0;
    // Every third offset (and the end): the exhaustive sweep is the previous test's job.
    for (
      let cut = 0;
      cut <= original.length;
      cut = cut + 3 > original.length && cut < original.length ? original.length : cut + 3
    ) {
      tried++;
      fs.writeFileSync(firstPath, original.subarray(0, cut));
      const what = `cut at byte ${cut} of ${original.length} of the first segment`;
      try {
        const s = await openStorage(dir, { sync: false });
        // Accepted only if nothing was lost: the cut removed at most hard-state lines that the next segment's header
        // repeats.
        expectState(s.state, full, what);
        await s.close();
      } catch (e) {
        errors++;
        expect(isStorageError(e), what).toBe(true);
        expect(['CORRUPT_RECORD', 'LOG_GAP'], what).toContain((e as { code: string }).code);
        expect((e as { file?: string }).file, what).toMatch(/log-000000000[12]\.jsonl$/);
        // Nothing was repaired or deleted.
        expect(fs.readFileSync(firstPath).length, what).toBe(cut);
        expect(fs.readFileSync(join(dir, lastName)).equals(lastBytes), what).toBe(true);
      }
    }
    expect(errors).toBeGreaterThan(tried / 2);
  });
});
