import fs from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '@raft/core';
import { describe, expect, it } from 'vitest';
import { type Codec, isStorageError, openStorage, StorageError } from '../src/index.js';
import { CONFIG, cmd, cmds, payload, plain, segmentFiles, tempDir } from './helpers.js';

describe('openStorage basics', () => {
  it('recovers an empty fresh directory and creates it if missing', async () => {
    const dir = join(await tempDir(), 'node-1', 'data');
    const s = await openStorage(dir);
    expect(s.state).toEqual({ hardState: { term: 0, votedFor: null }, snapshot: null, entries: [] });
    expect(s.lastIndex).toBe(0);
    expect(s.recovery).toEqual({ repaired: [], tornFile: null, tornBytes: 0, removedFiles: [] });
    await s.close();
    expect(fs.existsSync(join(dir, 'LOCK'))).toBe(false);
    expect(segmentFiles(dir)).toEqual(['log-0000000001.jsonl']);
  });

  it('persists hard state and entries (all entry types) across reopen', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir);
    const entries: Entry<Uint8Array>[] = [
      { index: 1, term: 1, type: 'config', config: { voters: ['a'], learners: ['l'], oldVoters: ['x', 'y'] } },
      { index: 2, term: 1, type: 'noop' },
      cmd(3, 1),
      { index: 4, term: 2, type: 'command', command: new Uint8Array(0) },
    ];
    await Promise.all([s.saveHardState({ term: 2, votedFor: 'b' }), s.appendEntries(entries)]);
    await s.close();
    const r = await openStorage(dir);
    expect(r.state.hardState).toEqual({ term: 2, votedFor: 'b' });
    expect(plain(r.state.entries)).toEqual(plain(entries));
    const c = r.state.entries[2];
    expect(c.type === 'command' && Object.getPrototypeOf(c.command)).toBe(Uint8Array.prototype);
    expect(r.lastIndex).toBe(4);
    await r.close();
  });

  it('truncates a conflicting suffix by appending its replacement, without awaiting in between', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false });
    const p1 = s.appendEntries(cmds(1, 10, 1));
    const p2 = s.appendEntries(cmds(6, 8, 2)); // replaces 6..10
    const p3 = s.appendEntries(cmds(9, 9, 3));
    expect(s.lastIndex).toBe(9);
    await Promise.all([p1, p2, p3]);
    await s.close();
    const r = await openStorage(dir);
    expect(plain(r.state.entries)).toEqual(plain([...cmds(1, 5, 1), ...cmds(6, 8, 2), cmd(9, 3)]));
    await r.close();
  });

  it('rejects appends that would leave a gap or go below the snapshot, writing nothing', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false });
    await s.appendEntries(cmds(1, 3, 1));
    await expect(s.appendEntries(cmds(5, 6, 1))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(s.appendEntries([cmd(4, 1), cmd(6, 1)])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(s.saveHardState({ term: -1, votedFor: null })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await s.saveSnapshot({ index: 2, term: 1, config: CONFIG }, new Uint8Array([1]));
    await expect(s.appendEntries([cmd(2, 1)])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(s.lastIndex).toBe(3);
    await s.appendEntries([cmd(4, 1)]);
    await s.close();
    const r = await openStorage(dir);
    expect(plain(r.state.entries)).toEqual(plain(cmds(3, 4, 1)));
    await r.close();
  });

  it('refuses a second open of the same directory, and a live process lock', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir);
    const err = await openStorage(dir).catch((e: unknown) => e);
    expect(isStorageError(err, 'LOCKED')).toBe(true);
    await s.close();
    // A LOCK held by another live process (our parent, which is certainly alive).
    fs.writeFileSync(join(dir, 'LOCK'), `${process.ppid}\n`);
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'LOCKED' });
    // A stale LOCK (a process id that cannot exist) is taken over.
    fs.writeFileSync(join(dir, 'LOCK'), '2147483646\n');
    const t = await openStorage(dir);
    await t.close();
  });

  it('rejects every call after close with CLOSED', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir);
    await s.close();
    await s.close();
    await expect(s.appendEntries([cmd(1, 1)])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(s.saveHardState({ term: 1, votedFor: null })).rejects.toBeInstanceOf(StorageError);
  });

  it('rotates segments and compacts whole segments after a snapshot', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false, segmentBytes: 512 });
    for (let i = 1; i <= 60; i++) await s.appendEntries([cmd(i, 1)]);
    const before = s.segments();
    expect(before.length).toBeGreaterThan(4);
    await s.saveSnapshot({ index: 40, term: 1, config: CONFIG }, payload(40, 1, 100));
    expect(s.segments().length).toBe(before.length); // saving a snapshot alone deletes nothing
    await s.compact(40);
    const after = s.segments();
    expect(after.length).toBeLessThan(before.length);
    for (const seg of after.slice(0, -1)) expect(seg.maxIndex === null || seg.maxIndex > 40).toBe(true);
    expect(segmentFiles(dir)).toEqual(after.map((x) => x.file));
    await expect(s.compact(41)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await s.close();
    const r = await openStorage(dir);
    expect(r.state.snapshot).toEqual({ index: 40, term: 1, config: CONFIG });
    expect(plain(r.state.entries)).toEqual(plain(cmds(41, 60, 1)));
    expect(Array.from((await r.readSnapshot())!.data)).toEqual(Array.from(payload(40, 1, 100)));
    await r.close();
  });

  it('a local snapshot whose entry is not in the log drops the log', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false });
    await s.appendEntries(cmds(1, 5, 1));
    await s.saveSnapshot({ index: 3, term: 2, config: CONFIG }, new Uint8Array([3])); // term mismatch at 3
    expect(s.lastIndex).toBe(3);
    await s.appendEntries(cmds(4, 4, 2));
    await s.close();
    const r = await openStorage(dir);
    expect(r.state.snapshot?.index).toBe(3);
    expect(plain(r.state.entries)).toEqual(plain([cmd(4, 2)]));
    await r.close();
  });

  it('receives a snapshot in chunks, installs it, drops the log and serves it back in chunks', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir);
    await s.appendEntries(cmds(1, 5, 1));
    const data = payload(1, 1, 10_000);
    const meta = { index: 100, term: 7, config: CONFIG };
    const rx = s.beginSnapshotReceive(meta);
    await rx.write(0, data.subarray(0, 100));
    await rx.write(0, data.subarray(0, 4000)); // offset 0 restarts the transfer
    await expect(rx.write(5000, data.subarray(5000))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(rx.receivedBytes).toBe(4000);
    await rx.write(4000, data.subarray(4000));
    expect(s.durableSnapshot).toBeNull();
    await rx.finish();
    await expect(rx.finish()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(s.durableSnapshot).toEqual({ meta, bytes: 10_000 });
    expect(s.lastIndex).toBe(100);
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < 10_000; off += 3000) chunks.push(await s.readSnapshotChunk(off, 3000, 100));
    expect(chunks.map((c) => c.length)).toEqual([3000, 3000, 3000, 1000]);
    expect(Buffer.concat(chunks).equals(Buffer.from(data))).toBe(true);
    await expect(s.readSnapshotChunk(0, 10, 99)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await s.appendEntries([cmd(101, 7)]); // the storage still works after the install
    await s.close();
    const r = await openStorage(dir);
    expect(r.state.snapshot).toEqual(meta);
    expect(plain(r.state.entries)).toEqual(plain([cmd(101, 7)]));
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await r.close();
  });

  it('an aborted or superseded snapshot transfer leaves no file behind', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir);
    const a = s.beginSnapshotReceive({ index: 9, term: 1, config: CONFIG });
    await a.write(0, new Uint8Array(10));
    const b = s.beginSnapshotReceive({ index: 10, term: 1, config: CONFIG }); // aborts a
    await expect(a.finish()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await b.write(0, new Uint8Array(5));
    await b.abort();
    await s.close();
    expect(fs.readdirSync(dir).filter((n) => n.includes('snapshot'))).toEqual([]);
    const r = await openStorage(dir);
    expect(r.state.snapshot).toBeNull();
    await r.close();
  });

  it('supports a custom codec and refuses what the default codec cannot store', async () => {
    const dir = await tempDir();
    const codec: Codec<{ op: string; n: bigint }> = {
      encode: (c) => ({ op: c.op, n: c.n.toString() }),
      decode: (j) => {
        const o = j as { op: string; n: string };
        return { op: o.op, n: BigInt(o.n) };
      },
    };
    const s = await openStorage(dir, { codec, sync: false });
    await s.appendEntries([{ index: 1, term: 1, type: 'command', command: { op: 'add', n: 2n ** 70n } }]);
    await s.close();
    const r = await openStorage(dir, { codec });
    expect(r.state.entries).toEqual([{ index: 1, term: 1, type: 'command', command: { op: 'add', n: 2n ** 70n } }]);
    await r.close();

    const d2 = await tempDir();
    const t = await openStorage<unknown>(d2, { sync: false });
    await expect(t.appendEntries([{ index: 1, term: 1, type: 'command', command: () => 1 }])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    const nested = { $bytes: 'not bytes', list: [new Uint8Array([1, 2]), { x: null }] };
    await t.appendEntries([{ index: 1, term: 1, type: 'command', command: nested }]);
    await t.close();
    const u = await openStorage<unknown>(d2);
    expect(u.state.entries[0]).toEqual({ index: 1, term: 1, type: 'command', command: nested });
    await u.close();
  });

  it('a codec that cannot decode stops the open and changes nothing', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false });
    await s.appendEntries(cmds(1, 3, 1));
    await s.close();
    fs.appendFileSync(join(dir, 'log-0000000001.jsonl'), '{"crc":"0000'); // a torn tail that must survive
    const before = fs.readFileSync(join(dir, 'log-0000000001.jsonl'));
    const bad: Codec<never> = {
      encode: () => null,
      decode: () => {
        throw new Error('nope');
      },
    };
    await expect(openStorage(dir, { codec: bad })).rejects.toMatchObject({ code: 'CORRUPT_RECORD' });
    expect(fs.readFileSync(join(dir, 'log-0000000001.jsonl')).equals(before)).toBe(true);
    expect(fs.existsSync(join(dir, 'LOCK'))).toBe(false);
  });

  it('removes leftovers of an interrupted snapshot or compaction on open, and reports them', async () => {
    const dir = await tempDir();
    const s = await openStorage(dir, { sync: false, segmentBytes: 300 });
    for (let i = 1; i <= 12; i++) await s.appendEntries([cmd(i, 1)]);
    await s.saveSnapshot({ index: 12, term: 1, config: CONFIG }, new Uint8Array([1, 2, 3]), { dropLog: true });
    await s.close();
    // What a crash can leave behind: temporary files, a data file that never got its snapshot.json, and a segment
    // from before the snapshot whose deletion did not reach the disk.
    fs.writeFileSync(join(dir, 'snapshot.json.tmp'), 'half');
    fs.writeFileSync(join(dir, 'snapshot-000000000099-9.bin'), 'orphan');
    fs.writeFileSync(join(dir, 'snapshot-000000000099-9.bin.tmp'), 'orphan');
    fs.writeFileSync(join(dir, 'log-0000000001.jsonl'), 'stale');
    fs.writeFileSync(join(dir, 'notes.txt'), "the operator's own file");
    const r = await openStorage(dir);
    expect([...r.recovery.removedFiles].sort()).toEqual(
      ['log-0000000001.jsonl', 'snapshot-000000000099-9.bin', 'snapshot-000000000099-9.bin.tmp', 'snapshot.json.tmp']
        .map((f) => join(dir, f))
        .sort(),
    );
    expect([...r.recovery.repaired].sort((a, b) => a.file.localeCompare(b.file))).toEqual([
      {
        action: 'deleted',
        file: join(dir, 'log-0000000001.jsonl'),
        offset: 0,
        bytes: 5,
        line: null,
        reason: "segment older than the snapshot's first needed segment log-0000000007.jsonl: the snapshot replaced it",
      },
      {
        action: 'deleted',
        file: join(dir, 'snapshot-000000000099-9.bin'),
        offset: 0,
        bytes: 6,
        line: null,
        reason: 'snapshot data that snapshot.json does not name (an older or unfinished snapshot)',
      },
      {
        action: 'deleted',
        file: join(dir, 'snapshot-000000000099-9.bin.tmp'),
        offset: 0,
        bytes: 6,
        line: null,
        reason: 'temporary file of a write that a crash interrupted',
      },
      {
        action: 'deleted',
        file: join(dir, 'snapshot.json.tmp'),
        offset: 0,
        bytes: 4,
        line: null,
        reason: 'temporary file of a write that a crash interrupted',
      },
    ]);
    expect(r.state.snapshot?.index).toBe(12);
    expect(r.state.entries).toEqual([]);
    await r.close();
    const left = fs.readdirSync(dir).sort();
    expect(left).toContain('notes.txt');
    expect(left.filter((f) => f.endsWith('.tmp') || f.includes('-99-') || f === 'log-0000000001.jsonl')).toEqual([]);
  });

  it('never writes a zero byte, even for strings holding U+0000 (recovery reads zeros as unwritten sectors)', async () => {
    const dir = await tempDir();
    const nul = '\u0000n\u0000';
    const s = await openStorage<unknown>(dir, { sync: false, codec: { encode: (c) => c as never, decode: (j) => j } });
    await s.saveHardState({ term: 1, votedFor: nul });
    const config = { voters: [nul], learners: [] };
    await s.appendEntries([
      { index: 1, term: 1, type: 'command', command: { [nul]: nul } },
      { index: 2, term: 1, type: 'config', config },
    ]);
    await s.saveSnapshot({ index: 1, term: 1, config }, new Uint8Array([1]));
    await s.close();
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.json') || n.endsWith('.jsonl')))
      expect(fs.readFileSync(join(dir, name)).includes(0), name).toBe(false);
    const r = await openStorage<unknown>(dir, { codec: { encode: (c) => c as never, decode: (j) => j } });
    expect(r.state.hardState).toEqual({ term: 1, votedFor: nul });
    expect(r.state.entries).toEqual([{ index: 2, term: 1, type: 'config', config }]);
    await r.close();
  });

  it('refuses a directory written by an incompatible format version', async () => {
    const dir = await tempDir();
    const { encodeLine } = await import('../src/format.js');
    fs.writeFileSync(
      join(dir, 'log-0000000001.jsonl'),
      encodeLine('{"rec":"segment","v":2,"seq":1,"prev":0,"term":0,"votedFor":null}'),
    );
    await expect(openStorage(dir)).rejects.toMatchObject({
      code: 'UNSUPPORTED_VERSION',
      file: join(dir, 'log-0000000001.jsonl'),
      line: 1,
    });
  });
});
