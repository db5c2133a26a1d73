/**
 * `raft-kvs demo`: starts a cluster of `raft-kvs serve` child processes on loopback and walks through it: create
 * the cluster, add members, write and read through different nodes, kill the leader, watch a new one serve the
 * same data, restart the killed node and see it catch up. Then it leaves the cluster running for the user.
 *
 * @packageDocumentation
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { intFlag, parseArgs, stringFlag, UsageError } from './args.js';
import { callLines, requestLine } from './call.js';

/** Help text of `raft-kvs demo`. */
export const DEMO_HELP = `usage: raft-kvs demo [--nodes N] [--base-port P] [--data DIR] [--dashboard-port D] [--exit]

Starts N (default 3) key-value servers on 127.0.0.1:P, P+1, ... (default P = 4000) as child processes, forms a
cluster with CreateCluster and AddServer, runs Put / Get / Delete through different nodes, kills the leader,
shows a new leader serving the same data, restarts the killed node, and leaves the cluster running.
From a checkout of the repository it also serves the live dashboard (apps/dashboard) and prints its URL.
Ctrl-C stops every node cleanly.

options:
  --nodes N       cluster size, 3 to 7 (default 3)
  --base-port P   first port (default 4000)
  --data DIR      keep the nodes' data and logs in DIR (default: a temporary folder, removed on exit)
  --dashboard-port D  port of the dashboard (default P+80, or any free port when that one is taken)
  --exit          stop the cluster when the walk-through ends instead of waiting for Ctrl-C

exit status: 0 the walk-through succeeded; 1 a step failed; 2 usage error`;

interface DemoNode {
  readonly addr: string;
  readonly dataDir: string;
  readonly logFile: string;
  child: ChildProcess | null;
}

/** The command that runs this CLI again (works from sources through tsx and from the built file). */
function selfCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: [...process.execArgv, process.argv[1]] };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createNetServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Sends one request and returns the raw response line (as `raft-kvs call` prints it). */
async function call(addr: string, method: string, params?: unknown, timeoutMs = 15_000): Promise<string> {
  let out = '';
  await callLines(
    addr,
    [requestLine(method, params)],
    (line) => {
      out = line;
    },
    timeoutMs,
  );
  return out;
}

function resultOf(line: string): unknown {
  const v = JSON.parse(line) as { result?: unknown; error?: { message: string } };
  if (v.error) throw new Error(v.error.message);
  return v.result;
}

function startNode(node: DemoNode, electionMs: number): Promise<void> {
  const self = selfCommand();
  const child = spawn(
    self.command,
    [
      ...self.args,
      'serve',
      node.addr,
      '--data',
      node.dataDir,
      '--election-ms',
      String(electionMs),
      '--heartbeat-ms',
      '50',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  node.child = child;
  const log = createWriteStream(node.logFile, { flags: 'a' });
  child.stderr?.pipe(log);
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    let ready = false;
    rl.on('line', (line) => {
      log.write(`${line}\n`);
      if (!ready && line.includes('serving on')) {
        ready = true;
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`${node.addr} exited before serving (${signal ?? code}); see ${node.logFile}`));
    });
  });
}

function stopNode(node: DemoNode, signal: NodeJS.Signals): Promise<void> {
  const child = node.child;
  node.child = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/**
 * Starts the live dashboard beside the cluster when this CLI runs from a checkout of the repository (the dashboard
 * is an app of the repository, not a dependency of the published package). Builds its page on first use.
 *
 * @returns the dashboard's process and live-view URL, or `null` (with the reason) when it is not available.
 */
async function startDashboard(
  nodes: readonly string[],
  port: number,
  logFile: string,
): Promise<{ child: ChildProcess; url: string } | { child: null; reason: string }> {
  const appDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'apps', 'dashboard');
  const cli = join(appDir, 'src', 'cli.ts');
  if (!existsSync(cli) || !process.execArgv.some((a) => a.includes('tsx'))) {
    return { child: null, reason: 'the dashboard app is not in this installation' };
  }
  const log = createWriteStream(logFile, { flags: 'a' });
  if (!existsSync(join(appDir, 'dist', 'web', 'app.js'))) {
    const build = spawn(process.execPath, [join(appDir, 'build-web.mjs')], {
      cwd: appDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    build.stdout?.pipe(log, { end: false });
    build.stderr?.pipe(log, { end: false });
    const code = await new Promise<number | null>((r) => build.once('exit', r));
    if (code !== 0) return { child: null, reason: `building its page failed (see ${logFile})` };
  }
  const tryPort = async (p: number) => {
    const child = spawn(process.execPath, [...process.execArgv, cli, '--port', String(p), '--nodes', nodes.join(',')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr?.pipe(log, { end: false });
    return new Promise<{ child: ChildProcess; url: string } | null>((resolve) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /live view:\s+(\S+)/.exec(out);
        if (m) resolve({ child, url: m[1] });
      });
      child.once('exit', () => resolve(null));
    });
  };
  const started = (await tryPort(port)) ?? (await tryPort(0));
  return started ?? { child: null, reason: `it did not start (see ${logFile})` };
}

/** Polls every node until one reports itself leader (other than `not`), or throws after `timeoutMs`. */
async function waitForLeader(nodes: readonly DemoNode[], not: string | null, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const n of nodes) {
      if (!n.child) continue;
      try {
        const s = resultOf(await call(n.addr, 'GetServerState', undefined, 2000)) as { role: string; id: string };
        if (s.role === 'leader' && s.id !== not) return s.id;
      } catch {
        // not answering yet: keep polling
      }
    }
    await sleep(100);
  }
  throw new Error(`no leader within ${timeoutMs} ms`);
}

/** Runs `raft-kvs demo`. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const { flags } = parseArgs(argv, {
    nodes: 'string',
    'base-port': 'string',
    data: 'string',
    'dashboard-port': 'string',
    exit: 'boolean',
  });
  if (flags.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const count = intFlag(flags, 'nodes', 3) ?? 3;
  if (count > 7) throw new UsageError('--nodes must be between 3 and 7');
  const basePort = intFlag(flags, 'base-port') ?? 4000;
  if (basePort + count - 1 > 65535) throw new UsageError('--base-port is too high');
  const keepData = stringFlag(flags, 'data');
  const root = keepData ?? mkdtempSync(join(tmpdir(), 'raft-kvs-demo-'));
  mkdirSync(root, { recursive: true });

  const nodes: DemoNode[] = [];
  for (let i = 0; i < count; i++) {
    const port = basePort + i;
    if (!(await portFree(port))) {
      console.error(`raft-kvs demo: port ${port} is in use; choose other ports with --base-port`);
      if (!keepData) rmSync(root, { recursive: true, force: true });
      return 1;
    }
    nodes.push({
      addr: `127.0.0.1:${port}`,
      dataDir: join(root, `node-${port}`),
      logFile: join(root, `node-${port}.log`),
      child: null,
    });
  }
  const electionMs = 400;
  let shuttingDown = false;
  let dashboard: ChildProcess | null = null;
  const shutdown = async () => {
    shuttingDown = true;
    if (dashboard && dashboard.exitCode === null) {
      const d = dashboard;
      await new Promise<void>((r) => {
        d.once('exit', () => r());
        d.kill('SIGTERM');
      });
    }
    await Promise.all(nodes.map((n) => stopNode(n, 'SIGTERM')));
    if (!keepData) rmSync(root, { recursive: true, force: true });
  };
  const short = (addr: string) => addr.replace(/^127\.0\.0\.1/, '');
  const show = async (addr: string, method: string, params?: unknown) => {
    const p = params === undefined ? '' : ` '${JSON.stringify(params)}'`;
    console.log(`\n$ raft-kvs call ${short(addr)} ${method}${p}`);
    const line = await call(addr, method, params);
    console.log(line);
    return resultOf(line);
  };

  try {
    console.log(`Starting ${count} servers (data and logs in ${root})...`);
    await Promise.all(nodes.map((n) => startNode(n, electionMs)));
    console.log(`Started ${nodes.map((n) => n.addr).join(', ')}. None of them is in a cluster yet.`);

    const [a, b, c] = nodes;
    console.log('\n# Create a one-node cluster on the first server, then add the others (they join as learners');
    console.log('# and become voters once they have caught up).');
    await show(a.addr, 'CreateCluster');
    for (const n of nodes.slice(1)) await show(a.addr, 'AddServer', { addr: n.addr });

    console.log('\n# Write through one node and read through others: any member forwards to the leader.');
    await show(b.addr, 'Apply', { kind: 'Command', input: { Put: ['foo', 123] } });
    await show(c.addr, 'Apply', { kind: 'Query', input: { Get: 'foo' } });
    await show(a.addr, 'Apply', { kind: 'Command', input: { Put: { key: 'bar', value: { x: [1, 2] } } } });
    await show(c.addr, 'Apply', { kind: 'Command', input: { Delete: 'bar' } });
    await show(b.addr, 'Apply', { kind: 'Query', input: 'List' });

    const leader = await waitForLeader(nodes, null, 10_000);
    const leaderNode = nodes.find((n) => n.addr === leader) as DemoNode;
    console.log(`\n# The leader is ${leader}. Kill it (SIGKILL) and wait for a new one.`);
    const killedAt = Date.now();
    await stopNode(leaderNode, 'SIGKILL');
    const next = await waitForLeader(nodes, leader, 20_000);
    console.log(`New leader ${next} elected ${Date.now() - killedAt} ms after the kill.`);
    await show(next, 'Apply', { kind: 'Query', input: { Get: 'foo' } });
    await show(next, 'Apply', { kind: 'Command', input: { Put: ['after-failover', true] } });

    console.log(`\n# Restart ${leader} from its data directory; it catches up from the new leader.`);
    await startNode(leaderNode, electionMs);
    const deadline = Date.now() + 20_000;
    let caughtUp = false;
    while (!caughtUp && Date.now() < deadline) {
      const v = resultOf(
        await call(leaderNode.addr, 'Apply', { kind: 'LocalQuery', input: { Get: 'after-failover' } }),
      );
      caughtUp = v === true;
      if (!caughtUp) await sleep(100);
    }
    if (!caughtUp) throw new Error(`${leader} did not catch up within 20 s`);
    await show(leaderNode.addr, 'Apply', { kind: 'LocalQuery', input: { Get: 'after-failover' } });

    const dash = await startDashboard(
      nodes.map((n) => n.addr),
      intFlag(flags, 'dashboard-port') ?? basePort + 80,
      join(root, 'dashboard.log'),
    );
    dashboard = dash.child;
    console.log(
      dash.child ? `\nLive dashboard: ${dash.url}` : `\n(The live dashboard is not started: ${dash.reason}.)`,
    );
    console.log('\nThe demo cluster is running. Try:');
    console.log(`  npm run -s kvs -- call :${basePort} GetServerState`);
    console.log(
      `  npm run -s kvs -- call :${basePort + 1} Apply '{"kind":"Command","input":{"Put":["hello","world"]}}'`,
    );
    console.log(`  npm run -s kvs -- call :${basePort + 2} Apply '{"kind":"Query","input":{"Get":"hello"}}'`);
    console.log(`  npm run -s kvs -- call :${basePort} TakeSnapshot`);
    console.log(`Node logs: ${root}/node-<port>.log`);
  } catch (e) {
    console.error(`\nraft-kvs demo: ${(e as Error).message}`);
    await shutdown();
    return 1;
  }

  if (flags.exit) {
    await shutdown();
    console.log('\nStopped every node.');
    return 0;
  }
  console.log('Press Ctrl-C to stop every node.');
  await new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  if (!shuttingDown) await shutdown();
  console.log('\nStopped every node.');
  return 0;
}
