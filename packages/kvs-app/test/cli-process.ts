/**
 * Test helpers that run the `raft-kvs` CLI from its TypeScript sources as child processes, exactly as a user's
 * shell would (same argv, stdin, stdout, exit status).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The repository root. */
export const ROOT = resolve(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'packages', 'kvs-app', 'src', 'cli.ts');
const TSX = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

/** The node arguments that run the CLI from source. */
export function cliArgs(args: readonly string[]): string[] {
  return ['--import', TSX, CLI, ...args];
}

const env = () => ({ ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json'), NO_COLOR: '1' });

/** What a finished CLI run printed. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `raft-kvs <args>` to completion (killing it after `timeoutMs`). */
export function runCli(
  args: readonly string[],
  opts: { stdin?: string; timeoutMs?: number; cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, cliArgs(args), { cwd: opts.cwd ?? ROOT, env: { ...env(), ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`raft-kvs ${args.join(' ')} did not finish in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** A `raft-kvs serve` child process. */
export interface ServeProcess {
  readonly addr: string;
  readonly child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Sends `signal` and resolves with the exit code (or signal name) once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
}

/** Starts `raft-kvs serve <addr> ...extra` and resolves once it prints that it is serving. */
export function startServe(addr: string, extra: readonly string[], cwd = ROOT): Promise<ServeProcess> {
  const child = spawn(process.execPath, cliArgs(['serve', addr, ...extra]), { cwd, env: env() });
  let out = '';
  const exited = new Promise<number | string | null>((r) => child.once('exit', (code, sig) => r(code ?? sig)));
  const proc: ServeProcess = {
    addr,
    child,
    output: () => out,
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return new Promise((resolvePromise, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString('utf8');
      if (out.includes('serving on')) resolvePromise(proc);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    exited.then((c) => reject(new Error(`serve ${addr} exited (${c}) before serving:\n${out}`)));
    setTimeout(() => {
      // Never leave a server behind: a late start would outlive the test run.
      child.kill('SIGKILL');
      reject(new Error(`serve ${addr} not serving after 60 s:\n${out}`));
    }, 60_000).unref();
  });
}
