import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = ['--import', 'tsx', join(appDir, 'src', 'cli.ts')];
let child: ChildProcess | null = null;

afterEach(async () => {
  // Only the child this test started, by its PID.
  if (child !== null && child.exitCode === null) {
    const exited = new Promise((r) => child?.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  child = null;
});

describe('serve-dashboard CLI', () => {
  it('prints the live and playground URLs and serves the nodes it was given', async () => {
    child = spawn(process.execPath, [...cli, '--port', '0', '--nodes', '127.0.0.1:7001, 127.0.0.1:7002'], {
      cwd: appDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr?.on('data', (d) => {
      err += String(d);
    });
    const urls = await new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URLs printed; stdout: ${out} stderr: ${err}`)), 30_000);
      child?.stdout?.on('data', (d) => {
        out += String(d);
        const m = [...out.matchAll(/(http:\/\/127\.0\.0\.1:\d+\/\S*)/g)].map((x) => x[1]);
        if (m.length >= 2) {
          clearTimeout(timer);
          resolve(m);
        }
      });
      child?.once('exit', (code) => reject(new Error(`exited with ${code}; stdout: ${out} stderr: ${err}`)));
    });
    expect(out).toMatch(/^live view: {2}http/m);
    expect(urls[0]).toContain('?nodes=127.0.0.1%3A7001,127.0.0.1%3A7002');
    expect(urls[1]).toContain('mode=playground');
    const config = (await (await fetch(new URL('/config.json', urls[0]))).json()) as { nodes: string[] };
    expect(config.nodes).toEqual(['127.0.0.1:7001', '127.0.0.1:7002']);
  });

  it('refuses a bad port with exit status 2', () => {
    const r = spawnSync(process.execPath, [...cli, '--port', 'nope'], {
      cwd: appDir,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('bad --port');
  });

  it('prints usage for -h and --help and exits 0', () => {
    for (const flag of ['-h', '--help']) {
      const r = spawnSync(process.execPath, [...cli, flag], { cwd: appDir, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, flag).toBe(0);
      expect(r.stdout).toMatch(/^usage: serve-dashboard/);
    }
  });

  it('refuses an unknown flag and a positional with exit status 2 and the usage', () => {
    for (const arg of ['--no-such-flag', 'extra']) {
      const r = spawnSync(process.execPath, [...cli, arg], { cwd: appDir, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, arg).toBe(2);
      expect(r.stderr).toContain(`'${arg}'`);
      expect(r.stderr).toContain('usage: serve-dashboard');
    }
  });
});
