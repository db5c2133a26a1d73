#!/usr/bin/env node
/**
 * `raft-fault-tester`: one fault-injection run against a real raft-kvs cluster (see docs/fault-testing.md). Options
 * and environment variables: see {@link USAGE}.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './cluster.js';
import { runFaultTest } from './run.js';
import { formatSummary } from './summary.js';

const USAGE = `usage: raft-fault-tester [--seconds S] [--nodes 3|5] [--seed N] [--dir DIR] [--workers W]

Starts a raft-kvs cluster on 127.0.0.1, runs clients while a nemesis crashes, pauses and partitions nodes and
changes membership, then heals, checks convergence and checks the history for linearizability
(docs/fault-testing.md). Each option may also be given by an environment variable; the option wins.

  --seconds S    seconds of faults (RAFT_FAULT_SECONDS, default 60)
  --nodes N      3 or 5 (RAFT_FAULT_NODES, default 3)
  --seed N       nemesis and client seed (RAFT_FAULT_SEED, default random; printed)
  --dir DIR      run directory (RAFT_FAULT_DIR, default artifacts/fault-tester/<time>-seed<seed>)
  --workers W    concurrent clients (RAFT_FAULT_WORKERS, default 5)
  --token-file F run with client authentication: the nodes accept the token in F (role admin) and every
                 client uses it (RAFT_TOKEN: the token itself; default none)
  -h, --help     print this help

exit status: 0 every check passed; 1 a check failed; 2 usage error`;

function usageError(message: string): never {
  console.error(`raft-fault-tester: ${message}\n${USAGE}`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      options: {
        seconds: { type: 'string' },
        nodes: { type: 'string' },
        seed: { type: 'string' },
        dir: { type: 'string' },
        workers: { type: 'string' },
        'token-file': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    // node:util's parseArgs throws a TypeError with a code for an unknown option, a positional or a missing value.
    return usageError((e as Error).message);
  }
}
const { values } = parse();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

/** The option's value, else the environment variable's, else `fallback`; a non-negative integer. */
const int = (flag: keyof typeof values, name: string, fallback: number): number => {
  const v = (values[flag] as string | undefined) ?? process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) usageError(`--${flag} (${name}) must be a non-negative integer (got ${v})`);
  return n;
};

const seed = int('seed', 'RAFT_FAULT_SEED', Math.floor(Math.random() * 2 ** 31));
const nodes = int('nodes', 'RAFT_FAULT_NODES', 3);
if (nodes !== 3 && nodes !== 5) usageError(`--nodes (RAFT_FAULT_NODES) must be 3 or 5 (got ${nodes})`);
const faultSeconds = int('seconds', 'RAFT_FAULT_SECONDS', 60);
const workers = int('workers', 'RAFT_FAULT_WORKERS', 5);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const dir =
  values.dir ?? process.env.RAFT_FAULT_DIR ?? join(REPO_ROOT, 'artifacts', 'fault-tester', `${stamp}-seed${seed}`);
/** The client token: from --token-file (never argv: ps shows it to every local user), else $RAFT_TOKEN, else none. */
function readToken(): string | undefined {
  const file = values['token-file'];
  let t = process.env.RAFT_TOKEN;
  if (file !== undefined) {
    try {
      t = readFileSync(file, 'utf8');
    } catch (e) {
      usageError(`cannot read --token-file ${file}: ${(e as Error).message}`);
    }
  }
  return t === undefined || t.trim() === '' ? undefined : t.trim();
}
const token = readToken();
const summary = await runFaultTest({ nodes, faultSeconds, seed, dir, workers, token, log: (m) => console.log(m) });
console.log(formatSummary(summary));
process.exit(summary.passed ? 0 : 1);
