/** `raft-fault-tester`'s command line: help and usage errors answer at once and never start a fault run. */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..');

function faultTester(args: string[], env: Record<string, string> = {}) {
  // Bounded: a run that started by mistake would be cut off (and fail the status checks) after 30 s.
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(appDir, 'src', 'cli.ts'), ...args], {
    cwd: appDir,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, RAFT_FAULT_SECONDS: '', RAFT_FAULT_NODES: '', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('raft-fault-tester CLI', () => {
  it('prints usage for -h and --help and exits 0 without starting a run', () => {
    for (const flag of ['-h', '--help']) {
      const r = faultTester([flag]);
      expect(r.status, flag).toBe(0);
      expect(r.stdout).toMatch(/^usage: raft-fault-tester/);
      expect(r.stdout).toContain('RAFT_FAULT_SECONDS');
      expect(r.stdout).not.toContain('starting');
    }
  });

  it('refuses unknown flags, positionals and bad values with exit status 2 and the usage', () => {
    const cases: [string[], Record<string, string>, string][] = [
      [['--no-such-flag'], {}, "'--no-such-flag'"],
      [['60'], {}, "'60'"],
      [['--nodes', '4'], {}, 'must be 3 or 5'],
      [['--seconds', 'soon'], {}, '--seconds (RAFT_FAULT_SECONDS) must be a non-negative integer'],
      [[], { RAFT_FAULT_NODES: 'x' }, '--nodes (RAFT_FAULT_NODES) must be a non-negative integer'],
    ];
    for (const [args, env, message] of cases) {
      const r = faultTester(args, env);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain('usage: raft-fault-tester');
    }
  });
});
