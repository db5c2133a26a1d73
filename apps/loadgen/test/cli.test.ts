/** `raft-loadgen`'s command line: help and usage errors answer at once and never send a request. */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..');

function loadgen(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(appDir, 'src', 'cli.ts'), ...args], {
    cwd: appDir,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('raft-loadgen CLI', () => {
  it('prints usage for -h and --help and exits 0', () => {
    for (const flag of ['-h', '--help']) {
      const r = loadgen(flag);
      expect(r.status, flag).toBe(0);
      expect(r.stdout).toMatch(/^usage: raft-loadgen/);
      expect(r.stdout).toMatch(/etcd-grpc\s+etcd's native gRPC API/);
      expect(r.stdout).toMatch(/etcd\s+alias of etcd-grpc/);
      expect(r.stdout).toContain('--grpc-connections N');
    }
  });

  it('refuses an unknown flag, a missing server and a bad value with exit status 2 and the usage', () => {
    const cases: [string[], string][] = [
      [['--no-such-flag', ':4000'], "'--no-such-flag'"],
      [[], 'no SERVER given'],
      [['--target', 'redis', ':4000'], '--target must be one of jsonrpc, etcd-grpc, etcd-gateway, etcd'],
    ];
    for (const [args, message] of cases) {
      const r = loadgen(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain('usage: raft-loadgen');
    }
  });
});
