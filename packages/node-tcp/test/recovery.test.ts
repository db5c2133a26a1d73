/**
 * What storage recovery repaired at start is said loudly: one warning in the log and the `recovery` field of
 * GetServerState. A damaged last record is not repaired at all: the server refuses to start.
 */

import fs from 'node:fs';
import { join } from 'node:path';
import { isStorageError } from '@raft/storage-jsonl';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../src/index.js';
import { Cluster } from './helpers.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

/** A logger that keeps warnings (message and fields). */
function spyLogger(): Logger & { warnings: { message: string; fields?: Record<string, unknown> }[] } {
  const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
  return { warnings, info() {}, error() {}, warn: (message, fields) => warnings.push({ message, fields }) };
}

function lastSegment(dir: string): string {
  const segs = fs
    .readdirSync(dir)
    .filter((n) => /^log-\d{10}\.jsonl$/.test(n))
    .sort();
  return join(dir, segs[segs.length - 1]);
}

describe('storage recovery at start', () => {
  it('a truncated torn write is logged at warn and reported by GetServerState; a clean restart reports nothing', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const addr = a.id;
    await a.createCluster();
    await a.apply({ Put: ['k', 1] });
    expect((await a.getServerState()).recovery).toEqual({ repaired: [] });
    await c.stop(addr);

    // What a kill -9 in the middle of a write leaves: a last line without its newline.
    const seg = lastSegment(c.dataDir(addr));
    const size = fs.statSync(seg).size;
    const lines = fs.readFileSync(seg, 'utf8').split('\n').length;
    fs.appendFileSync(seg, '{"crc":"0123abcd","rec":"ent');

    const logger = spyLogger();
    const b = await c.start(addr, { logger });
    const expected = {
      action: 'truncated',
      file: seg,
      offset: size,
      bytes: 28,
      line: lines,
      reason: 'incomplete last line (no newline): a write cut short by a crash',
    };
    expect((await b.getServerState()).recovery).toEqual({ repaired: [expected] });
    const warned = logger.warnings.filter((w) => w.message.startsWith('storage recovery repaired'));
    expect(warned.length).toBe(1);
    expect(warned[0].message).toContain(`truncated ${seg} at byte ${size} (line ${lines}), dropping 28 bytes`);
    expect(warned[0].fields).toEqual({ repaired: [expected] });
    // The same over JSON-RPC.
    const client = await c.client(addr);
    expect(((await client.request('GetServerState')) as { recovery: unknown }).recovery).toEqual({
      repaired: [expected],
    });
    expect(await b.query({ Get: 'k' })).toBe(1);
    await client.close();
    await c.stop(addr);

    const quiet = spyLogger();
    const d = await c.start(addr, { logger: quiet });
    expect((await d.getServerState()).recovery).toEqual({ repaired: [] });
    expect(quiet.warnings.filter((w) => w.message.startsWith('storage recovery'))).toEqual([]);
  });

  it('refuses to start when the last complete record is damaged (it may be acknowledged)', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const addr = a.id;
    await a.createCluster();
    await c.stop(addr);
    const seg = lastSegment(c.dataDir(addr));
    const text = fs.readFileSync(seg, 'utf8');
    // Change a digit of the last complete record (an entry of term 1): still JSON, only its checksum tells.
    const at = text.lastIndexOf('"term":1');
    expect(at).toBeGreaterThan(text.lastIndexOf('\n', text.length - 2));
    fs.writeFileSync(seg, `${text.slice(0, at)}"term":3${text.slice(at + 8)}`);
    const err = await c.start(addr).catch((e: unknown) => e);
    expect(isStorageError(err, 'CORRUPT_RECORD'), String(err)).toBe(true);
    expect((err as Error).message).toContain('not a torn write');
    expect(fs.readFileSync(seg, 'utf8')).toBe(`${text.slice(0, at)}"term":3${text.slice(at + 8)}`);
  });
});
