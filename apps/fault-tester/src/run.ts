/**
 * One fault-injection run: start the cluster, run clients and the nemesis, heal, wait for convergence, check.
 *
 * @packageDocumentation
 */

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CheckResult,
  canonicalJson,
  checkHistory,
  formatResult,
  type HistoryEvent,
  type JsonValue,
  pairOperations,
  writeHistoryFile,
} from '@raft/linearizability';
import { Prng } from '@raft/sim';
import { Recorder, runWorkers, type WorkerStats } from './clients.js';
import { Cluster, type NodeHandle } from './cluster.js';
import { type FaultKind, type FaultRecord, runNemesis } from './nemesis.js';

/** Options of {@link runFaultTest}. */
export interface RunOptions {
  /** 3 or 5. */
  readonly nodes: number;
  /** Seconds of faults (clients run during them, plus a few seconds before and after). */
  readonly faultSeconds: number;
  /**
   * Seeds the nemesis (kinds, targets, durations) and, derived from it, the clients' choices. The same seed repeats
   * the choices, not the timing.
   */
  readonly seed: number;
  /** Run directory (data, logs, history.jsonl, summary.json). */
  readonly dir: string;
  /** Concurrent client workers, each one history process. Default 5. */
  readonly workers?: number;
  /** Keys `k0` .. `k<keys-1>` the clients use: fewer keys, more conflicting operations per key. Default 5. */
  readonly keys?: number;
  /** Server-side timeout of each client operation in ms (see {@link WorkerOptions.opTimeoutMs}). Default 3000. */
  readonly opTimeoutMs?: number;
  /** Cap on client operations over the whole run, so it is bounded in size as well as time. Default 200 000. */
  readonly maxOps?: number;
  /** Fault kinds to inject. Default: all of {@link FAULTS}. */
  readonly faults?: readonly FaultKind[];
  /** Progress lines (default: none). */
  readonly log?: (msg: string) => void;
  /** Keep data directories and logs even when the run passes. Default false. */
  readonly keepAll?: boolean;
  /** `LocalQuery` makes client reads deliberately non-linearizable (a self-test of the whole pipeline). */
  readonly readKind?: 'Query' | 'LocalQuery';
  /** Run the cluster with client authentication, every client using this token (see {@link ClusterOptions.token}). */
  readonly token?: string;
}

/** What a run found. `passed` is true only when every check passed and the checker said `linearizable`. */
export interface RunSummary {
  /** The seed of the run; `replay` reruns with it. */
  readonly seed: number;
  /** Number of nodes in the cluster ({@link RunOptions.nodes}). */
  readonly nodes: number;
  /** Seconds of fault injection asked for ({@link RunOptions.faultSeconds}). */
  readonly faultSeconds: number;
  /** The run directory; `data/` and `logs/` in it are removed when the run passes, unless `keepAll`. */
  readonly dir: string;
  /** Wall-clock seconds of the whole run, from starting the cluster to writing the summary (checking included). */
  readonly durationSeconds: number;
  /**
   * Operations in the history (final reads included): `total`, per status, and `byF` keyed `<f> <status>`;
   * `retried`: commands whose first attempt had an unknown outcome and were retried with the same `(clientId, seq)`,
   * `resolvedByRetry`: how many of those ended `ok` (see `WorkerOptions.retryUnknownMs`).
   */
  readonly ops: {
    total: number;
    ok: number;
    fail: number;
    info: number;
    byF: Record<string, number>;
    retried: number;
    resolvedByRetry: number;
  };
  /** The faults injected: `total`, counts `byKind`, how many hit a `problem`, and the full `list`. */
  readonly faults: { total: number; byKind: Record<string, number>; problems: number; list: FaultRecord[] };
  /** Proxy counts: `connections` accepted, `identified` as peers from their handshake, `resets` by partition rules. */
  readonly proxy: { connections: number; identified: number; resets: number };
  /**
   * The checker's `verdict` (`not checked` if the run aborted first), its `elapsedMs`, the formatted `report`, and a
   * `note` when the verdict comes from a re-check that ignores put `prev` values.
   */
  readonly linearizability: { verdict: string; note?: string; elapsedMs: number; report: string };
  /** One line per key whose final value no write that could be the last one explains: an acknowledged write lost. */
  readonly lostAcknowledgedWrites: string[];
  /**
   * Whether, after healing, all nodes reported one applied index (the leader's commit index), one state hash and one
   * set of voters within 90 s, and then held the same data; `detail` says what was reached or what differed.
   */
  readonly convergence: {
    converged: boolean;
    detail: string;
    appliedIndex?: number;
    stateHash?: string;
    /** Each node's `counters.leaderChanges` at the end (since its last start): evidence the faults bit. */
    leaderChanges?: number[];
  };
  /** One line per exit no fault asked for (`n<i> exited on its own at <time> ...`); any fails the run. */
  readonly crashes: string[];
  /** What went wrong in the tester's own steps (healing, final reads, stopping, an aborted run); any fails the run. */
  readonly problems: string[];
  /**
   * True only when the checker said `linearizable`, no acknowledged write was lost, the nodes converged, none crashed
   * and `problems` is empty.
   */
  readonly passed: boolean;
  /** Shell command rerunning the same seed, node count and fault time (timing differs: a failure may not recur). */
  readonly replay: string;
}

interface NodeState {
  role: string;
  leader: string | null;
  members: string[];
  voters: string[];
  commitIndex: number;
  appliedIndex: number;
  stateHash?: string;
  counters?: { leaderChanges?: number };
}

/** Floats in [0, 1) from the simulator's seeded generator: the same seed gives the same choices of faults and ops. */
function stream(seed: number): () => number {
  const rng = new Prng(seed);
  return () => rng.next();
}

/** Runs one test. Never throws for a failing cluster: failures are in the summary (`passed: false`). */
export async function runFaultTest(o: RunOptions): Promise<RunSummary> {
  const log = o.log ?? (() => {});
  const started = Date.now();
  mkdirSync(o.dir, { recursive: true });
  const rand = stream(o.seed);
  const problems: string[] = [];
  log(`[run] seed ${o.seed}, ${o.nodes} nodes, ${o.faultSeconds}s of faults, dir ${o.dir}`);
  const cluster = await Cluster.start({ nodes: o.nodes, dir: o.dir, log, token: o.token });
  log(`[run] cluster up: ${cluster.nodes.map((n) => `n${n.index}=${n.id} (listen ${n.listen})`).join(', ')}`);
  const recorder = new Recorder();
  let faults: FaultRecord[] = [];
  let stopClients = false;
  const keys = o.keys ?? 5;
  const liveTargets = () => cluster.nodes.filter((n) => n.proc !== null && !n.paused).map((n) => n.listen);
  let lin: CheckResult | undefined;
  let linNote: string | undefined;
  const lost: string[] = [];
  let convergence: RunSummary['convergence'] = { converged: false, detail: 'not reached' };
  let workerStats: WorkerStats = { unknownRetried: 0, resolvedByRetry: 0 };
  try {
    const clients = runWorkers({
      targets: liveTargets,
      workers: o.workers ?? 5,
      keys,
      opTimeoutMs: o.opTimeoutMs ?? 3_000,
      stop: () => stopClients,
      rand: stream(o.seed ^ 0x5bd1e995),
      recorder,
      maxOps: o.maxOps ?? 200_000,
      token: o.token,
      ...(o.readKind ? { readKind: o.readKind } : {}),
    });
    await sleep(2_000); // a quiet start: some history before the first fault
    const nemesisStart = Date.now();
    faults = await runNemesis({
      cluster,
      rand,
      until: nemesisStart + o.faultSeconds * 1000,
      startedAt: started,
      ...(o.faults ? { kinds: o.faults } : {}),
      log,
    });
    await heal(cluster, problems, log);
    await sleep(3_000); // clients see the healed cluster too
    stopClients = true;
    workerStats = await clients;
    log(`[run] clients stopped after ${recorder.events.length} events`);

    convergence = await waitConvergence(cluster, 90_000);
    log(`[run] convergence: ${convergence.detail}`);
    // Final reads through the log, recorded in the history: they pin down each key's final value.
    const finalValues = new Map<string, JsonValue>();
    for (let k = 0; k < keys; k++) {
      const key = `k${k}`;
      recorder.record({ process: 'final', type: 'invoke', f: 'get', key });
      try {
        const v = await cluster.admin<JsonValue>(
          'Apply',
          { kind: 'Query', input: { Get: key }, timeoutMs: 10_000 },
          30_000,
        );
        recorder.record({ process: 'final', type: 'ok', f: 'get', key, value: v });
        finalValues.set(key, v);
      } catch (e) {
        recorder.record({ process: 'final', type: 'fail', f: 'get', key, error: (e as Error).message });
        problems.push(`final read of ${key} failed: ${(e as Error).message}`);
      }
    }
    if (convergence.converged) {
      const diff = await compareNodeData(cluster, keys);
      if (diff) {
        convergence = { ...convergence, converged: false, detail: diff };
      }
    }
    lost.push(...lostWrites(recorder.events, finalValues));

    writeHistoryFile(join(o.dir, 'history.jsonl'), recorder.events);
    log(`[run] checking ${recorder.events.length} events for linearizability`);
    lin = checkHistory(recorder.events, { timeLimitMs: 120_000 });
    if (lin.verdict === 'unknown') {
      // Prev values make info-heavy histories hard; without them the check is weaker but often decides.
      const noPrev = recorder.events.map(({ prev: _p, ...e }) => e as HistoryEvent);
      const again = checkHistory(noPrev, { timeLimitMs: 120_000 });
      if (again.verdict !== 'unknown') {
        linNote = `full check exceeded its budget; re-checked ignoring put prev values: ${again.verdict}`;
        lin = again;
      }
    }
  } catch (e) {
    problems.push(`run aborted: ${(e as Error).stack ?? e}`);
  } finally {
    stopClients = true;
    await cluster.stop().catch((e) => problems.push(`stopping the cluster: ${(e as Error).message}`));
  }

  const crashes = cluster.nodes.flatMap((n) =>
    n.crashes.map((c) => `n${n.index} exited on its own at ${c.at} (code ${c.code}, signal ${c.signal})`),
  );
  const ops = pairOperations(recorder.events);
  const byF: Record<string, number> = {};
  for (const op of ops) byF[`${op.f} ${op.status}`] = (byF[`${op.f} ${op.status}`] ?? 0) + 1;
  const byKind: Record<string, number> = {};
  for (const f of faults) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
  const verdict = lin?.verdict ?? 'not checked';
  const passed =
    verdict === 'linearizable' &&
    lost.length === 0 &&
    convergence.converged &&
    crashes.length === 0 &&
    problems.length === 0;
  const summary: RunSummary = {
    seed: o.seed,
    nodes: o.nodes,
    faultSeconds: o.faultSeconds,
    dir: o.dir,
    durationSeconds: (Date.now() - started) / 1000,
    ops: {
      total: ops.length,
      ok: ops.filter((x) => x.status === 'ok').length,
      fail: ops.filter((x) => x.status === 'fail').length,
      info: ops.filter((x) => x.status === 'info').length,
      byF,
      retried: workerStats.unknownRetried,
      resolvedByRetry: workerStats.resolvedByRetry,
    },
    faults: { total: faults.length, byKind, problems: faults.filter((f) => f.problem).length, list: faults },
    proxy: { ...cluster.proxies.stats },
    linearizability: {
      verdict,
      ...(linNote ? { note: linNote } : {}),
      elapsedMs: Math.round(lin?.elapsedMs ?? 0),
      report: lin ? formatResult(lin) : 'not checked',
    },
    lostAcknowledgedWrites: lost,
    convergence,
    crashes,
    problems,
    passed,
    replay: `RAFT_FAULT_SEED=${o.seed} RAFT_FAULT_NODES=${o.nodes} RAFT_FAULT_SECONDS=${o.faultSeconds} pnpm --filter @raft/fault-tester start`,
  };
  writeFileSync(join(o.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  if (passed && !o.keepAll) {
    rmSync(join(o.dir, 'data'), { recursive: true, force: true });
    rmSync(join(o.dir, 'logs'), { recursive: true, force: true });
  }
  return summary;
}

/** Lifts every fault: proxies open, paused nodes resumed, dead nodes restarted, every node a member again. */
async function heal(cluster: Cluster, problems: string[], log: (m: string) => void): Promise<void> {
  cluster.proxies.healAll();
  for (const n of cluster.nodes) cluster.resume(n);
  for (const n of cluster.nodes) {
    if (n.proc === null) {
      try {
        await cluster.spawn(n);
      } catch (e) {
        problems.push(`restarting n${n.index} while healing: ${(e as Error).message}`);
      }
    }
  }
  // A membership change interrupted by a fault may have left a node out: add it back (wiped, as a new member).
  try {
    const s = await cluster.admin<NodeState>('GetServerState', {}, 30_000);
    const leaderState = s.leader
      ? await cluster.adminOn<NodeState>(cluster.byId(s.leader) ?? cluster.nodes[0], 'GetServerState', {}, 10_000)
      : s;
    for (const n of cluster.nodes) {
      if (leaderState.voters.includes(n.id)) continue;
      log(`[heal] n${n.index} is not a voter (${leaderState.voters.join(', ')}): re-adding it`);
      if (leaderState.members.includes(n.id)) {
        await cluster.admin('RemoveServer', { addr: n.id, timeoutMs: 20_000 }, 40_000).catch(() => {});
      }
      cluster.kill(n);
      await cluster.waitExit(n);
      cluster.wipe(n);
      await cluster.spawn(n);
      await cluster.admin('AddServer', { addr: n.id, timeoutMs: 30_000 }, 60_000);
    }
  } catch (e) {
    problems.push(`restoring membership while healing: ${(e as Error).message}`);
  }
}

/** Polls every node until all report the same applied index and state hash (and the leader's commit index). */
async function waitConvergence(cluster: Cluster, timeoutMs: number): Promise<RunSummary['convergence']> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const states = await Promise.all(
        cluster.nodes.map((n) => cluster.adminOn<NodeState>(n, 'GetServerState', { stateHash: true }, 5_000)),
      );
      const applied = new Set(states.map((s) => s.appliedIndex));
      const hashes = new Set(states.map((s) => s.stateHash));
      const leader = states.find((s) => s.role === 'leader');
      const members = new Set(states.map((s) => [...s.voters].sort().join(',')));
      last = `applied ${[...applied].join('/')}, hashes ${hashes.size}, leader ${leader ? 'yes' : 'no'}, member views ${members.size}`;
      if (
        leader &&
        applied.size === 1 &&
        hashes.size === 1 &&
        members.size === 1 &&
        leader.commitIndex === states[0].appliedIndex
      ) {
        return {
          converged: true,
          detail: `all ${states.length} nodes at applied index ${states[0].appliedIndex} with state hash ${states[0].stateHash}`,
          appliedIndex: states[0].appliedIndex,
          ...(states[0].stateHash ? { stateHash: states[0].stateHash } : {}),
          leaderChanges: states.map((s) => s.counters?.leaderChanges ?? 0),
        };
      }
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(500);
  }
  return { converged: false, detail: `no convergence within ${timeoutMs} ms: ${last}` };
}

/** Compares every node's local data (List and each value); returns a description of the first difference. */
async function compareNodeData(cluster: Cluster, keys: number): Promise<string | undefined> {
  const dump = async (n: NodeHandle) => {
    const list = await cluster.adminOn<string[]>(n, 'Apply', { kind: 'LocalQuery', input: 'List' }, 10_000);
    const all = [...new Set([...list, ...Array.from({ length: keys }, (_, k) => `k${k}`)])].sort();
    const values: Record<string, JsonValue> = {};
    for (const key of all) {
      values[key] = await cluster.adminOn<JsonValue>(n, 'Apply', { kind: 'LocalQuery', input: { Get: key } }, 10_000);
    }
    return canonicalJson({ list, values } as unknown as JsonValue);
  };
  const dumps = await Promise.all(cluster.nodes.map(dump));
  for (let i = 1; i < dumps.length; i++) {
    if (dumps[i] !== dumps[0])
      return `n${i}'s data differs from n0's: ${dumps[i].slice(0, 300)} vs ${dumps[0].slice(0, 300)}`;
  }
  return undefined;
}

/**
 * Acknowledged writes the final state contradicts. For each key, the final value must have been written by a
 * write that could be the last one: an ok or info put / applied-or-unknown cas that no acknowledged write
 * strictly follows in real time. (With no acknowledged write at all, absent is allowed too.)
 */
export function lostWrites(events: readonly HistoryEvent[], finalValues: ReadonlyMap<string, JsonValue>): string[] {
  const ops = pairOperations(events).filter((o) => o.process !== 'final');
  const out: string[] = [];
  for (const [key, final] of finalValues) {
    const writes = ops.filter(
      (o) => o.key === key && (o.f === 'put' || o.f === 'cas' || o.f === 'delete') && o.status !== 'fail',
    );
    const acked = writes.filter((o) => o.status === 'ok' && !(o.f === 'cas' && o.applied === false));
    const candidates = writes.filter(
      (w) => !(w.f === 'cas' && w.status === 'ok' && w.applied === false) && !acked.some((a) => a.call > w.ret),
    );
    const allowed = new Set(candidates.map((w) => canonicalJson(w.f === 'delete' ? null : w.value)));
    if (acked.length === 0) allowed.add('null');
    if (!allowed.has(canonicalJson(final))) {
      const last = acked.reduce<(typeof acked)[number] | undefined>(
        (m, a) => (m === undefined || a.ret > m.ret ? a : m),
        undefined,
      );
      out.push(
        `${key}: final value ${canonicalJson(final)} was not written by any write that could be last; the last acknowledged write was ${last ? `${last.f} ${canonicalJson(last.value)} (process ${last.process})` : 'none'}`,
      );
    }
  }
  return out;
}
