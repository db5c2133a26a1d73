/**
 * `pnpm bench:tls`: what TLS costs raft-kvs. Makes a throwaway CA and a certificate for 127.0.0.1 (openssl, in the
 * run's temp directory; deleted at the end), starts two 3-node raft-kvs clusters on loopback, one plain and one with
 * TLS on every peer and client connection, and drives each with @raft/loadgen at C=1000 (Put, then linearizable Get),
 * alternating plain and TLS row by row and repeating the pair, so background load hits both alike. Writes a table to
 * docs/benchmarks.md between the bench:tls markers. Stops every process it started, by PID. Bounded: about 2 minutes.
 *
 *   pnpm bench:tls                # 20,000 requests per row, 2 rounds
 *   pnpm bench:tls --count 5000 --rounds 1 --no-write
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  cpuModel,
  cpuSeconds,
  type LoadReport,
  replaceRegion,
  runLoad,
  type WorkloadKind,
} from '../apps/loadgen/src/index.js';
import { type ClientTlsOptions, RpcClient } from '../packages/node-tcp/src/index.js';
import { makePki } from '../packages/node-tcp/test/certs.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HELP = `usage: pnpm bench:tls [--count N] [--rounds R] [--concurrency C] [--no-write]

  --count N        measured requests per row (default 20000)
  --rounds R       plain/TLS pairs per workload (default 2)
  --concurrency C  requests in flight (default 1000)
  --no-write       print the table only; leave docs/benchmarks.md untouched`;

const { values: opt } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '1000' },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const int = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench:tls: --${name} must be a positive integer\n${HELP}`);
    process.exit(2);
  }
  return n;
};
const COUNT = int('count', opt.count);
const ROUNDS = int('rounds', opt.rounds);
const C = int('concurrency', opt.concurrency);
const RUN_LIMIT_S = 60;
const log = (m: string) => console.error(`[bench:tls] ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'raft-bench-tls-'));
const children: ChildProcess[] = [];

async function freePorts(n: number): Promise<number[]> {
  const ss = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = ss.map((s) => (s.address() as { port: number }).port);
  await Promise.all(ss.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

interface Cluster {
  readonly tls: boolean;
  readonly servers: string[];
  readonly procs: ChildProcess[];
}

async function startCluster(tlsFiles: string[] | null, clientTls: ClientTlsOptions | undefined): Promise<Cluster> {
  const tag = tlsFiles ? 'tls' : 'plain';
  const servers = (await freePorts(3)).map((p) => `127.0.0.1:${p}`);
  const procs = servers.map((addr, i) => {
    const d = join(dir, `${tag}-${i}`);
    mkdirSync(d, { recursive: true });
    const fd = openSync(join(d, 'kvs.log'), 'a');
    const args = [
      // The built server, as `npm install @raft/kvs-app` runs it (the root bench script builds it first).
      'packages/kvs-app/bin/raft-kvs.js',
      'serve',
      addr,
      '--data',
      join(d, 'data'),
      '--quiet',
    ];
    if (tlsFiles) args.push('--tls-ca', tlsFiles[0], '--tls-cert', tlsFiles[1], '--tls-key', tlsFiles[2]);
    const p = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json') },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    children.push(p);
    return p;
  });
  const connect = async (addr: string) => RpcClient.connect(addr, { tls: clientTls, timeoutMs: 60_000 });
  const deadline = Date.now() + 60_000;
  let first: RpcClient | null = null;
  while (first === null) {
    first = await connect(servers[0]).catch(() => null);
    if (first === null) {
      if (Date.now() > deadline) throw new Error(`raft-kvs ${tag} did not start; see ${dir}`);
      await sleep(200);
    }
  }
  await first.request('CreateCluster');
  for (const s of servers.slice(1)) {
    for (;;) {
      try {
        await first.request('AddServer', { addr: s, timeoutMs: 30_000 });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }
  await first.close();
  log(`${tag} cluster up: ${servers.join(', ')}`);
  return { tls: tlsFiles !== null, servers, procs };
}

interface Row {
  readonly tls: boolean;
  readonly workload: WorkloadKind;
  readonly report: LoadReport;
  readonly cpuMicrosPerOp: number;
}

async function measure(c: Cluster, workload: WorkloadKind, tlsCa: string | undefined): Promise<Row> {
  const pids = c.procs.map((p) => p.pid as number);
  const cpu0 = pids.map((p) => cpuSeconds(p) ?? 0);
  const report = await runLoad({
    target: 'jsonrpc',
    servers: c.servers,
    workload,
    count: COUNT,
    concurrency: C,
    warmup: Math.min(2 * C, Math.ceil(COUNT / 10)),
    maxSeconds: RUN_LIMIT_S,
    progress: 'off',
    tlsCa: c.tls ? tlsCa : undefined,
  });
  const cpu = pids.reduce((a, p, i) => a + (cpuSeconds(p) ?? 0) - cpu0[i], 0);
  const row = { tls: c.tls, workload, report, cpuMicrosPerOp: report.ok ? (cpu * 1e6) / report.ok : 0 };
  log(
    `${c.tls ? 'TLS  ' : 'plain'} ${workload} C=${C}: ${report.throughput.toFixed(0)} ok/s, p50 ${report.latencyMs.p50.toFixed(1)} ms, ` +
      `p99 ${report.latencyMs.p99.toFixed(1)} ms, errors ${report.errors}`,
  );
  return row;
}

async function stopAll(): Promise<void> {
  for (const p of children) if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (children.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < deadline) await sleep(50);
  for (const p of children) if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const started = new Date();
  const loadBefore = loadavg()[0];
  const pki = makePki('bench-ca');
  const pair = pki.issue('127.0.0.1', ['IP:127.0.0.1']);
  const files = ['ca.pem', 'node.pem', 'node.key'].map((f) => join(dir, f));
  writeFileSync(files[0], pki.ca);
  writeFileSync(files[1], pair.cert);
  writeFileSync(files[2], pair.key, { mode: 0o600 });
  pki.cleanup();
  const rows: Row[] = [];
  try {
    const plain = await startCluster(null, undefined);
    const tls = await startCluster(files, { ca: pki.ca });
    for (const workload of ['command', 'query'] as WorkloadKind[]) {
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which goes first, so a trend in background load does not favour one side.
        const order = r % 2 === 0 ? [plain, tls] : [tls, plain];
        for (const c of order) rows.push(await measure(c, workload, pki.ca));
      }
    }
  } finally {
    await stopAll();
  }
  const name = { command: 'Put', query: 'linearizable Get' } as Record<string, string>;
  const md: string[] = [
    `Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC by \`pnpm bench:tls\` on ${cpus().length} × ${cpuModel()} ` +
      `(load average ${loadBefore.toFixed(2)} at start): two 3-node raft-kvs clusters on loopback in the same run, one ` +
      'plain and one with TLS on every peer and client connection (ECDSA P-256 certificates, TLS 1.3), each driven by ' +
      `@raft/loadgen at C=${C.toLocaleString('en-US')} over 3 connections (one per node), ${COUNT.toLocaleString('en-US')} ` +
      `measured requests per run, ${ROUNDS} run(s) per cell alternating plain and TLS; each cell is the median over its runs (with two runs, their mean). ` +
      'fsync on, no client tokens.',
    '',
    '| workload | plain ok/s | TLS ok/s | TLS / plain | plain p50 / p99 ms | TLS p50 / p99 ms | plain CPU µs/op | TLS CPU µs/op | errors |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const verdicts: string[] = [];
  for (const w of ['command', 'query']) {
    const pick = (tls: boolean) => rows.filter((r) => r.workload === w && r.tls === tls);
    const [p, t] = [pick(false), pick(true)];
    const thr = (rs: Row[]) => median(rs.map((r) => r.report.throughput));
    const lat = (rs: Row[]) =>
      `${median(rs.map((r) => r.report.latencyMs.p50)).toFixed(1)} / ${median(rs.map((r) => r.report.latencyMs.p99)).toFixed(1)}`;
    const cpu = (rs: Row[]) => median(rs.map((r) => r.cpuMicrosPerOp)).toFixed(0);
    const ratio = thr(t) / thr(p);
    const errors = [...p, ...t].reduce((a, r) => a + r.report.errors, 0);
    md.push(
      `| ${name[w]} | ${thr(p).toFixed(0)} | ${thr(t).toFixed(0)} | ${(ratio * 100).toFixed(0)} % | ${lat(p)} | ${lat(t)} | ${cpu(p)} | ${cpu(t)} | ${errors} |`,
    );
    const cpuRatio = Number(cpu(t)) / Number(cpu(p));
    verdicts.push(
      `${name[w]}: TLS is ${ratio >= 0.75 ? 'within' : 'OUTSIDE'} the goal of costing at most 25 % of throughput ` +
        `(${Math.abs((1 - ratio) * 100).toFixed(0)} % ${ratio <= 1 ? 'fewer' : 'more'} ok/s; server CPU per request ` +
        `${Math.abs((cpuRatio - 1) * 100).toFixed(0)} % ${cpuRatio >= 1 ? 'higher' : 'lower'}).`,
    );
  }
  md.push('', ...verdicts.map((v) => `- ${v}`));
  const body = md.join('\n');
  console.log(`\n${body}`);
  if (!opt['no-write']) {
    const docPath = join(ROOT, 'docs', 'benchmarks.md');
    const doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n';
    writeFileSync(docPath, replaceRegion(doc, 'bench:tls', body, '## TLS on and off (raft-kvs, 3 nodes)'));
    log('wrote docs/benchmarks.md');
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    stopAll().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}
main()
  .catch((e: unknown) => {
    console.error(`[bench:tls] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
