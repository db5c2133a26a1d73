import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..', '..');
const pids: number[] = [];
const dirs: string[] = [];
afterEach(() => {
  // Only processes this test started, by PID.
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('bench-lib clusterKit', () => {
  it('a repeated SIGINT (Ctrl-C reaches the script and is forwarded again by tsx) still stops children and removes the data', async () => {
    const base = mkdtempSync(join(tmpdir(), 'kit-signal-'));
    dirs.push(base);
    const dataRoot = join(base, 'data');
    mkdirSync(dataRoot);
    const proc: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', join(__dirname, 'fixtures', 'kit-signal.ts'), dataRoot],
      { cwd: ROOT, env: { ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json') } },
    );
    pids.push(proc.pid as number);
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const childPid = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('fixture did not start in 30 s')), 30_000);
      let out = '';
      proc.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /"child":(\d+)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
    pids.push(childPid);
    expect(alive(childPid)).toBe(true);
    proc.kill('SIGINT');
    proc.kill('SIGINT');
    const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    const result = await exited;
    clearTimeout(t);
    expect(result).toEqual({ code: 130, signal: null });
    expect(alive(childPid)).toBe(false);
    expect(existsSync(dataRoot)).toBe(false);
  });
});
