/**
 * Checking keys in worker threads (Node only: the CLI uses it; the library's entry point does not import it, so it
 * stays free of node:worker_threads). Keys are independent, so each worker (worker.ts) checks a share of them with
 * {@link checkOperations} and the main thread merges the reports. node:worker_threads is imported only when workers
 * are started: loading it costs a few ms of the CLI's start-up, which a small history never repays.
 *
 * @packageDocumentation
 */

import { availableParallelism } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { type CheckOptions, type CheckResult, checkOperations, type KeyReport, resultOf } from './check.js';
import type { Operation } from './types.js';

/** Below this many operations a worker's start-up (tens of ms) costs more than it saves. */
export const PARALLEL_MIN_OPS = 20_000;

/** What a worker receives (see worker.ts). */
export interface Job {
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
  return resultOf(
    ops.length,
    counts,
    keys,
    keys.reduce((s, k) => s + k.steps, 0),
    elapsedMs,
  );
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
  const started = Date.now();
  const shares = threads > 1 && ops.length >= minOps ? partitionKeys(ops, threads) : [];
  if (shares.length < 2) return checkOperations(ops, options);
  const { Worker } = await import('node:worker_threads');
  // The worker is the sibling file worker.ts / worker.js / worker.cjs, whichever this module was loaded as (the
  // sources under tests, the bundled CLI otherwise). From the TypeScript sources it first registers tsx's loader.
  const self = fileURLToPath(import.meta.url);
  const workerFile = join(dirname(self), `worker${extname(self)}`);
  const start = (job: Job): Worker =>
    self.endsWith('.ts')
      ? new Worker(
          `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(workerFile).href)}); })`,
          { eval: true, workerData: job },
        )
      : new Worker(workerFile, { workerData: job });
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
  return mergeResults(ops, parts, Date.now() - started);
}
