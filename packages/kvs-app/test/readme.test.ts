/**
 * Runs every command of README.md's walk-through (between the readme-test markers) exactly as written, through a
 * shell, and compares each command's output with the lines README shows under it. Only the ports are changed (to
 * free ones, consistently in commands and expected output) so the test never collides with a running cluster.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '@raft/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './cli-process.js';

interface Step {
  readonly command: string;
  readonly expected: string[];
}

/** Extracts `$ command` lines and the output lines under them from README's walk-through. */
export function readmeSteps(readme: string): Step[] {
  const start = readme.indexOf('<!-- readme-test:start -->');
  const end = readme.indexOf('<!-- readme-test:end -->');
  if (start < 0 || end < start) throw new Error('README.md lost its readme-test markers');
  const steps: Step[] = [];
  let inBlock = false;
  for (const line of readme.slice(start, end).split('\n')) {
    if (line.startsWith('```')) {
      inBlock = line.startsWith('```console');
      continue;
    }
    if (!inBlock) continue;
    if (line.startsWith('$ ')) steps.push({ command: line.slice(2), expected: [] });
    else if (line.trim() !== '') steps.at(-1)?.expected.push(line);
  }
  return steps;
}

describe('README walk-through', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const background: import('node:child_process').ChildProcess[] = [];
  const dataDirs: string[] = [];

  afterAll(async () => {
    await Promise.all(
      background.map(
        (c) =>
          new Promise<void>((r) => {
            if (c.exitCode !== null || c.signalCode !== null) return r();
            c.once('exit', () => r());
            // npm runs the CLI in a child: signal the whole process group we created.
            if (c.pid) process.kill(-c.pid, 'SIGTERM');
          }),
      ),
    );
    for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
  });

  it('has commands to run', () => {
    const steps = readmeSteps(readme);
    expect(steps.filter((s) => s.command.includes(' serve ')).length).toBe(3);
    expect(steps.length).toBeGreaterThan(8);
  });

  it('every command prints what README shows', { timeout: 180_000 }, async () => {
    const steps = readmeSteps(readme);
    const readmePorts = [...new Set([...readme.matchAll(/:(40\d\d)\b/g)].map((m) => m[1]))];
    const ports = await freePorts(readmePorts.length);
    const map = new Map(readmePorts.map((p, i) => [p, String(ports[i])]));
    const remap = (s: string) => s.replace(/:(40\d\d)\b/g, (_, p: string) => `:${map.get(p)}`);

    for (const step of steps) {
      const command = remap(step.command);
      if (command.includes(' serve ')) {
        const port = /serve :(\d+)/.exec(command)?.[1];
        dataDirs.push(join(ROOT, 'raft-data', `127.0.0.1-${port}`));
        const child = spawn('bash', ['-c', command], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
        background.push(child);
        await new Promise<void>((resolve, reject) => {
          let out = '';
          child.stdout?.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('serving on')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`${command} exited with ${code}: ${out}`)));
        });
        continue;
      }
      const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((resolve) => {
        const child = spawn('bash', ['-c', command], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.once('exit', (c) => resolve({ stdout: out, code: c }));
      });
      const expected = step.expected.map(remap);
      expect(stdout.trimEnd().split('\n'), command).toEqual(expected);
      const isError = expected.some((l) => l.includes('"error"'));
      expect(code, command).toBe(isError ? 1 : 0);
    }
  });
});
