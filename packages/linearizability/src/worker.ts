/**
 * A worker thread of {@link checkOperationsParallel} (parallel.ts): checks its share of the keys and posts the result.
 *
 * @packageDocumentation
 */

import { parentPort, workerData } from 'node:worker_threads';
import { checkOperations } from './check.js';
import type { Job } from './parallel.js';

const job = workerData as Job | undefined;
if (parentPort !== null && job?.ops !== undefined) parentPort.postMessage(checkOperations(job.ops, job.options));
