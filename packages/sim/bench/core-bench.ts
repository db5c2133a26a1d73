/**
 * `pnpm bench:core`: committed entries per second of a 3-node `@raft/core` cluster in memory. No I/O and no
 * serialization: messages are handed from node to node directly, appends count as durable at once, applied
 * entries are only counted. So the figure is the core's own cost per entry (log, replication, commit, apply
 * bookkeeping) and the ceiling a real runtime could approach.
 *
 * Writes the results between the `bench:core` markers of docs/benchmarks.md. Node-only (a bench script, not part
 * of the package's browser-safe sources).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Action, type Message, RaftNode } from '@raft/core';

type Cmd = number;

interface Cluster {
  nodes: Map<string, RaftNode<Cmd>>;
  inbox: Message<Cmd>[];
  applied: number;
}

/** Performs one node's actions: appends are durable at once, sends go to the shared inbox, applies are counted. */
function drain(c: Cluster, node: RaftNode<Cmd>): void {
  for (;;) {
    const actions: Action<Cmd>[] = node.takeActions();
    if (actions.length === 0) return;
    let durable: { index: number; term: number } | null = null;
    for (const a of actions) {
      switch (a.type) {
        case 'appendEntries': {
          const last = a.entries[a.entries.length - 1];
          durable = { index: last.index, term: last.term };
          break;
        }
        case 'send':
          c.inbox.push(a.message);
          break;
        case 'apply':
          if (node.role === 'leader') c.applied += a.entries.length;
          break;
        default:
          break;
      }
    }
    if (durable !== null) node.persisted(durable.index, durable.term);
  }
}

/** Delivers every message (and those they cause) until the cluster is quiet. */
function settle(c: Cluster): void {
  while (c.inbox.length > 0) {
    const batch = c.inbox;
    c.inbox = [];
    for (const m of batch) {
      const to = c.nodes.get(m.to)!;
      to.handleMessage(m);
      drain(c, to);
    }
  }
}

function makeCluster(): Cluster {
  const ids = ['n1', 'n2', 'n3'];
  const c: Cluster = { nodes: new Map(), inbox: [], applied: 0 };
  for (const id of ids) {
    const n = RaftNode.start<Cmd>(id, { maxEntriesPerMessage: 4096, maxInflightMessages: 64 });
    c.nodes.set(id, n);
    n.createCluster(ids);
    drain(c, n);
  }
  const first = c.nodes.get('n1')!;
  first.handleTimeout();
  drain(c, first);
  settle(c);
  if (first.role !== 'leader') throw new Error('n1 did not become leader');
  return c;
}

/**
 * Proposes `batch` commands per round (one drain, so they travel in one AppendEntries per follower) and settles
 * the round, for `ms` milliseconds. Returns committed entries per second as seen by the leader's apply actions.
 */
function run(batch: number, ms: number): { perSecond: number } {
  const c = makeCluster();
  const leader = c.nodes.get('n1')!;
  // Compact now and then so the log (and memory) stays bounded, as a real runtime's snapshots would.
  const compactEvery = 1 << 16;
  let nextCompact = leader.commitIndex + compactEvery;
  const startApplied = c.applied;
  const t0 = performance.now();
  let t = t0;
  let rounds = 0;
  while (t - t0 < ms) {
    for (let i = 0; i < batch; i++) leader.propose(i);
    drain(c, leader);
    settle(c);
    if (++rounds % 64 === 0) t = performance.now();
    if (leader.commitIndex >= nextCompact) {
      for (const n of c.nodes.values()) n.compactLog(n.snapshotMeta(n.lastApplied));
      nextCompact = leader.commitIndex + compactEvery;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: (c.applied - startApplied) / seconds };
}

function main(): void {
  const ms = Number(process.env.RAFT_BENCH_MS ?? 2000);
  run(256, 500); // warm-up (JIT)
  run(1, 300);
  // The machine is shared, so each figure is the median of several runs, with the range shown next to it.
  const repeats = Math.max(1, Number(process.env.RAFT_BENCH_REPEATS ?? 3));
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const results = [1, 256].map((batch) => {
    const runs = Array.from({ length: repeats }, () => run(batch, ms).perSecond).sort((x, y) => x - y);
    const r = { batch, median: runs[runs.length >> 1], min: runs[0], max: runs[runs.length - 1] };
    console.log(
      `batch ${String(batch).padStart(3)}: ${fmt(r.median)} committed entries/s (median of ${repeats}; ${fmt(r.min)}–${fmt(r.max)})`,
    );
    return r;
  });
  // RAFT_BENCH_WRITE=0 measures without touching the docs (for profiling runs).
  if (process.env.RAFT_BENCH_WRITE === '0') return;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpu}, Node ${process.version}, by \`pnpm bench:core\``,
    `(packages/sim/bench/core-bench.ts: 3 nodes in one process, messages handed over directly, appends durable at`,
    `once, each round = propose a batch, drain, deliver until quiet; median of ${repeats} runs of ${ms / 1000} s each`,
    'after a warm-up).',
    '',
    '| proposals per batch | committed entries/s (median) | range over the runs |',
    '|---:|---:|---:|',
    ...results.map((r) => `| ${r.batch} | ${fmt(r.median)} | ${fmt(r.min)} – ${fmt(r.max)} |`),
    '',
    'What bounds it (`node --cpu-prof` on an esbuild bundle of this script, batch 256): no I/O, so allocation and',
    'bookkeeping, spread along the path: the propose loop (a new entry object per command, appended to the log',
    'and to the coalesced append action) about 20%, garbage collection about 15%, draining actions (`takeActions`)',
    'about 10%, the followers appending (`onAppendEntries`) about 8%, then message slices, acknowledgements and',
    'the driver. Two fixes came out of profiling: the log used to be one array, and appending fresh objects to a',
    'large array gets slower as it grows (the garbage collector tracks its old-to-young pointers; a 64k-entry log',
    'ran at a quarter of the speed of a 4k-entry one), so the log is now chunked in arrays of 4,096 entries, which',
    'doubled the batched figure; and the quorum is computed without allocating and sorting for 1 and 3 voters.',
    'With batches of 1 the cost is per round, not per entry: every entry pays a whole propose, drain,',
    'AppendEntries, response and commit round with its action arrays and message objects. The development machine',
    'is shared with other work, so figures move with its load (hence the median and the range).',
  ];
  const here = dirname(fileURLToPath(import.meta.url));
  const file = resolve(here, '../../../docs/benchmarks.md');
  const doc = readFileSync(file, 'utf8');
  const start = '<!-- bench:core:start -->';
  const end = '<!-- bench:core:end -->';
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`markers ${start} / ${end} not found in ${file}`);
  writeFileSync(file, `${doc.slice(0, a + start.length)}\n${lines.join('\n')}\n${doc.slice(b)}`);
  console.log(`wrote ${file}`);
}

main();
