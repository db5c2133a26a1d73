/** Latency percentiles and the report format shared by every target. */

/** Latency summary in milliseconds, over successful requests only. */
export interface LatencySummary {
  /** Fastest successful request. Every field is 0 when no request succeeded. */
  readonly min: number;
  /** Arithmetic mean over the successful requests (pulled up by the tail, unlike `p50`). */
  readonly mean: number;
  /** Median. Percentiles are nearest-rank: each is an actual sample, never interpolated. */
  readonly p50: number;
  /** 90th percentile: at least 90 % of successful requests took at most this long. */
  readonly p90: number;
  /** 99th percentile: at most 1 successful request in 100 took longer. */
  readonly p99: number;
  /** 99.9th percentile; with fewer than 1,000 samples it equals `max`. */
  readonly p999: number;
  /** Slowest successful request (failed and timed-out requests are not sampled). */
  readonly max: number;
}

/**
 * The nearest-rank percentile of an ascending array: the smallest sample such that at least `q` of all samples are
 * less than or equal to it. Returns 0 for an empty array.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const rank = Math.ceil(q * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))];
}

/** Summarises latency samples (milliseconds). Sorts `samples` in place. */
export function summarize(samples: Float64Array): LatencySummary {
  samples.sort();
  const n = samples.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += samples[i];
  return {
    min: n ? samples[0] : 0,
    mean: n ? sum / n : 0,
    p50: percentile(samples, 0.5),
    p90: percentile(samples, 0.9),
    p99: percentile(samples, 0.99),
    p999: percentile(samples, 0.999),
    max: n ? samples[n - 1] : 0,
  };
}

/** What one load run measured. Throughput counts successful requests only. */
export interface LoadReport {
  /** The transport's name: `jsonrpc`, `etcd-grpc` or `etcd-gateway`. */
  readonly target: string;
  /** The {@link WorkloadKind}: `command`, `query`, `local` or `mix`. */
  readonly workload: string;
  /** The servers as `host:port`, in the order given; slot k talked to server k % S. */
  readonly servers: readonly string[];
  /** Requests asked for (excluding warm-up). */
  readonly count: number;
  /** Requests kept in flight at once (C): closed-loop virtual clients, each sending on its previous answer. */
  readonly concurrency: number;
  /** Bytes per written value (ASCII strings), or 0 for random u32 numbers (see {@link WorkloadOptions.valueSize}). */
  readonly valueSize: number;
  /** The PRNG seed used (given or drawn at random): pass it back to replay the same keys and values. */
  readonly seed: number;
  /** Requests that got an answer or failed (equals `count` unless the run hit its time limit). */
  readonly completed: number;
  /** Measured requests answered successfully (a JSON-RPC `result`, grpc-status 0, or HTTP 200 from the gateway). */
  readonly ok: number;
  /** Measured requests that failed: error answers, closed connections and timeouts (`completed - ok`). */
  readonly errors: number;
  /** Errors by kind (message with numbers elided), most frequent first when printed. */
  readonly errorKinds: Readonly<Record<string, number>>;
  /** Wall-clock seconds of the measured phase, first send to last completion (connecting and warm-up excluded). */
  readonly elapsedSec: number;
  /** Successful requests per second. */
  readonly throughput: number;
  /** Latency of the successful measured requests in ms, from hand-off to the transport to the completion callback. */
  readonly latencyMs: LatencySummary;
  /** CPU time this client process spent (user + system), to tell a client-bound run from a server-bound one. */
  readonly clientCpuSec: number;
  /**
   * This client process's CPU time per successful measured request, in microseconds (0 when none succeeded): what a
   * transport costs the machine the servers share, comparable across targets.
   */
  readonly clientCpuMicrosPerOp: number;
  /** True when the run stopped at its time limit before sending every request. */
  readonly truncated: boolean;
}

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** A short human-readable table of one or more reports (one row each). */
export function formatTable(reports: readonly LoadReport[]): string {
  const head = [
    'target',
    'workload',
    'C',
    'n',
    'ok/s',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'p99.9 ms',
    'max ms',
    'client µs/op',
    'errors',
  ];
  const rows = reports.map((r) => [
    r.target,
    r.workload + (r.valueSize ? ` ${r.valueSize}B` : ''),
    String(r.concurrency),
    String(r.completed),
    fmt(r.throughput, 0),
    fmt(r.latencyMs.p50),
    fmt(r.latencyMs.p90),
    fmt(r.latencyMs.p99),
    fmt(r.latencyMs.p999),
    fmt(r.latencyMs.max),
    fmt(r.clientCpuMicrosPerOp, 1),
    String(r.errors),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  for (const r of reports) {
    const kinds = Object.entries(r.errorKinds).sort((a, b) => b[1] - a[1]);
    for (const [kind, n] of kinds.slice(0, 5)) out.push(`  ${r.target} ${r.workload}: ${n} x ${kind}`);
  }
  return out.join('\n');
}
