/** Latency percentiles and the report format shared by every target. */

/** Latency summary in milliseconds, over successful requests only. */
export interface LatencySummary {
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
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
  /** `jsonrpc` or `etcd`. */
  readonly target: string;
  readonly workload: string;
  readonly servers: readonly string[];
  /** Requests asked for (excluding warm-up). */
  readonly count: number;
  readonly concurrency: number;
  readonly valueSize: number;
  readonly seed: number;
  /** Requests that got an answer or failed (equals `count` unless the run hit its time limit). */
  readonly completed: number;
  readonly ok: number;
  readonly errors: number;
  /** Errors by kind (message with numbers elided), most frequent first when printed. */
  readonly errorKinds: Readonly<Record<string, number>>;
  readonly elapsedSec: number;
  /** Successful requests per second. */
  readonly throughput: number;
  readonly latencyMs: LatencySummary;
  /** CPU time this client process spent (user + system), to tell a client-bound run from a server-bound one. */
  readonly clientCpuSec: number;
  /** True when the run stopped at its time limit before sending every request. */
  readonly truncated: boolean;
}

const fmt = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** A short human-readable table of one or more reports (one row each). */
export function formatTable(reports: readonly LoadReport[]): string {
  const head = ['target', 'workload', 'C', 'n', 'ok/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors'];
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
