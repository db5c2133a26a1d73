/** The embedding example quoted in docs/node-tcp.md (examples/counter.ts), run for real on 127.0.0.1. */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@raft/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { runCounter } from '../examples/counter.js';

const dir = mkdtempSync(join(tmpdir(), 'node-tcp-counter-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the Counter example of docs/node-tcp.md', () => {
  it('is quoted in docs/node-tcp.md exactly', () => {
    const code = readFileSync(join(__dirname, '../examples/counter.ts'), 'utf8');
    const doc = readFileSync(join(__dirname, '../../../docs/node-tcp.md'), 'utf8');
    expect(doc).toContain(code.trim());
  });

  it('answers every call as its comments say', async () => {
    const a = `127.0.0.1:${await freePort()}`;
    const b = `127.0.0.1:${await freePort()}`;
    const [created, applied, read, local, added, forwarded, readOther, roles] = await runCounter(a, b, dir);
    expect(created).toEqual({ members: [a] });
    expect([applied, read, local]).toEqual([2, 2, 2]);
    expect(added).toEqual({ members: [a, b] });
    expect([forwarded, readOther]).toEqual([5, 5]);
    expect(roles).toContain(`leader t1 ${a}`);
  });
});
