/**
 * `pnpm bench:links`: raft-kvs and etcd side by side when the members' links have real latency, as between racks or
 * zones, on one machine.
 *
 * This kernel has no `netem`, so every member's peer port sits behind a delaying TCP proxy (`LinkProxy` from
 * @raft/loadgen, run in its own process by scripts/bench-lib/link-proxy-host.ts): raft-kvs node i runs
 * `serve 127.0.0.1:P_i --listen 127.0.0.1:L_i`, so its id (what peers dial) is its proxy P_i, which forwards to
 * L_i; etcd member i listens for peers on L_i and advertises P_i (`--initial-advertise-peer-urls`, and P_i in
 * `--initial-cluster`). Both systems' peer traffic goes through the same proxy code with the same settings; clients
 * dial the members directly. For each link profile (one-way delay, optional bandwidth cap per direction), both
 * 3-member clusters are started, Put and linearizable Get run at C=1, 64 and 1,000 one system right after the
 * other, and everything is stopped. Writes docs/benchmarks.md between the bench:links markers.
 *
 *   pnpm bench:links                     # full run (about 10 minutes on a quiet machine)
 *   pnpm bench:links --quick --no-write  # small counts, print only
 *   pnpm bench:links --help
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import {
  cpuModel,
  type LinkProxyStats,
  type LoadOptions,
  type LoadReport,
  replaceRegion,
  runLoad,
  type WorkloadKind,
} from '../apps/loadgen/src/index.js';
import { freePorts } from '../packages/testkit/src/index.js';
import { type Cluster, type ClusterSystem, clusterKit, ROOT } from './bench-lib/clusters.js';

/** How the load client talks to etcd: its native gRPC API (raft-loadgen's hand-written HTTP/2 client), as etcd's own clients do. */
const ETCD_TARGET: LoadOptions['target'] = 'etcd-grpc';

/** One link profile: what every peer link looks like, in each direction. */
interface LinkProfile {
  /** Name used by --profile and in the tables. */
  readonly name: string;
  /** One-way delay per direction (ms). */
  readonly delayMs: number;
  /** Bandwidth cap per direction and connection (bytes/s); 0 = none. */
  readonly bytesPerSecond: number;
  /** What it stands for. */
  readonly about: string;
}

/** 100 Mbit/s: a modest inter-zone or shared uplink, low enough that a large batch of appends feels it. */
const CAP_BYTES_PER_SECOND = 12_500_000;

const PROFILES: LinkProfile[] = [
  { name: '0.5ms', delayMs: 0.5, bytesPerSecond: 0, about: 'racks in one data centre (1 ms round trip)' },
  { name: '10ms', delayMs: 10, bytesPerSecond: 0, about: 'zones or nearby regions (20 ms round trip)' },
  {
    name: '10ms-100mbit',
    delayMs: 10,
    bytesPerSecond: CAP_BYTES_PER_SECOND,
    about: 'zones over a 100 Mbit/s link',
  },
];

const HELP = `usage: pnpm bench:links [options]

  --quick            small counts (a couple of minutes); default is the full run (about 10 minutes)
  --profile LIST     only these link profiles (comma-separated; default all: ${PROFILES.map((p) => p.name).join(',')})
  --only kvs|etcd    run one system only (no ratios)
  --dir DIR          where the data directories go (default .raft-data/bench-links-<pid>)
  --no-write         print results only; leave docs/ untouched
  --keep             keep data directories and logs
  -h, --help`;

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'string' },
    only: { type: 'string' },
    dir: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const usage = (msg: string): never => {
  console.error(`bench:links: ${msg}\n${HELP}`);
  process.exit(2);
};
const quick = opt.quick === true;
const profiles =
  opt.profile === undefined
    ? PROFILES
    : opt.profile.split(',').map((n) => PROFILES.find((p) => p.name === n) ?? usage(`unknown profile "${n}"`));
if (opt.only !== undefined && opt.only !== 'kvs' && opt.only !== 'etcd') usage('--only must be kvs or etcd');
const SYSTEMS: ClusterSystem[] =
  opt.only === 'kvs' ? ['raft-kvs'] : opt.only === 'etcd' ? ['etcd'] : ['raft-kvs', 'etcd'];

const CONCURRENCIES = [1, 64, 1000];
const WORKLOADS: WorkloadKind[] = ['command', 'query'];
/** Measured requests per run: at 10 ms one way a C=1 Put takes tens of ms, so C=1 stays small. */
const COUNTS: Record<number, number> = quick ? { 1: 100, 64: 1_000, 1000: 3_000 } : { 1: 500, 64: 5_000, 1000: 20_000 };
const RUN_LIMIT_S = quick ? 20 : 30; // 3 profiles x 2 systems x 6 runs: at most 18 minutes of load, usually far less

const dataRoot = opt.dir ?? join(ROOT, '.raft-data', `bench-links-${process.pid}`);
const log = (msg: string) => console.error(`[bench:links] ${msg}`);
const kit = clusterKit({ dataRoot, keep: opt.keep === true, snapshotEntries: 100_000, kvsArgs: [], log });
/** Set on SIGINT/SIGTERM (the kit stops everything and exits): results of an interrupted run are not written. */
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted = true;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// One profile

interface Result {
  readonly profile: string;
  readonly system: ClusterSystem;
  readonly workload: WorkloadKind;
  readonly concurrency: number;
  readonly report: LoadReport;
}

interface ProfileOutcome {
  readonly profile: LinkProfile;
  readonly results: Result[];
  /** Counters of every proxy of the profile (both systems), read after the proxies stopped. */
  readonly proxyStats: (LinkProxyStats & { port: number })[];
  readonly failure?: string;
}

async function runProfile(profile: LinkProfile): Promise<ProfileOutcome> {
  const tag = profile.name.replace(/[^a-z0-9]/gi, '');
  const results: Result[] = [];
  // Per system: 3 listen ports (L_i, where members bind for peers) and 3 advertised ports (P_i, the proxies).
  const ports = await freePorts(SYSTEMS.length * 6);
  const peerPorts = new Map(
    SYSTEMS.map((s, k) => [
      s,
      { listen: ports.slice(k * 6, k * 6 + 3), advertised: ports.slice(k * 6 + 3, k * 6 + 6) },
    ]),
  );
  const statsPath = join(dataRoot, `proxies-${tag}.json`);
  mkdirSync(dataRoot, { recursive: true });
  const pairs = [...peerPorts.values()].flatMap((pp) => pp.advertised.map((p, i) => `${p}:${pp.listen[i]}`));
  const host = kit.startChild(
    `link proxies ${profile.name}`,
    process.execPath,
    [
      '--import',
      'tsx',
      'scripts/bench-lib/link-proxy-host.ts',
      '--delay-ms',
      String(profile.delayMs),
      '--bytes-per-second',
      String(profile.bytesPerSecond),
      '--stats',
      statsPath,
      ...pairs,
    ],
    join(dataRoot, `proxies-${tag}.log`),
    { TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json') },
  );
  const clusters: Cluster[] = [];
  let failure: string | undefined;
  try {
    await kit.waitForNodes(`link proxies ${profile.name} to listen`, async () => existsSync(statsPath), 30_000, [host]);
    for (const system of SYSTEMS) {
      log(`${profile.name}: starting a 3-node ${system} cluster behind the proxies`);
      const peer = { peerPorts: peerPorts.get(system) };
      clusters.push(system === 'etcd' ? await kit.startEtcd(3, tag, peer) : await kit.startKvs(3, tag, peer));
    }
    // Each row on one system right after the other, so background load hits both alike.
    for (const workload of WORKLOADS) {
      for (const c of CONCURRENCIES) {
        for (const cluster of clusters) results.push(await measure(profile, cluster, workload, c));
      }
    }
  } catch (e) {
    failure = `${profile.name}: ${e instanceof Error ? e.message : String(e)}`;
    log(`failed: ${failure}`);
  } finally {
    for (const c of clusters) await kit.stopChildren(c.members);
    await kit.stopChildren([host]);
  }
  let proxyStats: ProfileOutcome['proxyStats'] = [];
  try {
    proxyStats = JSON.parse(readFileSync(statsPath, 'utf8'));
  } catch {
    // No stats (the host never came up): the failure above says why.
  }
  return { profile, results, proxyStats, failure };
}

async function measure(profile: LinkProfile, cluster: Cluster, workload: WorkloadKind, c: number): Promise<Result> {
  const count = COUNTS[c];
  const label = `${profile.name} ${cluster.system} ${workload} C=${c}`;
  const report = await runLoad({
    target: cluster.system === 'etcd' ? ETCD_TARGET : 'jsonrpc',
    servers: cluster.servers,
    workload,
    count,
    concurrency: c,
    warmup: Math.min(Math.max(c * 2, 200), Math.ceil(count / 10)),
    maxSeconds: RUN_LIMIT_S,
    label,
  });
  const l = report.latencyMs;
  log(
    `${label}: ${report.throughput.toFixed(0)} ok/s, p50 ${l.p50.toFixed(2)} / p99 ${l.p99.toFixed(2)} / ` +
      `max ${l.max.toFixed(1)} ms, errors ${report.errors}${report.truncated ? ' (time limit hit)' : ''}`,
  );
  for (const [kind, n] of Object.entries(report.errorKinds).slice(0, 3)) log(`  ${n} x ${kind}`);
  return { profile: profile.name, system: cluster.system, workload, concurrency: c, report };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

const WL_NAME: Record<string, string> = { command: 'Put', query: 'Get (linearizable)' };
const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function table(o: ProfileOutcome): string {
  const both = SYSTEMS.length === 2;
  const head = [
    'workload',
    'C',
    ...(both ? ['raft-kvs ops/s', 'etcd ops/s', 'ratio'] : [`${SYSTEMS[0]} ops/s`]),
    ...SYSTEMS.map((s) => `${s} p50 / p99 / p99.9 / max ms`),
    'errors',
  ];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|---|--:|${head
      .slice(2)
      .map(() => '---')
      .join('|')}|`,
  ];
  for (const workload of WORKLOADS) {
    for (const c of CONCURRENCIES) {
      const rs = SYSTEMS.map((s) =>
        o.results.find((r) => r.system === s && r.workload === workload && r.concurrency === c),
      );
      if (rs.every((r) => !r)) continue;
      const tput = rs.map((r) => (r ? n0(r.report.throughput) : '—'));
      const ratio =
        both && rs[0] && rs[1] && rs[1].report.throughput > 0
          ? [`${(rs[0].report.throughput / rs[1].report.throughput).toFixed(2)}x`]
          : both
            ? ['—']
            : [];
      const lat = rs.map((r) => {
        if (!r) return '—';
        const l = r.report.latencyMs;
        return `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.p999)} / ${ms(l.max)}`;
      });
      const errs = rs.map((r) => (r ? `${r.report.errors}${r.report.truncated ? ' (cut)' : ''}` : '—')).join(' / ');
      lines.push(`| ${[WL_NAME[workload], String(c), ...tput, ...ratio, ...lat, errs].join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

function proxyLine(o: ProfileOutcome): string {
  const s = o.proxyStats;
  const chunks = s.reduce((a, x) => a + x.chunks, 0);
  if (!chunks) return 'No proxy counters (the proxies did not report).';
  const mean = s.reduce((a, x) => a + x.meanDelayMs * x.chunks, 0) / chunks;
  const max = Math.max(...s.map((x) => x.maxDelayMs));
  const mib = s.reduce((a, x) => a + x.bytes, 0) / 2 ** 20;
  return (
    `Proxies carried ${n0(chunks)} chunks (${mib.toFixed(0)} MiB, both systems, start-up included); a chunk spent ` +
    `${mean.toFixed(2)} ms in its proxy on average (set: ${o.profile.delayMs} ms), ${max.toFixed(1)} ms at most.`
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const started = new Date();
  const t0 = performance.now();
  const loadBefore = loadavg()[0];
  if (SYSTEMS.includes('etcd')) execFileSync('bash', [join(ROOT, 'scripts', 'install-etcd.sh')], { stdio: 'inherit' });
  mkdirSync(dataRoot, { recursive: true });
  log(`data directories under ${dataRoot}; ${quick ? 'quick' : 'full'} mode; profiles ${profiles.map((p) => p.name)}`);

  const outcomes: ProfileOutcome[] = [];
  for (const p of profiles) if (!interrupted) outcomes.push(await runProfile(p));
  if (interrupted) return;
  const minutes = (performance.now() - t0) / 60_000;
  const loadAfter = loadavg()[0];

  const etcdVersion = SYSTEMS.includes('etcd')
    ? sh('etcd', ['--version']).split('\n')[0].replace('etcd Version: ', '')
    : 'not run';
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']);
  mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
  writeFileSync(
    join(ROOT, 'artifacts', 'bench-links.json'),
    `${JSON.stringify({ started: started.toISOString(), quick, outcomes }, null, 2)}\n`,
  );
  log('raw results: artifacts/bench-links.json');

  const md: string[] = [
    `Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC by \`pnpm bench:links${quick ? ' --quick' : ''}\` ` +
      `(${minutes.toFixed(1)} min, commit ${commit}).`,
    '',
    `- Machine: ${cpuModel()}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}; ` +
      `servers, proxies and client share it. 1-minute load average ${loadBefore.toFixed(1)} at the start and ` +
      `${loadAfter.toFixed(1)} at the end (above ${cpus().length} means other work competed for the cores).`,
    `- Links: this kernel has no \`netem\`, so every member's peer port sits behind a user-space delaying TCP proxy ` +
      '(`LinkProxy` in apps/loadgen/src/link-proxy.ts, all in one separate process): each chunk is delivered the ' +
      "profile's one-way delay after it was read, in each direction, so a round trip between two members takes twice " +
      'the delay. The bandwidth cap is a token bucket per direction and connection in the same proxy (64 KiB burst), ' +
      'not a `tbf` qdisc: no root, no namespaces to tear down. A chunk never leaves early but may leave late (Node ' +
      "timers have 1 ms resolution and the proxies' process shares the CPU), so the time chunks actually spent in " +
      'their proxy is measured and given under each table.',
    '- Same proxies for both: raft-kvs node i is `raft-kvs serve 127.0.0.1:P_i --listen 127.0.0.1:L_i` (its id, ' +
      'which peers dial, is its proxy P_i → L_i); etcd member i has `--listen-peer-urls http://127.0.0.1:L_i`, ' +
      '`--initial-advertise-peer-urls http://127.0.0.1:P_i` and P_i in `--initial-cluster`. Clients dial the members ' +
      'directly (no delay between client and member), so what the delay adds is the replication and forwarding ' +
      'between members.',
    `- Versions: Node ${process.version}; etcd ${etcdVersion}, through ${ETCD_TARGET === 'etcd-gateway' ? 'its HTTP/JSON gateway' : 'its native gRPC API'}; ` +
      'raft-kvs from this commit, its build (packages/kvs-app/dist), run by node. 3 members each, fsync on, each on its own data directory.',
    `- Client: \`@raft/loadgen\`, slot k of C sends to member k % 3; per run ${CONCURRENCIES.map((c) => `C=${c}: ${n0(COUNTS[c])}`).join(', ')} ` +
      `measured requests after a warm-up, stopped after ${RUN_LIMIT_S} s ("(cut)" in the errors column). Each row is ` +
      'measured on one system right after the other; both clusters are up during a profile.',
    '',
  ];
  for (const o of outcomes) {
    const p = o.profile;
    md.push(
      `### ${p.delayMs} ms one way${p.bytesPerSecond ? `, ${(p.bytesPerSecond * 8) / 1e6} Mbit/s per direction` : ''}: ${p.about}`,
      '',
      table(o),
      '',
      proxyLine(o),
      '',
    );
    if (o.failure) md.push(`Failure: ${o.failure.split('\n')[0]}`, '');
  }
  const body = md.join('\n');
  console.log(`\n${body}`);
  if (!opt['no-write']) {
    const docPath = join(ROOT, 'docs', 'benchmarks.md');
    const doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n';
    writeFileSync(docPath, replaceRegion(doc, 'bench:links', body, '## Clusters with link latency'));
    log(`wrote ${relative(ROOT, docPath)}`);
  }
  if (outcomes.some((o) => o.failure)) process.exitCode = 1;
}

main()
  .catch((e: unknown) => {
    console.error(`[bench:links] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => kit.cleanup());
