/**
 * Checking keys in worker threads (Node only: the CLI uses it; the library's entry point does not import it, so it
 * stays free of node:worker_threads). Keys are independent, so each worker checks a share of them with
 * {@link checkOperations} and the main thread merges the reports.
 *
 * @packageDocumentation
 */

import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type CheckOptions, type CheckResult, checkOperations, type KeyReport, type Verdict } from './check.js';
import type { Operation } from './types.js';

/** Below this many operations a worker's start-up (tens of ms) costs more than it saves. */
export const PARALLEL_MIN_OPS = 20_000;

/** What a worker receives. */
interface Job {
  readonly ops: readonly Operation[];
  readonly options: CheckOptions;
}

/**
 * Splits keys into `parts` shares of about equal operation counts (largest keys first, each to the lightest share).
 */
export function partitionKeys(ops: readonly Operation[], parts: number): Operation[][] {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, (list = []));
    list.push(op);
  }
  const shares: Operation[][] = Array.from({ length: parts }, () => []);
  for (const list of [...byKey.values()].sort((a, b) => b.length - a.length)) {
    let lightest = 0;
    for (let i = 1; i < parts; i++) if (shares[i].length < shares[lightest].length) lightest = i;
    for (const op of list) shares[lightest].push(op);
  }
  return shares.filter((s) => s.length > 0);
}

/** Merges the results of disjoint key sets (reports sorted by key, the first failing key's witness). */
export function mergeResults(ops: readonly Operation[], parts: readonly CheckResult[], elapsedMs: number): CheckResult {
  const counts = { ok: 0, fail: 0, info: 0 };
  for (const op of ops) counts[op.status]++;
  const keys: KeyReport[] = parts.flatMap((p) => p.keys).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const failed = keys.find((k) => k.verdict === 'not-linearizable');
  const verdict: Verdict = failed
    ? 'not-linearizable'
    : keys.some((k) => k.verdict === 'unknown')
      ? 'unknown'
      : 'linearizable';
  return {
    verdict,
    ops: ops.length,
    counts,
    keys,
    steps: keys.reduce((s, k) => s + k.steps, 0),
    elapsedMs,
    ...(failed?.witness ? { witness: failed.witness } : {}),
  };
}

/**
 * Checks like {@link checkOperations}, with the keys spread over up to `threads` worker threads (default: the
 * available parallelism). Small histories, single-key histories and `threads` 1 are checked on this thread.
 */
export async function checkOperationsParallel(
  ops: readonly Operation[],
  options: CheckOptions = {},
  threads = availableParallelism(),
  minOps = PARALLEL_MIN_OPS,
): Promise<CheckResult> {
  const started = performance.now();
  const shares = threads > 1 && ops.length >= minOps ? partitionKeys(ops, threads) : [];
  if (shares.length < 2) return checkOperations(ops, options);
  const self = fileURLToPath(import.meta.url);
  // Run from the TypeScript sources (tests), a worker first registers tsx's loader, then imports this module.
  const start = (job: Job): Worker =>
    self.endsWith('.ts')
      ? new Worker(
          `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`,
          { eval: true, workerData: job },
        )
      : new Worker(self, { workerData: job });
  const parts = await Promise.all(
    shares.map(
      (share) =>
        new Promise<CheckResult>((resolve, reject) => {
          const job: Job = { ops: share, options };
          const w = start(job);
          w.once('message', (r: CheckResult) => {
            resolve(r);
            void w.terminate();
          });
          w.once('error', reject);
        }),
    ),
  );
  return mergeResults(ops, parts, performance.now() - started);
}

// The worker's side: this same module, started with a Job.
if (!isMainThread && parentPort !== null && (workerData as Job | undefined)?.ops !== undefined) {
  const job = workerData as Job;
  parentPort.postMessage(checkOperations(job.ops, job.options));
}
