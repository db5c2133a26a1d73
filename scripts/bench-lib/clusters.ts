/**
 * Starting and stopping the clusters the benchmarks compare (raft-kvs and etcd on loopback), shared by
 * `pnpm bench:cluster` and `pnpm bench:links`. Every child process is tracked by PID and stopped by PID; nothing
 * else is ever signalled.
 *
 * {@link clusterKit} binds the functions to one run's settings (data directory, raft-kvs flags, logger) and installs
 * SIGINT/SIGTERM handlers that stop this run's children and remove its data directories.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitAddress } from '../../packages/node-tcp/src/index.js';
import { freePorts, sleep, WaitTimeoutError, waitFor } from '../../packages/testkit/src/index.js';

/** The repository root (children run there). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The systems the benchmarks compare. */
export type ClusterSystem = 'raft-kvs' | 'etcd';

/** One child process of the run, with the log file its stdout and stderr go to. */
export interface Child {
  /** Human-readable name for messages. */
  readonly name: string;
  /** The process (stopped by its PID only). */
  readonly proc: ChildProcess;
  /** Its stdout + stderr. */
  readonly logPath: string;
  /** Set when the process has exited. */
  exited: boolean;
}

/** A running cluster. */
export interface Cluster {
  /** Which system. */
  readonly system: ClusterSystem;
  /** Number of members. */
  readonly size: number;
  /** Client addresses, `127.0.0.1:port`. */
  readonly servers: string[];
  /** The member processes, in member order. */
  readonly members: Child[];
  /** Profile directory when started with --cpu-prof. */
  readonly profileDir?: string;
}

/**
 * Where members take peer traffic when a proxy sits in front of each: member i listens for peers on `listen[i]` and
 * tells the others to dial `advertised[i]` (a proxy forwarding to `listen[i]`). raft-kvs has one port for peers and
 * clients, so its clients dial `listen[i]` directly; etcd's client ports are separate and direct anyway.
 */
export interface PeerPorts {
  /** Ports the members bind for peer traffic. */
  readonly listen: readonly number[];
  /** Ports the members advertise to their peers (the proxies'). */
  readonly advertised: readonly number[];
}

/** Settings of one benchmark run that the cluster functions read. */
export interface ClusterKitOptions {
  /** Parent of every member's data directory (created as needed; removed by cleanup unless `keep`). */
  readonly dataRoot: string;
  /** Keep data directories and logs after the run. */
  readonly keep: boolean;
  /** raft-kvs `--snapshot-entries`. */
  readonly snapshotEntries: number;
  /** Extra arguments for every `raft-kvs serve`. */
  readonly kvsArgs: readonly string[];
  /** Progress messages (stderr). */
  readonly log: (msg: string) => void;
}

/** The last `lines` lines of a log file, or `(no log)`. */
export function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export /** One JSON-RPC request on a fresh connection (cluster set-up only). */
function rpc(addr: string, method: string, params?: unknown, timeoutMs = 30_000): Promise<unknown> {
  const a = splitAddress(addr);
  if (a === null) return Promise.reject(new TypeError(`${method}: not a host:port address: ${addr}`));
  const { host, port } = a;
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, host);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${method} on ${addr}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      s.destroy();
      const msg = JSON.parse(buf.slice(0, nl)) as { result?: unknown; error?: { code: number; message: string } };
      if (msg.error) reject(new Error(`${method} on ${addr}: ${msg.error.code} ${msg.error.message}`));
      else resolve(msg.result);
    });
    s.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) })}\n`);
  });
}

/** The cluster functions of one run, bound to its settings; see {@link clusterKit}. */
export interface ClusterKit {
  /** Every child started and not yet stopped. */
  readonly children: readonly Child[];
  /** Starts `cmd` in the repository root with stdout and stderr appended to `logPath`, tracked for cleanup. */
  startChild(name: string, cmd: string, args: string[], logPath: string, env?: NodeJS.ProcessEnv): Child;
  /** SIGTERM to each (by PID), SIGKILL after 15 s; resolves when all have exited. */
  stopChildren(list: Child[]): Promise<void>;
  /** Runs the hooks from {@link ClusterKit.atCleanup}, stops every child, removes the data root (unless `keep`). */
  cleanup(): Promise<void>;
  /** Adds work for {@link ClusterKit.cleanup} (run first, in order), e.g. closing proxies. */
  atCleanup(hook: () => Promise<void> | void): void;
  /**
   * Polls `check` (its errors count as "not yet") until it holds; fails early when one of `logs`' processes exits,
   * and on a timeout names every process's log tail.
   */
  waitForNodes(what: string, check: () => Promise<boolean>, timeoutMs: number, logs: Child[]): Promise<void>;
  /** Starts an etcd cluster of `size` members and waits until each serves a linearizable read. */
  startEtcd(size: number, tag: string, options?: { peerPorts?: PeerPorts }): Promise<Cluster>;
  /** Starts a raft-kvs cluster (CreateCluster + AddServer) and waits until every member knows all voters and a leader. */
  startKvs(size: number, tag: string, options?: { profile?: boolean; peerPorts?: PeerPorts }): Promise<Cluster>;
}

/**
 * Binds the cluster functions to one run's settings and installs SIGINT/SIGTERM handlers that run
 * {@link ClusterKit.cleanup} and exit with status 130. Create one per process.
 */
export function clusterKit(o: ClusterKitOptions): ClusterKit {
  const { dataRoot, keep, snapshotEntries, kvsArgs, log } = o;
  const hooks: (() => Promise<void> | void)[] = [];
  const atCleanup = (hook: () => Promise<void> | void): void => {
    hooks.push(hook);
  };
  const children: Child[] = [];

  function startChild(name: string, cmd: string, args: string[], logPath: string, env?: NodeJS.ProcessEnv): Child {
    const fd = openSync(logPath, 'a');
    const proc = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const child: Child = { name, proc, logPath, exited: false };
    proc.on('exit', () => {
      child.exited = true;
    });
    children.push(child);
    return child;
  }

  async function stopChildren(list: Child[]): Promise<void> {
    for (const c of list) if (!c.exited && c.proc.pid) process.kill(c.proc.pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (list.some((c) => !c.exited) && Date.now() < deadline) await sleep(50);
    for (const c of list) {
      if (!c.exited && c.proc.pid) {
        log(`${c.name} (pid ${c.proc.pid}) ignored SIGTERM for 15 s: SIGKILL`);
        process.kill(c.proc.pid, 'SIGKILL');
      }
    }
    while (list.some((c) => !c.exited)) await sleep(20);
    for (const c of list) children.splice(children.indexOf(c), 1);
  }

  // One cleanup per run, shared: a signal during the normal end's cleanup waits for it instead of exiting mid-way.
  let cleaning: Promise<void> | null = null;
  function cleanup(): Promise<void> {
    cleaning ??= (async () => {
      for (const hook of hooks) {
        try {
          await hook();
        } catch (e) {
          log(`cleanup: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      await stopChildren([...children]);
      if (!keep) rmSync(dataRoot, { recursive: true, force: true });
    })();
    return cleaning;
  }
  // `on`, not `once`: Ctrl-C signals the whole process group, and tsx (the parent) forwards the same SIGINT again; with
  // no handler left, that second SIGINT would kill this process before its cleanup removed the data directories.
  let signalled = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (signalled) return;
      signalled = true;
      log(`${sig}: stopping everything this run started`);
      cleanup().finally(() => process.exit(130));
    });
  }

  /**
   * Polls `check` (its errors count as "not yet") until it holds; fails early when one of `logs`' processes exits, and
   * on a timeout names every process's log tail.
   */
  async function waitForNodes(
    what: string,
    check: () => Promise<boolean>,
    timeoutMs: number,
    logs: Child[],
  ): Promise<void> {
    try {
      await waitFor(
        async () => {
          if (await check().catch(() => false)) return true;
          const dead = logs.find((c) => c.exited);
          if (dead) throw new Error(`${dead.name} exited while waiting for ${what}:\n${tail(dead.logPath)}`);
          return false;
        },
        timeoutMs,
        what,
        { intervalMs: 100 },
      );
    } catch (e) {
      if (!(e instanceof WaitTimeoutError)) throw e;
      throw new Error(`${e.message}\n${logs.map((c) => `--- ${c.name}\n${tail(c.logPath)}`).join('\n')}`);
    }
  }

  async function startEtcd(size: number, tag: string, options: { peerPorts?: PeerPorts } = {}): Promise<Cluster> {
    const ports = await freePorts(size * 2);
    const names = Array.from({ length: size }, (_, i) => `m${i}`);
    const pp = options.peerPorts;
    const peer = (i: number) => `http://127.0.0.1:${pp ? pp.listen[i] : ports[size + i]}`;
    // What the other members dial: the proxy in front of member i when there is one.
    const advertisedPeer = (i: number) => (pp ? `http://127.0.0.1:${pp.advertised[i]}` : peer(i));
    const client = (i: number) => `http://127.0.0.1:${ports[i]}`;
    const initial = names.map((n, i) => `${n}=${advertisedPeer(i)}`).join(',');
    const members: Child[] = [];
    for (let i = 0; i < size; i++) {
      const dir = join(dataRoot, `etcd-${tag}-${i}`);
      mkdirSync(dir, { recursive: true });
      members.push(
        startChild(
          `etcd ${names[i]}`,
          'etcd',
          [
            `--name=${names[i]}`,
            `--data-dir=${join(dir, 'data')}`,
            `--listen-client-urls=${client(i)}`,
            `--advertise-client-urls=${client(i)}`,
            `--listen-peer-urls=${peer(i)}`,
            `--initial-advertise-peer-urls=${advertisedPeer(i)}`,
            `--initial-cluster=${initial}`,
            '--initial-cluster-state=new',
            `--initial-cluster-token=bench-${process.pid}-${tag}`,
            '--logger=zap',
            '--log-level=warn',
            '--log-outputs=stderr',
          ],
          join(dir, 'etcd.log'),
        ),
      );
    }
    const servers = ports.slice(0, size).map((p) => `127.0.0.1:${p}`);
    // Ready = every member serves a linearizable range (which needs a leader and a quorum).
    await waitForNodes(
      `etcd ${tag} to elect a leader`,
      async () => {
        for (const s of servers) {
          const res = await fetch(`http://${s}/v3/kv/range`, {
            method: 'POST',
            body: '{"key":"AA=="}',
            signal: AbortSignal.timeout(2000),
          });
          if (res.status !== 200) return false;
          await res.text();
        }
        return true;
      },
      60_000,
      members,
    );
    return { system: 'etcd', size, servers, members };
  }

  async function startKvs(
    size: number,
    tag: string,
    options: { profile?: boolean; peerPorts?: PeerPorts } = {},
  ): Promise<Cluster> {
    const pp = options.peerPorts;
    const ports = pp ? [...pp.listen] : await freePorts(size);
    const servers = ports.map((p) => `127.0.0.1:${p}`);
    // A node's id is the address its peers dial (its proxy's, when there is one); it binds `servers[i]`.
    const ids = pp ? pp.advertised.map((p) => `127.0.0.1:${p}`) : servers;
    const members: Child[] = [];
    const profileDir = options.profile ? join(dataRoot, `profile-${tag}`) : undefined;
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    for (let i = 0; i < size; i++) {
      const dir = join(dataRoot, `kvs-${tag}-${i}`);
      mkdirSync(dir, { recursive: true });
      const nodeFlags = profileDir
        ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=node-${i}.cpuprofile`]
        : [];
      members.push(
        startChild(
          `raft-kvs ${servers[i]}`,
          process.execPath,
          [
            ...nodeFlags,
            // The built server, as `npm install @raft/kvs-app` runs it (the root bench scripts build it first).
            'packages/kvs-app/bin/raft-kvs.js',
            'serve',
            ids[i],
            ...(pp ? ['--listen', servers[i]] : []),
            '--data',
            join(dir, 'data'),
            '--snapshot-entries',
            String(snapshotEntries),
            '--quiet',
            ...kvsArgs,
          ],
          join(dir, 'kvs.log'),
          { TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json') },
        ),
      );
    }
    await waitForNodes(
      `raft-kvs ${tag} to listen`,
      async () => {
        for (const s of servers) await rpc(s, 'GetServerState', undefined, 2000);
        return true;
      },
      60_000,
      members,
    );
    // raftpico's README: CreateCluster on the first node, then AddServer each other node through it.
    await rpc(servers[0], 'CreateCluster');
    for (const id of ids.slice(1)) await rpc(servers[0], 'AddServer', { addr: id }, 60_000);
    await waitForNodes(
      `raft-kvs ${tag} members to agree`,
      async () => {
        for (const s of servers) {
          const st = (await rpc(s, 'GetServerState', undefined, 2000)) as { voters: string[]; leader: string | null };
          if (st.voters.length !== size || st.leader === null) return false;
        }
        return true;
      },
      60_000,
      members,
    );
    return { system: 'raft-kvs', size, servers, members, profileDir };
  }

  return { children, startChild, stopChildren, cleanup, atCleanup, waitForNodes, startEtcd, startKvs };
}
