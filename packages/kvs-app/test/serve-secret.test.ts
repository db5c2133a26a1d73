// Issue 15 item 4: no secret in argv. `raft-kvs serve --secret S` is refused (ps shows argv to every local user);
// the secret comes from --secret-file or $RAFT_SECRET. These paths fail before a server starts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../src/args.js';
import { runServe } from '../src/serve.js';

const dir = mkdtempSync(join(tmpdir(), 'raft-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('raft-kvs serve and its secret', () => {
  it('refuses --secret on the command line and says where a secret goes instead', async () => {
    await expect(runServe(['127.0.0.1:4999', '--secret', 's3cr3t'])).rejects.toThrow(UsageError);
    await expect(runServe(['127.0.0.1:4999', '--secret', 's3cr3t'])).rejects.toThrow(
      /--secret-file PATH or the RAFT_SECRET/,
    );
  });

  it('refuses an unreadable or empty --secret-file', async () => {
    await expect(runServe(['127.0.0.1:4999', '--secret-file', join(dir, 'missing')])).rejects.toThrow(/cannot read/);
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    await expect(runServe(['127.0.0.1:4999', '--secret-file', empty])).rejects.toThrow(/is empty/);
  });

  it('an exposed address without a secret does not start (exit status 1, with the reason)', async () => {
    const status = await runServe(['127.0.0.1:4999', '--listen', '0.0.0.0:4999', '--data', join(dir, 'd'), '--quiet']);
    expect(status).toBe(1);
  });
});
