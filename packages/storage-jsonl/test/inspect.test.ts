/** Test 6: the inspect tool (`raft-storage-inspect`): report, entry dump, JSON output and errors. */

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { inspectDataDir, openStorage, runInspectCommand } from '../src/index.js';
import { CONFIG, cmds, payload, segmentFiles, snapshotFiles, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A directory: term 5 vote "b", snapshot at 10 (123 bytes), entries 11..30 over several segments. */
async function buildDir(): Promise<string> {
  const dir = await tempDir();
  const s = await openStorage(dir, { sync: false, segmentBytes: 600 });
  await s.appendEntries(cmds(1, 30, 2));
  await s.appendEntries([{ index: 31, term: 3, type: 'noop' }]);
  await s.appendEntries(cmds(31, 30, 3)); // an empty call: nothing
  await s.saveHardState({ term: 5, votedFor: 'b' });
  await s.saveSnapshot({ index: 10, term: 2, config: CONFIG }, payload(10, 2, 123));
  await s.compact(10);
  await s.close();
  return dir;
}

async function run(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await runInspectCommand(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { status, out: out.join('\n'), err: err.join('\n') };
}

describe('inspect', () => {
  it('prints term, vote, snapshot, log range and segments', async () => {
    const dir = await buildDir();
    const before = snapshotFiles(dir);
    const { status, out, err } = await run([dir]);
    expect(err).toBe('');
    expect(status).toBe(0);
    expect(out).toContain(`data directory: ${dir}`);
    expect(out).toContain('term: 5');
    expect(out).toContain('voted for: b');
    expect(out).toMatch(/snapshot: index 10, term 2, 123 bytes \(snapshot-000000000010-1\.bin\), voters \[a, b, c\]/);
    expect(out).toContain('log: entries 11..31 (21 entries)');
    const segs = segmentFiles(dir);
    expect(out).toContain(`segments: ${segs.length}`);
    for (const f of segs) expect(out).toContain(`  ${f}  `);
    expect(out).toMatch(/entries \d+\.\.31 {2}\d+ records {2}\d+ bytes/);
    // Read-only: nothing changed, no LOCK taken.
    expect(snapshotFiles(dir)).toEqual(before);
    expect(fs.existsSync(join(dir, 'LOCK'))).toBe(false);
  });

  it('--entries dumps entries as JSON lines, optionally a range', async () => {
    const dir = await buildDir();
    const all = await run([dir, '--entries']);
    expect(all.status).toBe(0);
    const lines = all.out.split('\n').filter((l) => l.startsWith('{'));
    expect(lines.length).toBe(21);
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed[0]).toEqual({
      index: 11,
      term: 2,
      type: 'command',
      command: { $bytes: Buffer.from(payload(11, 2)).toString('base64') },
    });
    expect(parsed[20]).toEqual({ index: 31, term: 3, type: 'noop' });

    const range = await run(['--entries', '12..14', dir]);
    expect(
      range.out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l).index),
    ).toEqual([12, 13, 14]);
    const from = await run([dir, '--entries=30']);
    expect(from.out.split('\n').filter((l) => l.startsWith('{')).length).toBe(2);
  });

  it('--json prints one machine-readable report', async () => {
    const dir = await buildDir();
    const { status, out } = await run([dir, '--json', '--entries', '..11']);
    expect(status).toBe(0);
    const report = JSON.parse(out);
    expect(report.hardState).toEqual({ term: 5, votedFor: 'b' });
    expect(report.snapshot).toMatchObject({ index: 10, term: 2, bytes: 123 });
    expect(report.log).toEqual({ firstIndex: 11, lastIndex: 31, count: 21 });
    expect(report.entries.map((e: { index: number }) => e.index)).toEqual([11]);
    expect(report).toEqual(JSON.parse(JSON.stringify(await inspectDataDir(dir, { entries: { to: 11 } }))));
  });

  it('reports a torn tail without repairing it', async () => {
    const dir = await buildDir();
    const segs = segmentFiles(dir);
    const last = join(dir, segs[segs.length - 1]);
    fs.appendFileSync(last, '{"crc":"12345678","rec":"ent');
    const size = fs.statSync(last).size;
    const { status, out, err } = await run([dir]);
    expect(status).toBe(0);
    expect(out).toMatch(/torn tail: log-\d+\.jsonl line \d+, 28 bytes at offset \d+/);
    expect(err).toContain('warning: torn tail');
    expect(fs.statSync(last).size).toBe(size);
  });

  it('reports a damaged last complete record as an error, not as a torn tail', async () => {
    const dir = await buildDir();
    const segs = segmentFiles(dir);
    const last = join(dir, segs[segs.length - 1]);
    const text = fs.readFileSync(last, 'utf8');
    const lines = text.split('\n');
    const k = lines.length - 2;
    expect(lines[k]).toContain('"votedFor":"b"');
    lines[k] = lines[k].replace('"votedFor":"b"', '"votedFor":"c"');
    fs.writeFileSync(last, lines.join('\n'));
    const { status, out, err } = await run([dir]);
    expect(status).toBe(1);
    expect(out).toBe('');
    expect(err).toContain(`CORRUPT_RECORD: checksum mismatch`);
    expect(err).toContain('not a torn write');
    expect(err).toContain(`${last}:${k + 1}`);
    expect(fs.readFileSync(last, 'utf8')).toBe(lines.join('\n'));
  });

  it('fails clearly, with a non-zero status, for a missing or damaged directory and bad usage', async () => {
    const missing = join(await tempDir(), 'nope');
    const m = await run([missing]);
    expect(m.status).toBe(1);
    expect(m.err).toContain('does not exist');
    expect(m.err).toContain(missing);
    expect(fs.existsSync(missing)).toBe(false);

    const dir = await buildDir();
    const first = join(dir, segmentFiles(dir)[0]);
    const lines = fs.readFileSync(first, 'utf8').split('\n');
    lines[1] = lines[1].replace('"term":2', '"term":9');
    fs.writeFileSync(first, lines.join('\n'));
    const d = await run([dir]);
    expect(d.status).toBe(1);
    expect(d.err).toContain(`CORRUPT_RECORD: checksum mismatch`);
    expect(d.err).toContain(`${first}:2`);
    const j = await run([dir, '--json']);
    expect(j.status).toBe(1);
    expect(JSON.parse(j.out).error).toMatchObject({ code: 'CORRUPT_RECORD', file: first, line: 2 });

    expect((await run([])).status).toBe(2);
    expect((await run([dir, '--bogus'])).status).toBe(2);
    expect((await run([dir, 'extra'])).status).toBe(2);
    const help = await run(['--help']);
    expect(help.status).toBe(0);
    expect(help.out).toContain('usage: raft-storage-inspect');
  });

  it('runs as a command: exit status and output of the real executable', async () => {
    const dir = await buildDir();
    const cli = join(here, '..', 'src', 'inspect-cli.ts');
    const ok = spawnSync(process.execPath, ['--import', 'tsx', cli, dir, '--entries', '31'], {
      cwd: join(here, '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('term: 5');
    expect(ok.stdout.trim().split('\n').pop()).toBe('{"index":31,"term":3,"type":"noop"}');
    const bad = spawnSync(process.execPath, ['--import', 'tsx', cli, join(dir, 'missing')], {
      cwd: join(here, '..'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('error: IO_ERROR: the data directory does not exist');
  });
});
