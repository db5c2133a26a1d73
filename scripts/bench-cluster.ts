/**
 * `pnpm bench:cluster`: raft-kvs and etcd side by side, on this machine, in the same run.
 *
 * Starts a 3-member etcd cluster and a 3-node raft-kvs cluster on loopback (each member on its own data directory,
 * fsync on every acknowledged write), drives both with the same workload from @raft/loadgen at concurrency 1, 64 and
 * 1,000 (Put, linearizable Get; etcd through its native gRPC API, and at C=64 and 1,000 also through its HTTP/JSON
 * gateway), measures the disk's raw fdatasync rate, repeats the C=1,000 runs on 5-node clusters and with 1 KiB /
 * 64 KiB values, and records each raft-kvs node's resident memory during a long Put run with auto-snapshot on.
 * Writes docs/benchmarks.md (between the bench:cluster markers), docs/bench-cluster.svg and the headline ratio line
 * of README.md (between the bench:cluster-headline markers).
 * Stops every process it started, by PID, and removes its data directories.
 *
 *   pnpm bench:cluster                 # full run (1,000,000 Puts for the memory run)
 *   pnpm bench:cluster --quick         # a few minutes: smaller counts
 *   pnpm bench:cluster --help          # every option
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  cpuModel,
  cpuSeconds,
  EtcdGrpcTransport,
  type LoadReport,
  measureFsyncRate,
  renderBarChart,
  replaceRegion,
  residentBytes,
  runLoad,
  type WorkloadKind,
} from '../apps/loadgen/src/index.js';
import { type Cluster, clusterKit, rpc } from './bench-lib/clusters.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const HELP = `usage: pnpm bench:cluster [options]

  --quick               small counts (a few minutes); default is the full run
  --memory-puts N       Puts in the long memory run (default 1000000; --quick: 100000)
  --snapshot-entries N  raft-kvs auto-snapshot interval for every run (default 100000)
  --only kvs|etcd       run one system only (no ratios)
  --skip-scale          skip the 5-node and payload runs
  --skip-memory         skip the long memory run
  --profile             also run raft-kvs with --cpu-prof at C=1000 and summarise where its nodes spend CPU
  --dir DIR             where the data directories go (default .raft-data/bench-cluster-<pid>; same disk as the repo)
  --no-write            print results only; leave docs/ and README.md untouched
  --kvs-args="ARGS"     extra arguments for every \`raft-kvs serve\` (diagnosis, e.g. "--unsafe-no-fsync"); they are
                        printed in the results
  --workloads LIST      only these main-table workloads (default command,query; also local, mix)
  --keep                keep data directories and logs
  -h, --help`;

// ---------------------------------------------------------------------------------------------------------------
// Options

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'memory-puts': { type: 'string' },
    'snapshot-entries': { type: 'string', default: '100000' },
    only: { type: 'string' },
    'skip-scale': { type: 'boolean', default: false },
    'skip-memory': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    dir: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'kvs-args': { type: 'string', default: '' },
    workloads: { type: 'string', default: 'command,query' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const quick = opt.quick === true;
const positiveInt = (name: string, text: string | undefined, fallback: number): number => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench:cluster: --${name} must be a positive integer\n${HELP}`);
    process.exit(2);
  }
  return n;
};
const memoryPuts = positiveInt('memory-puts', opt['memory-puts'], quick ? 100_000 : 1_000_000);
const snapshotEntries = positiveInt('snapshot-entries', opt['snapshot-entries'], 100_000);
if (opt.only !== undefined && opt.only !== 'kvs' && opt.only !== 'etcd') {
  console.error(`bench:cluster: --only must be kvs or etcd\n${HELP}`);
  process.exit(2);
}
type System = 'raft-kvs' | 'etcd';
const SYSTEMS: System[] = opt.only === 'kvs' ? ['raft-kvs'] : opt.only === 'etcd' ? ['etcd'] : ['raft-kvs', 'etcd'];

/** Measured requests per run by concurrency: enough for stable percentiles, small enough to finish. */
const COUNTS: Record<number, number> = quick
  ? { 1: 300, 64: 4_000, 1000: 20_000 }
  : { 1: 2_000, 64: 30_000, 1000: 100_000 };
const CONCURRENCIES = [1, 64, 1000];
const PAYLOADS = [1024, 65536];
const payloadCount = (size: number): number => (size >= 65536 ? (quick ? 600 : 4_000) : quick ? 4_000 : 30_000);
const RUN_LIMIT_S = quick ? 120 : 300;

const kvsArgs = (opt['kvs-args'] ?? '').split(/\s+/).filter(Boolean);
const mainWorkloads = (opt.workloads ?? '').split(',').filter(Boolean) as WorkloadKind[];
for (const w of mainWorkloads) {
  if (!['command', 'query', 'local', 'mix'].includes(w)) {
    console.error(`bench:cluster: unknown workload "${w}" in --workloads\n${HELP}`);
    process.exit(2);
  }
}
const dataRoot = opt.dir ?? join(ROOT, '.raft-data', `bench-cluster-${process.pid}`);
const log = (msg: string) => console.error(`[bench:cluster] ${msg}`);

// ---------------------------------------------------------------------------------------------------------------
// Processes and clusters (scripts/bench-lib/clusters.ts): every child is tracked by PID and stopped by PID.

const { stopChildren, cleanup, startEtcd, startKvs } = clusterKit({
  dataRoot,
  keep: opt.keep === true,
  snapshotEntries,
  kvsArgs,
  log,
});

const startCluster = (system: System, size: number, tag: string): Promise<Cluster> =>
  system === 'etcd' ? startEtcd(size, tag) : startKvs(size, tag);

// ---------------------------------------------------------------------------------------------------------------
// Measuring

/**
 * What a row of results measured: raft-kvs, etcd through its native gRPC API (`etcd`, the headline) or etcd through
 * its HTTP/JSON gateway (`etcd-gateway`, a second table).
 */
type Series = System | 'etcd-gateway';
const SERIES_LABEL: Record<Series, string> = {
  'raft-kvs': 'raft-kvs',
  etcd: 'etcd gRPC',
  'etcd-gateway': 'etcd gateway',
};
/** How etcd is driven: its gRPC API (headline) or its HTTP/JSON gateway. */
type EtcdVia = 'grpc' | 'gateway';

/** HTTP/2 connections the gRPC client opens against `members` members at concurrency `c` (its default cap). */
const grpcConnections = (members: number, c: number): number =>
  new EtcdGrpcTransport({
    servers: Array.from({ length: members }, (_, i) => ({ host: '127.0.0.1', port: i + 1 })),
    slots: c,
  }).connectionCount;

interface Result {
  readonly system: System;
  /** {@link Series}: the system, and for etcd which API the client used. */
  readonly series: Series;
  readonly nodes: number;
  readonly workload: WorkloadKind;
  readonly concurrency: number;
  readonly valueSize: number;
  readonly report: LoadReport;
  /** CPU used by each member during the run, as a percentage of one core. */
  readonly serverCpuPct: number[];
  /** CPU time of all members together per successful request, in microseconds: less sensitive to background load. */
  readonly cpuMicrosPerOp: number;
  readonly clientCpuPct: number;
  /** The load generator's CPU time per successful request, in microseconds (its cost to the shared machine). */
  readonly clientMicrosPerOp: number;
  /** raft-kvs only: log entries per append batch on the leader (how well proposals are grouped per fsync). */
  readonly leaderEntriesPerAppend?: number;
}
const results: Result[] = [];

async function measure(
  cluster: Cluster,
  workload: WorkloadKind,
  concurrency: number,
  count: number,
  valueSize = 0,
  via: EtcdVia = 'grpc',
) {
  const pids = cluster.members.map((m) => m.proc.pid!);
  const before = cluster.system === 'raft-kvs' ? await leaderCounters(cluster) : null;
  const cpu0 = pids.map((p) => cpuSeconds(p) ?? 0);
  const t0 = performance.now();
  const series: Series = cluster.system === 'etcd' && via === 'gateway' ? 'etcd-gateway' : cluster.system;
  const label = `${SERIES_LABEL[series]} ${cluster.size}n ${workload}${valueSize ? ` ${valueSize}B` : ''} C=${concurrency}`;
  const report = await runLoad({
    target: series === 'raft-kvs' ? 'jsonrpc' : series === 'etcd' ? 'etcd-grpc' : 'etcd-gateway',
    servers: cluster.servers,
    workload,
    count,
    concurrency,
    warmup: Math.min(Math.max(concurrency * 2, 200), Math.ceil(count / 10)),
    valueSize,
    maxSeconds: RUN_LIMIT_S,
    label,
  });
  const wall = (performance.now() - t0) / 1000;
  const serverCpuPct = pids.map((p, i) => (((cpuSeconds(p) ?? 0) - cpu0[i]) / wall) * 100);
  const after = before ? await leaderCounters(cluster) : null;
  const leaderEntriesPerAppend =
    before && after && before.leader === after.leader && after.appendBatches > before.appendBatches
      ? (after.entriesPersisted - before.entriesPersisted) / (after.appendBatches - before.appendBatches)
      : undefined;
  const result: Result = {
    system: cluster.system,
    series,
    nodes: cluster.size,
    workload,
    concurrency,
    valueSize,
    report,
    serverCpuPct,
    cpuMicrosPerOp: report.ok ? ((serverCpuPct.reduce((a, b) => a + b, 0) / 100) * wall * 1e6) / report.ok : 0,
    clientCpuPct: (report.clientCpuSec / report.elapsedSec) * 100,
    clientMicrosPerOp: report.clientCpuMicrosPerOp,
    leaderEntriesPerAppend,
  };
  results.push(result);
  const l = report.latencyMs;
  log(
    `${label}: ${report.throughput.toFixed(0)} ok/s, p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, ` +
      `p99.9 ${l.p999.toFixed(2)} ms, max ${l.max.toFixed(2)} ms, ` +
      `errors ${report.errors}${report.truncated ? ' (time limit hit)' : ''}; server CPU ${serverCpuPct
        .map((c) => `${c.toFixed(0)}%`)
        .join(' ')}, client CPU ${result.clientCpuPct.toFixed(0)}% (${result.clientMicrosPerOp.toFixed(0)} µs/op)` +
      (leaderEntriesPerAppend ? `, leader ${leaderEntriesPerAppend.toFixed(1)} entries/append` : ''),
  );
  for (const [kind, n] of Object.entries(report.errorKinds).slice(0, 3)) log(`  ${n} x ${kind}`);
  return result;
}

/** The leader's id and its append counters (raft-kvs GetServerState), or null if no member says it leads. */
async function leaderCounters(
  cluster: Cluster,
): Promise<{ leader: string; appendBatches: number; entriesPersisted: number } | null> {
  for (const s of cluster.servers) {
    const st = (await rpc(s, 'GetServerState', undefined, 5000).catch(() => null)) as {
      role: string;
      id: string;
      counters?: { appendBatches?: number; entriesPersisted?: number };
    } | null;
    if (st?.role === 'leader') {
      return {
        leader: st.id,
        appendBatches: st.counters?.appendBatches ?? 0,
        entriesPersisted: st.counters?.entriesPersisted ?? 0,
      };
    }
  }
  return null;
}

interface Row {
  readonly workload: WorkloadKind;
  readonly c: number;
  readonly size: number;
}

interface MemorySample {
  readonly puts: number;
  readonly rssMiB: number[];
}

/**
 * Whether resident memory stayed bounded: over the second half of the run (when several snapshots have compacted
 * the log) the largest node's RSS should not keep growing with the number of Puts.
 */
function memoryVerdict(samples: MemorySample[]): string {
  const total = samples[samples.length - 1].puts;
  if (total < 2 * snapshotEntries) {
    return `Too short to judge boundedness: fewer than two snapshots (one every ${n0(snapshotEntries)} entries).`;
  }
  const half = samples.filter((s) => s.puts >= total / 2);
  if (half.length < 2) return 'Too few samples to judge growth.';
  const first = Math.max(...half[0].rssMiB);
  const last = Math.max(...half[half.length - 1].rssMiB);
  const growth = (last - first) / first;
  return (
    `Largest node: ${first.toFixed(0)} MiB at ${n0(half[0].puts)} Puts, ${last.toFixed(0)} MiB at ` +
    `${n0(half[half.length - 1].puts)} (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(0)} %): ` +
    (growth < 0.15
      ? '**bounded** (a plateau: under 15 % growth over the second half of the Puts).'
      : '**still growing** (15 % or more over the second half of the Puts).')
  );
}

async function memoryRun(): Promise<MemorySample[]> {
  const cluster = await startKvs(3, 'memory');
  const samples: MemorySample[] = [];
  const rss = () => cluster.members.map((m) => (residentBytes(m.proc.pid!) ?? 0) / 2 ** 20);
  samples.push({ puts: 0, rssMiB: rss() });
  const chunks = 5;
  let done = 0;
  try {
    for (let i = 0; i < chunks; i++) {
      const n = Math.floor(memoryPuts / chunks) + (i < memoryPuts % chunks ? 1 : 0);
      const report = await runLoad({
        target: 'jsonrpc',
        servers: cluster.servers,
        workload: 'command',
        count: n,
        concurrency: 1000,
        maxSeconds: 1800,
        label: `memory run ${i + 1}/${chunks}`,
      });
      done += report.completed;
      samples.push({ puts: done, rssMiB: rss() });
      log(
        `memory: after ${done} Puts RSS ${samples
          .at(-1)!
          .rssMiB.map((m) => `${m.toFixed(0)} MiB`)
          .join(', ')}`,
      );
    }
  } finally {
    await stopChildren(cluster.members);
  }
  return samples;
}

/** Monotonic microseconds (the clock V8's profiler stamps samples with) bounding the profiled load. */
const profileWindow: [bigint, bigint] = [0n, 0n];

/**
 * Self time by function from a V8 .cpuprofile, counting only samples inside {@link profileWindow} (falls back to all
 * samples if none fall inside, e.g. on a platform whose profiler clock differs). Idle samples are left out.
 */
function summariseProfile(
  path: string,
  top = 15,
): { total: number; idlePct: number; windowed: boolean; rows: { name: string; pct: number }[] } {
  interface ProfNode {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }
  const prof = JSON.parse(readFileSync(path, 'utf8')) as {
    nodes: ProfNode[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const hitsById = new Map<number, number>();
  let t = prof.startTime;
  const [from, to] = [Number(profileWindow[0]), Number(profileWindow[1])];
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    if (t >= from && t <= to) hitsById.set(prof.samples[i], (hitsById.get(prof.samples[i]) ?? 0) + 1);
  }
  const windowed = hitsById.size > 0;
  if (!windowed) for (const id of prof.samples) hitsById.set(id, (hitsById.get(id) ?? 0) + 1);
  const byName = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of prof.nodes) {
    const hits = hitsById.get(n.id) ?? 0;
    if (!hits) continue;
    if (n.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    total += hits;
    const file = n.callFrame.url ? n.callFrame.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '') : '';
    // Line numbers are left out: one function's samples add up whatever line of the bundle they hit.
    const name = `${n.callFrame.functionName || '(anonymous)'}${file ? ` (${file})` : ''}`;
    byName.set(name, (byName.get(name) ?? 0) + hits);
  }
  const rows = [...byName.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, hits]) => ({ name, pct: (hits / Math.max(1, total)) * 100 }));
  return { total, idlePct: (idle / Math.max(1, idle + total)) * 100, windowed, rows };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function find(series: Series, nodes: number, workload: WorkloadKind, c: number, valueSize = 0): Result | undefined {
  return results.find(
    (r) =>
      r.series === series &&
      r.nodes === nodes &&
      r.workload === workload &&
      r.concurrency === c &&
      r.valueSize === valueSize,
  );
}

const WL_NAME: Record<string, string> = {
  command: 'Put',
  query: 'Get (linearizable)',
  local: 'Get (local)',
  mix: 'Put/Get 50/50',
};
const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/**
 * A Markdown table of `series` (raft-kvs first, then one etcd series) for `rows`: throughput and its ratio, latency
 * p50 / p99 / p99.9 / max, server CPU per member and per request, client CPU per request, errors.
 */
function comparisonTable(
  nodes: number,
  rows: { workload: WorkloadKind; c: number; size: number }[],
  series: Series[] = SYSTEMS,
): string {
  const both = series.length === 2;
  const label = (s: Series) => SERIES_LABEL[s];
  const head = [
    'workload',
    'C',
    ...(both ? [`${label(series[0])} ops/s`, `${label(series[1])} ops/s`, 'ratio'] : [`${label(series[0])} ops/s`]),
    ...series.map((s) => `${label(s)} p50 / p99 / p99.9 / max ms`),
    ...series.map((s) => `${label(s)} CPU % (per node)`),
    ...series.map((s) => `${label(s)} CPU µs / op`),
    ...series.map((s) => `${label(s)} client CPU µs / op`),
    ...(series.includes('raft-kvs') ? ['raft-kvs entries / append (leader)'] : []),
    'errors',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const { workload, c, size } of rows) {
    const rs = series.map((s) => find(s, nodes, workload, c, size));
    if (rs.every((r) => !r)) continue;
    const tput = rs.map((r) => (r ? n0(r.report.throughput) : '—'));
    const ratio =
      both && rs[0] && rs[1] && rs[1].report.throughput > 0
        ? `${(rs[0].report.throughput / rs[1].report.throughput).toFixed(2)}x`
        : '—';
    const lat = rs.map((r) => {
      if (!r) return '—';
      const l = r.report.latencyMs;
      return `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.p999)} / ${ms(l.max)}`;
    });
    const cpu = rs.map((r) => (r ? r.serverCpuPct.map((x) => x.toFixed(0)).join(' ') : '—'));
    const perOp = rs.map((r) => (r ? r.cpuMicrosPerOp.toFixed(0) : '—'));
    const client = rs.map((r) => (r ? r.clientMicrosPerOp.toFixed(0) : '—'));
    const errs = rs.map((r) => (r ? String(r.report.errors) + (r.report.truncated ? ' (cut)' : '') : '—')).join(' / ');
    const wl = `${WL_NAME[workload]}${size ? `, ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`} values` : ''}`;
    const kvs = rs[series.indexOf('raft-kvs')];
    const batch = series.includes('raft-kvs')
      ? [kvs?.leaderEntriesPerAppend ? kvs.leaderEntriesPerAppend.toFixed(1) : '—']
      : [];
    lines.push(
      `| ${[wl, String(c), ...tput, ...(both ? [ratio] : []), ...lat, ...cpu, ...perOp, ...client, ...batch, errs].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** raft-kvs's throughput over etcd's (gRPC, or through the gateway) on 3 nodes, or null if either is missing. */
function ratioTo(etcd: Series, w: WorkloadKind, c: number): number | null {
  const k = find('raft-kvs', 3, w, c);
  const e = find(etcd, 3, w, c);
  return k && e && e.report.throughput > 0 ? k.report.throughput / e.report.throughput : null;
}

/** The issues' targets, each with what this run measured against etcd's gRPC API and whether it holds. */
function targets(): string[] {
  if (SYSTEMS.length !== 2) return [];
  const out = ["Targets (issues 7 and 18), as measured in this run against etcd's native gRPC API:", ''];
  for (const [w, name] of [
    ['command', 'Put'],
    ['query', 'Linearizable Get'],
  ] as const) {
    const r = ratioTo('etcd', w, 1000);
    const gw = ratioTo('etcd-gateway', w, 1000);
    if (r !== null)
      out.push(
        `- ${name} throughput at C=1000 ≥ 5x etcd: **${r.toFixed(2)}x** — ${r >= 5 ? 'met' : 'not met'}` +
          (gw !== null ? ` (${gw.toFixed(2)}x etcd through its HTTP/JSON gateway).` : '.'),
      );
  }
  const k1 = find('raft-kvs', 3, 'command', 1);
  const e1 = find('etcd', 3, 'command', 1);
  if (k1 && e1) {
    const ok = k1.report.latencyMs.p50 <= e1.report.latencyMs.p50;
    out.push(
      `- Put p50 latency at C=1 no worse than etcd: **${ms(k1.report.latencyMs.p50)} ms vs ${ms(e1.report.latencyMs.p50)} ms** — ${ok ? 'met' : 'not met'}.`,
    );
  }
  return out;
}

/** The README's one-line headline: the gRPC ratios at C=1000, or null when this run lacks them. */
function headline(etcdVersion: string, when: string): string | null {
  const put = ratioTo('etcd', 'command', 1000);
  const get = ratioTo('etcd', 'query', 1000);
  if (put === null || get === null) return null;
  return (
    `Measured ${when}${quick ? ' (a --quick run)' : ''}, 3 nodes on one machine, fsync on: raft-kvs does ` +
    `**${put.toFixed(1)}x** the Puts per second of etcd ${etcdVersion} through etcd's native gRPC API at 1,000 ` +
    `concurrent requests, and **${get.toFixed(1)}x** its linearizable Gets.`
  );
}

/** The client's CPU per request by series at C=1000 (the busiest rows), for the caveats. */
function clientCostLine(): string {
  const parts = (['raft-kvs', 'etcd', 'etcd-gateway'] as Series[]).flatMap((s) => {
    const rs = results.filter((r) => r.series === s && r.nodes === 3 && r.concurrency === 1000 && r.valueSize === 0);
    if (rs.length === 0) return [];
    const mean = rs.reduce((a, r) => a + r.clientMicrosPerOp, 0) / rs.length;
    return [`${SERIES_LABEL[s]} ${mean.toFixed(0)} µs`];
  });
  return parts.length
    ? `at C=1000 it spent ${parts.join(', ')} of CPU per request (mean over the workloads)`
    : 'its CPU per request is in the tables';
}

function chart(fsyncPerSec: number, title: string): string {
  const panel = (workload: WorkloadKind, metric: 'throughput' | 'p99') => ({
    title: `${WL_NAME[workload]}: ${metric === 'throughput' ? 'throughput (higher is better)' : 'p99 latency (lower is better)'}`,
    unit: metric === 'throughput' ? 'ops/s' : 'ms',
    points: SYSTEMS.flatMap((s) =>
      CONCURRENCIES.flatMap((c) => {
        const r = find(s, 3, workload, c);
        return r
          ? [
              {
                system: SERIES_LABEL[s],
                concurrency: c,
                value: metric === 'throughput' ? r.report.throughput : r.report.latencyMs.p99,
              },
            ]
          : [];
      }),
    ),
  });
  return renderBarChart({
    title,
    subtitle: `3 nodes + client on one 2-core machine, fsync on every write (disk: ${n0(fsyncPerSec)} fdatasync/s)`,
    panels: [
      panel('command', 'throughput'),
      panel('command', 'p99'),
      panel('query', 'throughput'),
      panel('query', 'p99'),
    ],
    colors: { 'raft-kvs': '#0072B2', [SERIES_LABEL.etcd]: '#E69F00' },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const started = new Date();
  const t0 = performance.now();
  const loadBefore = loadavg()[0];
  if (SYSTEMS.includes('etcd')) execFileSync('bash', [join(ROOT, 'scripts', 'install-etcd.sh')], { stdio: 'inherit' });
  mkdirSync(dataRoot, { recursive: true });
  log(`data directories under ${dataRoot}; ${quick ? 'quick' : 'full'} mode`);

  const fsync = measureFsyncRate(dataRoot, 2);
  log(`disk: ${fsync.perSecond.toFixed(0)} fdatasync/s of 100-byte appends (${fsync.meanMs.toFixed(3)} ms each)`);

  const mainRows: Row[] = [];
  for (const workload of mainWorkloads) for (const c of CONCURRENCIES) mainRows.push({ workload, c, size: 0 });
  const payloadRows = PAYLOADS.flatMap((size) =>
    [64, 1000].map((c) => ({ workload: 'command' as WorkloadKind, c, size })),
  );
  const fiveRows = (['command', 'query'] as WorkloadKind[]).flatMap((workload) =>
    [64, 1000].map((c) => ({ workload, c, size: 0 })),
  );
  // etcd through its HTTP/JSON gateway, on the 3-node etcd cluster right after the main rows: the second table.
  const gatewayRows: Row[] = SYSTEMS.includes('etcd')
    ? (['command', 'query'] as WorkloadKind[]).flatMap((workload) => [64, 1000].map((c) => ({ workload, c, size: 0 })))
    : [];
  const gatewaySeries: Series[] = SYSTEMS.includes('raft-kvs') ? ['raft-kvs', 'etcd-gateway'] : ['etcd-gateway'];
  const rss: Record<string, number[]> = {};

  // Both systems' clusters run at the same time and each row is measured on one right after the other, so a change in
  // the machine's background load during the run hits both alike (an idle cluster only sends heartbeats).
  const runRows = async (
    size: number,
    tag: string,
    rows: Row[],
    counts: (r: Row) => number,
    viaGateway: Row[] = [],
  ) => {
    const clusters: Cluster[] = [];
    try {
      for (const system of SYSTEMS) {
        log(`starting a ${size}-node ${system} cluster`);
        clusters.push(await startCluster(system, size, tag));
      }
      for (const r of rows) for (const c of clusters) await measure(c, r.workload, r.c, counts(r), r.size);
      const etcd = clusters.find((c) => c.system === 'etcd');
      if (etcd) for (const r of viaGateway) await measure(etcd, r.workload, r.c, counts(r), r.size, 'gateway');
      if (size === 3)
        for (const c of clusters) rss[c.system] = c.members.map((m) => (residentBytes(m.proc.pid!) ?? 0) / 2 ** 20);
    } finally {
      for (const c of clusters) await stopChildren(c.members);
    }
  };
  await runRows(
    3,
    '3n',
    opt['skip-scale'] ? mainRows : [...mainRows, ...payloadRows],
    (r) => (r.size ? payloadCount(r.size) : COUNTS[r.c]),
    gatewayRows,
  );
  if (!opt['skip-scale']) await runRows(5, '5n', fiveRows, (r) => COUNTS[r.c]);
  let memory: MemorySample[] = [];
  const failures: string[] = [];
  if (!opt['skip-memory'] && SYSTEMS.includes('raft-kvs')) {
    log(
      `memory run: ${memoryPuts} Puts at C=1000 on a fresh 3-node raft-kvs cluster (snapshot every ${snapshotEntries})`,
    );
    memory = await memoryRun().catch((e: unknown) => {
      failures.push(`memory run failed: ${e instanceof Error ? e.message : String(e)}`);
      return [];
    });
  }
  let profiles: { node: string; summary: ReturnType<typeof summariseProfile> }[] = [];
  if (opt.profile && SYSTEMS.includes('raft-kvs')) {
    log('profile run: raft-kvs with --cpu-prof, Put then Get at C=1000');
    try {
      const cluster = await startKvs(3, 'profile', { profile: true });
      let leader: string | null = null;
      try {
        // Only samples taken during the load count: start-up (loading and compiling the modules) would weigh otherwise.
        profileWindow[0] = process.hrtime.bigint() / 1000n;
        await measure(cluster, 'command', 1000, COUNTS[1000]);
        await measure(cluster, 'query', 1000, COUNTS[1000]);
        profileWindow[1] = process.hrtime.bigint() / 1000n;
        results.splice(-2, 2); // profiled runs are slower; they do not go into the tables
        leader = (await leaderCounters(cluster))?.leader ?? null;
      } finally {
        await stopChildren(cluster.members);
      }
      const dir = cluster.profileDir!;
      profiles = readdirSync(dir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort()
        .map((f) => {
          const i = Number(/node-(\d+)/.exec(f)?.[1]);
          const role = cluster.servers[i] === leader ? 'leader' : 'follower';
          return { node: `node ${i + 1} (${role})`, summary: summariseProfile(join(dir, f)) };
        });
      for (const p of profiles) {
        log(`profile ${p.node} (${p.summary.total} busy samples, ${p.summary.idlePct.toFixed(0)}% idle):`);
        for (const r of p.summary.rows) log(`  ${r.pct.toFixed(1).padStart(5)}%  ${r.name}`);
      }
    } catch (e) {
      failures.push(`profile run failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const minutes = (performance.now() - t0) / 60_000;

  // ---- write results
  const etcdVersion = sh('etcd', ['--version']).split('\n')[0].replace('etcd Version: ', '');
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']);
  // The servers run from the working tree: say so when it differs from the commit named in the results.
  const dirty = [
    ...new Set(
      sh('git', ['status', '--porcelain', '--', 'packages'])
        .split('\n')
        .map((l) => l.slice(3).split('/').slice(0, 2).join('/'))
        .filter((p) => p.startsWith('packages/')),
    ),
  ];
  const fsType = sh('df', ['-T', dataRoot]).split('\n')[1]?.split(/\s+/)[1] ?? 'unknown';
  const raw = { started: started.toISOString(), quick, fsync, results, rss, memory, profiles };
  mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
  writeFileSync(join(ROOT, 'artifacts', 'bench-cluster.json'), `${JSON.stringify(raw, null, 2)}\n`);
  log(`raw results: artifacts/bench-cluster.json`);

  const md: string[] = [];
  md.push(
    `Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC by \`pnpm bench:cluster${quick ? ' --quick' : ''}\` ` +
      `(${minutes.toFixed(1)} min, commit ${commit}${dirty.length ? ` plus uncommitted changes in ${dirty.join(', ')}` : ''}).`,
    '',
    `- Machine: ${cpuModel()}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, ` +
      `data on ${fsType}. Servers and client share the machine; 1-minute load average ${loadBefore.toFixed(1)} at the ` +
      `start and ${loadavg()[0].toFixed(1)} at the end (above 2 means other work competed for the 2 cores).`,
    `- Versions: Node ${process.version}; etcd ${etcdVersion} (Debian package); raft-kvs from this commit, its build (\`packages/kvs-app/dist\`, what \`npm install\` gives), run by \`node\`.`,
    `- Disk: **${n0(fsync.perSecond)} fdatasync/s** (100-byte append + fdatasync loop, ${fsync.seconds.toFixed(1)} s, ` +
      `${fsync.meanMs.toFixed(3)} ms each), measured in this run on the data directories' disk.`,
    `- Clusters: members on 127.0.0.1, each on its own data directory, fsync before acknowledging a write${kvsArgs.includes('--unsafe-no-fsync') ? ' (**except raft-kvs: --unsafe-no-fsync, a diagnostic run**)' : ''} (etcd: its ` +
      `defaults; raft-kvs: \`raft-kvs serve ADDR --data DIR --snapshot-entries ${snapshotEntries}${kvsArgs.length ? ` ${kvsArgs.join(' ')}` : ''}\`, cluster made with ` +
      'CreateCluster + AddServer).',
    '- Client: `@raft/loadgen` (apps/loadgen), one process: random 3-letter keys, random u32 values; slot k of C sends ' +
      'to member k % N, the next request as soon as the previous one is answered. raft-kvs: JSON-RPC `Apply` lines ' +
      'pipelined on one TCP connection per member. etcd (the main tables): its native gRPC API (`etcdserverpb.KV/Put`, ' +
      '`KV/Range`, linearizable by default) over plain-text HTTP/2 written by hand on TCP sockets (HPACK, flow ' +
      "control, gRPC framing and protobuf included; Node's `node:http2` client cost 3-4x the CPU per request, taken " +
      'from the servers on this machine), each request one stream, the streams multiplexed over a bounded set of ' +
      'connections as ' +
      `etcd's own benchmark tool does (${CONCURRENCIES.map((c) => `C=${c}: ${grpcConnections(3, c)}`).join(', ')} ` +
      'connections on 3 members, split evenly). etcd through its HTTP/JSON gateway (the second table): `/v3/kv/put`, ' +
      '`/v3/kv/range` over C keep-alive HTTP/1.1 connections, one request in flight each.',
    `- Counts per run: ${CONCURRENCIES.map((c) => `C=${c}: ${n0(COUNTS[c])}`).join(', ')} measured requests after a warm-up ` +
      `(payload runs: ${PAYLOADS.map((p) => `${p / 1024} KiB: ${n0(payloadCount(p))}`).join(', ')}). ` +
      "CPU % is per member, of one core, over the run (200 % = the whole machine); CPU µs / op is all members' CPU " +
      'time per successful request, which depends less on what else the machine runs than throughput does; client ' +
      "CPU µs / op is the load generator's own CPU time per successful request.",
    "- Caveats: the headline compares with etcd's native gRPC API, which etcd's own clients use; its HTTP/JSON " +
      'gateway turns each request into an extra in-process gRPC call, so etcd does less through it (second table). ' +
      'The client shares the 2 cores with the servers, so CPU it spends is taken from them: ' +
      `${clientCostLine()}. ` +
      'The two systems ran side by side (both clusters up, rows measured one system right after the other), so ' +
      'background load hit both, but not necessarily equally.',
    '',
    ...targets(),
    '',
    '### 3 nodes (etcd through its native gRPC API)',
    '',
    comparisonTable(3, mainRows),
    '',
    '![raft-kvs vs etcd (gRPC): throughput and p99 latency by concurrency](bench-cluster.svg)',
    '',
  );
  if (gatewayRows.length) {
    md.push(
      '### 3 nodes, etcd through its HTTP/JSON gateway',
      '',
      'The same raft-kvs rows as above, against etcd driven through `/v3/kv/*` instead of gRPC (measured right ' +
        'after the main rows, on the same clusters).',
      '',
      comparisonTable(3, gatewayRows, gatewaySeries),
      '',
    );
  }
  if (!opt['skip-scale']) {
    md.push(
      '### Payload sizes (3 nodes, Put)',
      '',
      comparisonTable(3, payloadRows),
      '',
      '### 5 nodes',
      '',
      comparisonTable(5, fiveRows),
      '',
    );
  }
  if (Object.keys(rss).length) {
    md.push(
      '### Resident memory',
      '',
      ...Object.entries(rss).map(
        ([s, v]) => `- ${s}, 3 nodes, after the runs above: ${v.map((m) => `${m.toFixed(0)} MiB`).join(', ')} (VmRSS).`,
      ),
    );
  }
  if (memory.length) {
    md.push(
      `- raft-kvs, a fresh 3-node cluster, ${n0(memoryPuts)} Puts at C=1000 with a snapshot every ${n0(snapshotEntries)} ` +
        'entries; VmRSS of each node after each fifth:',
      '',
      memoryVerdict(memory),
      '',
      '| Puts applied | node 1 MiB | node 2 MiB | node 3 MiB |',
      '|---|---|---|---|',
      ...memory.map((s) => `| ${n0(s.puts)} | ${s.rssMiB.map((m) => m.toFixed(0)).join(' | ')} |`),
      '',
    );
  }
  if (profiles.length) {
    md.push('### Where a raft-kvs node spends its CPU (C=1000, Put then Get; self time, top functions)', '');
    for (const p of profiles) {
      md.push(
        `${p.node}: ${p.summary.total} busy samples${p.summary.windowed ? ' during the load' : ' (whole process life)'}, ` +
          `idle ${p.summary.idlePct.toFixed(0)} % of the time:`,
        '',
      );
      for (const r of p.summary.rows) md.push(`- ${r.pct.toFixed(1)} % \`${r.name}\``);
      md.push('');
    }
  }
  if (failures.length) md.push('### Failures', '', ...failures.map((f) => `- ${f}`), '');
  const body = md.join('\n');
  console.log(`\n${body}`);
  if (!opt['no-write']) {
    const docPath = join(ROOT, 'docs', 'benchmarks.md');
    const doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n';
    writeFileSync(docPath, replaceRegion(doc, 'bench:cluster', body, '## Cluster: raft-kvs vs etcd'));
    writeFileSync(
      join(ROOT, 'docs', 'bench-cluster.svg'),
      chart(fsync.perSecond, `raft-kvs vs etcd ${etcdVersion} gRPC (${started.toISOString().slice(0, 10)})`),
    );
    log(`wrote ${relative(ROOT, docPath)} and docs/bench-cluster.svg`);
    const line = headline(etcdVersion, started.toISOString().slice(0, 10));
    if (line !== null) {
      const readme = join(ROOT, 'README.md');
      writeFileSync(readme, replaceRegion(readFileSync(readme, 'utf8'), 'bench:cluster-headline', line));
      log('wrote the headline ratio line of README.md');
    }
  }
}

main()
  .catch((e: unknown) => {
    console.error(`[bench:cluster] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
