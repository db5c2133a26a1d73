#!/usr/bin/env node
/**
 * `raft-fault-tester`: one fault-injection run against a real raft-kvs cluster (see docs/fault-testing.md).
 *
 * Environment: `RAFT_FAULT_SECONDS` (default 60), `RAFT_FAULT_NODES` (3 or 5, default 3), `RAFT_FAULT_SEED`
 * (default random), `RAFT_FAULT_DIR` (default artifacts/fault-tester/<time>-seed<seed> in the repository),
 * `RAFT_FAULT_WORKERS` (default 5). Exit status 0 when every check passed, 1 otherwise.
 *
 * @packageDocumentation
 */
import { join } from 'node:path';
import { REPO_ROOT } from './cluster.js';
import { runFaultTest } from './run.js';
import { formatSummary } from './summary.js';

const env = (name: string, fallback: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`${name} must be a non-negative integer (got ${v})`);
    process.exit(2);
  }
  return n;
};

const seed = env('RAFT_FAULT_SEED', Math.floor(Math.random() * 2 ** 31));
const nodes = env('RAFT_FAULT_NODES', 3);
const faultSeconds = env('RAFT_FAULT_SECONDS', 60);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const dir = process.env.RAFT_FAULT_DIR ?? join(REPO_ROOT, 'artifacts', 'fault-tester', `${stamp}-seed${seed}`);
const summary = await runFaultTest({
  nodes,
  faultSeconds,
  seed,
  dir,
  workers: env('RAFT_FAULT_WORKERS', 5),
  log: (m) => console.log(m),
});
console.log(formatSummary(summary));
process.exit(summary.passed ? 0 : 1);
