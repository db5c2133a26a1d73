/**
 * A raft-kvs cluster of real OS processes on loopback, each with its own data directory and log files, with every
 * peer link routed through the {@link ProxyNetwork}.
 *
 * @packageDocumentation
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync, type WriteStream, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hashToken, RpcClient } from '@raft/node-tcp';
import { freePort } from '@raft/testkit';
import { ProxyNetwork } from './proxy.js';

/** The repository root (this file is apps/fault-tester/src/cluster.ts, or dist/ when built). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const KVS_CLI = join(REPO_ROOT, 'packages', 'kvs-app', 'src', 'cli.ts');

/** Raised when the cluster cannot be started or an admin call keeps failing. */
export class ClusterError extends Error {
  /** Always `CLUSTER`: tells this error from node-tcp's and the checker's. */
  readonly code = 'CLUSTER' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ClusterError';
  }
}

/** One node: its id (the proxy address peers dial), the address it really listens on, its process. */
export interface NodeHandle {
  /** Position in {@link Cluster.nodes}, 0-based; logs and summaries call the node `n<index>`. */
  readonly index: number;
  /** Its Raft node id: the address of its proxy, which every peer dials (so peer traffic can be cut). */
  readonly id: string;
  /** `127.0.0.1:<port>` where the node really listens; clients dial it directly, bypassing the proxy. */
  readonly listen: string;
  /** Its data directory (`<dir>/data/n<i>`); removing it (wipe) makes the node start with an empty log. */
  dataDir: string;
  /** The running process, or `null` while the node is down (killed, crashed or stopped). */
  proc: ChildProcess | null;
  /** Stopped with SIGSTOP (alive but frozen) until resumed with SIGCONT. */
  paused: boolean;
  /** Set just before the tester kills or stops it, so its exit is not counted as a crash. */
  expectExit: boolean;
  /** Exits nobody asked for: `code`/`signal`, with the time. */
  readonly crashes: { code: number | null; signal: string | null; at: string }[];
  /** Processes started for this node so far (1 after the cluster is up; each restart adds one). */
  starts: number;
  /** The process's stdout, appended to `<dir>/logs/n<i>.out.log` across restarts (a `---` line marks each start). */
  stdout: WriteStream;
  /** The process's stderr, appended to `<dir>/logs/n<i>.err.log` (with `---` lines at each start and exit). */
  stderr: WriteStream;
}

/** Options of {@link Cluster.start}. */
export interface ClusterOptions {
  /** Nodes to start: node 0 creates the cluster, the others join it with AddServer. */
  readonly nodes: number;
  /** Run directory: data in `<dir>/data/n<i>`, logs in `<dir>/logs/n<i>.{out,err}.log`. */
  readonly dir: string;
  /** Leader heartbeat interval in ms, passed to every node as `--heartbeat-ms`. Default: raft-kvs's (100). */
  readonly heartbeatMs?: number;
  /** Minimum election timeout in ms (`--election-ms`; an election waits [t, 2t)). Default: raft-kvs's (1000). */
  readonly electionMs?: number;
  /** Log a line per event (default: nothing). */
  readonly log?: (msg: string) => void;
  /**
   * Run with client authentication: every node gets `--credentials-file <dir>/credentials.json` naming this token
   * (role admin), and every admin call authenticates with it. Default: none (no authentication).
   */
  readonly token?: string;
}

/** A running cluster. */
export class Cluster {
  /** The proxies every peer link goes through (one per node): partitions are rules set on it. */
  readonly proxies = new ProxyNetwork();
  /** One handle per node, in index order (`nodes[i].index === i`); the list never changes, the processes do. */
  readonly nodes: NodeHandle[] = [];
  private readonly log: (msg: string) => void;

  private constructor(private readonly o: ClusterOptions) {
    this.log = o.log ?? (() => {});
  }

  /** Starts the processes and forms the cluster (CreateCluster on node 0, then AddServer for the others). */
  static async start(o: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(o);
    mkdirSync(join(o.dir, 'logs'), { recursive: true });
    if (o.token !== undefined) {
      // Only the token's hash goes to disk (as a server would keep it); the token stays in this process.
      const entry = { name: 'fault-tester', role: 'admin', sha256: hashToken(o.token) };
      writeFileSync(join(o.dir, 'credentials.json'), JSON.stringify({ tokens: [entry] }));
    }
    for (let i = 0; i < o.nodes; i++) {
      const listen = `127.0.0.1:${await freePort()}`;
      const id = await c.proxies.addProxy(listen);
      const node: NodeHandle = {
        index: i,
        id,
        listen,
        dataDir: join(o.dir, 'data', `n${i}`),
        proc: null,
        paused: false,
        expectExit: false,
        crashes: [],
        starts: 0,
        stdout: createWriteStream(join(o.dir, 'logs', `n${i}.out.log`), { flags: 'a' }),
        stderr: createWriteStream(join(o.dir, 'logs', `n${i}.err.log`), { flags: 'a' }),
      };
      c.nodes.push(node);
    }
    try {
      await Promise.all(c.nodes.map((n) => c.spawn(n)));
      await c.adminOn(c.nodes[0], 'CreateCluster', {}, 30_000);
      for (const n of c.nodes.slice(1)) await c.admin('AddServer', { addr: n.id, timeoutMs: 30_000 }, 60_000);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** Starts node `n`'s process and waits until it answers JSON-RPC. */
  async spawn(n: NodeHandle): Promise<void> {
    mkdirSync(n.dataDir, { recursive: true });
    const args = ['--import', 'tsx', KVS_CLI, 'serve', n.id, '--listen', n.listen, '--data', n.dataDir];
    if (this.o.heartbeatMs !== undefined) args.push('--heartbeat-ms', String(this.o.heartbeatMs));
    if (this.o.electionMs !== undefined) args.push('--election-ms', String(this.o.electionMs));
    if (this.o.token !== undefined) args.push('--credentials-file', join(this.o.dir, 'credentials.json'));
    const proc = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'tsconfig.base.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    n.proc = proc;
    n.paused = false;
    n.expectExit = false;
    n.starts++;
    const stamp = () => new Date().toISOString();
    n.stdout.write(`--- ${stamp()} start #${n.starts} pid ${proc.pid}\n`);
    n.stderr.write(`--- ${stamp()} start #${n.starts} pid ${proc.pid}\n`);
    proc.stdout?.pipe(n.stdout, { end: false });
    proc.stderr?.pipe(n.stderr, { end: false });
    proc.on('exit', (code, signal) => {
      n.stderr.write(`--- ${stamp()} exit code ${code} signal ${signal}\n`);
      if (n.proc === proc) n.proc = null;
      if (!n.expectExit) {
        n.crashes.push({ code, signal, at: stamp() });
        this.log(`node n${n.index} exited on its own (code ${code}, signal ${signal})`);
      }
    });
    await this.waitAnswering(n, 60_000);
  }

  private async waitAnswering(n: NodeHandle, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (n.proc === null) throw new ClusterError(`node n${n.index} exited while starting`);
      try {
        await this.adminOn(n, 'GetServerState', {}, 2_000);
        return;
      } catch {
        await sleep(200);
      }
    }
    throw new ClusterError(`node n${n.index} did not answer within ${timeoutMs} ms`);
  }

  /** SIGKILL (a crash the tester caused). */
  kill(n: NodeHandle): void {
    if (n.proc === null) return;
    n.expectExit = true;
    if (n.paused) n.proc.kill('SIGCONT');
    n.proc.kill('SIGKILL');
    n.paused = false;
  }

  /** Waits until node `n`'s process has exited. */
  async waitExit(n: NodeHandle, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (n.proc !== null && Date.now() < deadline) await sleep(50);
    if (n.proc !== null) throw new ClusterError(`node n${n.index} did not exit`);
  }

  /** SIGSTOP: the process freezes (a long GC pause, a VM stall). */
  pause(n: NodeHandle): void {
    if (n.proc === null || n.paused) return;
    n.proc.kill('SIGSTOP');
    n.paused = true;
  }

  /** SIGCONT. */
  resume(n: NodeHandle): void {
    if (n.proc === null || !n.paused) return;
    n.proc.kill('SIGCONT');
    n.paused = false;
  }

  /** Deletes a stopped node's data directory (before it rejoins as a new member). */
  wipe(n: NodeHandle): void {
    if (n.proc !== null) throw new ClusterError('wipe needs a stopped node');
    rmSync(n.dataDir, { recursive: true, force: true });
  }

  /** One JSON-RPC call on node `n` (its real listen address, not through the proxy). */
  async adminOn<T = unknown>(n: NodeHandle, method: string, params: unknown, timeoutMs = 10_000): Promise<T> {
    const c = await RpcClient.connect(n.listen, {
      timeoutMs,
      connectTimeoutMs: Math.min(timeoutMs, 5_000),
      token: this.o.token,
    });
    try {
      return await c.request<T>(method, params);
    } finally {
      await c.close().catch(() => {});
    }
  }

  /** A call on any live, unpaused node (trying each in turn, repeatedly, until `timeoutMs`). */
  async admin<T = unknown>(method: string, params: unknown, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      for (const n of this.nodes) {
        if (n.proc === null || n.paused) continue;
        try {
          return await this.adminOn<T>(n, method, params, Math.max(1_000, Math.min(15_000, deadline - Date.now())));
        } catch (e) {
          last = e;
        }
      }
      await sleep(300);
    }
    throw new ClusterError(`${method} failed on every node for ${timeoutMs} ms: ${(last as Error)?.message}`);
  }

  /** The id of the node that some reachable node believes is leader, or null. */
  async leader(): Promise<string | null> {
    for (const n of this.nodes) {
      if (n.proc === null || n.paused) continue;
      try {
        const s = await this.adminOn<{ role: string; leader: string | null }>(n, 'GetServerState', {}, 2_000);
        if (s.role === 'leader') return n.id;
        if (s.leader) return s.leader;
      } catch {
        // try the next one
      }
    }
    return null;
  }

  /** The node with id `id`. */
  byId(id: string): NodeHandle | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  /** Stops every process (SIGCONT, then SIGTERM, then SIGKILL after 10 s) and the proxies. */
  async stop(): Promise<void> {
    for (const n of this.nodes) {
      if (n.proc === null) continue;
      n.expectExit = true;
      if (n.paused) n.proc.kill('SIGCONT');
      n.paused = false;
      n.proc.kill('SIGTERM');
    }
    const deadline = Date.now() + 10_000;
    while (this.nodes.some((n) => n.proc !== null) && Date.now() < deadline) await sleep(100);
    for (const n of this.nodes) n.proc?.kill('SIGKILL');
    while (this.nodes.some((n) => n.proc !== null) && Date.now() < deadline + 5_000) await sleep(100);
    await this.proxies.close();
    await Promise.all(
      this.nodes.flatMap((n) => [n.stdout, n.stderr]).map((s) => new Promise<void>((r) => s.end(() => r()))),
    );
  }
}
