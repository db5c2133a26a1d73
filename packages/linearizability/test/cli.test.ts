/** The `raft-lincheck` command line, run from its sources as a child process: help, usage errors, verdicts. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'lincheck-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lincheck(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(pkgDir, 'src', 'cli.ts'), ...args], {
    cwd: pkgDir,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lines = (events: object[]) => `${events.map((e) => JSON.stringify(e)).join('\n')}\n`;

describe('raft-lincheck', () => {
  it('prints usage for -h and --help and exits 0', () => {
    for (const flag of ['-h', '--help']) {
      const r = lincheck(flag);
      expect(r.status, flag).toBe(0);
      expect(r.stdout).toMatch(/^usage: raft-lincheck <history\.jsonl>/);
      expect(r.stdout).toContain('exit status:');
    }
  });

  it('refuses an unknown flag, a missing file argument and a bad limit with exit status 2 and the usage', () => {
    for (const args of [['--no-such-flag', 'h.jsonl'], [], ['h.jsonl', '--time-limit-ms', 'soon'], ['a', 'b']]) {
      const r = lincheck(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('usage: raft-lincheck');
    }
    expect(lincheck('--no-such-flag', 'h.jsonl').stderr).toContain("'--no-such-flag'");
  });

  it('exits 0 for a linearizable history, 1 for a stale read, 3 for a missing file', () => {
    const ok = join(dir, 'ok.jsonl');
    const stale = join(dir, 'stale.jsonl');
    writeFileSync(
      ok,
      lines([
        { process: 1, type: 'invoke', f: 'put', key: 'k', value: 'a', time: 1 },
        { process: 1, type: 'ok', f: 'put', key: 'k', value: 'a', time: 2 },
        { process: 2, type: 'invoke', f: 'get', key: 'k', time: 3 },
        { process: 2, type: 'ok', f: 'get', key: 'k', value: 'a', time: 4 },
      ]),
    );
    writeFileSync(
      stale,
      lines([
        { process: 1, type: 'invoke', f: 'put', key: 'k', value: 'a', time: 1 },
        { process: 1, type: 'ok', f: 'put', key: 'k', value: 'a', time: 2 },
        { process: 1, type: 'invoke', f: 'put', key: 'k', value: 'b', time: 3 },
        { process: 1, type: 'ok', f: 'put', key: 'k', value: 'b', time: 4 },
        { process: 2, type: 'invoke', f: 'get', key: 'k', time: 5 },
        { process: 2, type: 'ok', f: 'get', key: 'k', value: 'a', time: 6 },
      ]),
    );
    expect(lincheck(ok).status).toBe(0);
    const json = lincheck(ok, '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ verdict: 'linearizable' });
    expect(lincheck(stale).status).toBe(1);
    const missing = lincheck(join(dir, 'missing.jsonl'));
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/^raft-lincheck: /);
  });
});
