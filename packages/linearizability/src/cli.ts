#!/usr/bin/env node
/**
 * `raft-lincheck <history.jsonl> [--time-limit-ms N] [--json]`: checks a history file and prints the verdict.
 * Exit status: see {@link USAGE}.
 *
 * @packageDocumentation
 */

import { writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatResult } from './check.js';
import { readOperationsFile } from './history.js';
import { checkOperationsParallel, PARALLEL_MIN_OPS } from './parallel.js';

const USAGE = `usage: raft-lincheck <history.jsonl> [--time-limit-ms N] [--threads N] [--json]

Checks a history file (docs/history-format.md) for linearizability and prints the verdict, the counts and, for
a history that is not linearizable, a witness.

  --time-limit-ms N   give up after N ms of search (the verdict is then "unknown"; default: no limit)
  --threads N         check keys in up to N worker threads (default 1: reading the file dominates, and the
                      workers' start-up and copying the operations to them cost more than they saved in our
                      measurements; histories under ${PARALLEL_MIN_OPS} operations always use one thread)
  --json              print the result as one JSON object
  -h, --help          print this help

exit status: 0 linearizable; 1 not linearizable; 2 usage error; 3 bad input (unreadable or malformed history);
             4 unknown (the time limit was reached)`;

/**
 * Writes all of `text` to file descriptor 1 or 2 synchronously. Not process.stdout: creating that stream loads the
 * stream and socket modules, which was a large part of the start-up on small histories. A pipe set non-blocking
 * by whoever holds its other end can refuse a write (EAGAIN); then the write is retried.
 */
function write(fd: 1 | 2, text: string): void {
  let buf = Buffer.from(text);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

function usageError(message: string): never {
  write(2, `raft-lincheck: ${message}\n${USAGE}\n`);
  process.exit(2);
}

/** The parsed command line; a usage error exits with status 2. */
function parse() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      options: {
        'time-limit-ms': { type: 'string' },
        threads: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    // node:util's parseArgs throws a TypeError with a code for an unknown option or a missing value.
    return usageError((e as Error).message);
  }
}
void main();

async function main(): Promise<void> {
  const { values, positionals } = parse();
  if (values.help) {
    write(1, `${USAGE}\n`);
    process.exit(0);
  }
  const [file, ...extra] = positionals;
  if (file === undefined) usageError('no history file given');
  if (extra.length > 0) usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const limitText = values['time-limit-ms'];
  const timeLimitMs = limitText === undefined ? undefined : Number(limitText);
  if (timeLimitMs !== undefined && !(Number.isFinite(timeLimitMs) && timeLimitMs > 0)) {
    usageError(`--time-limit-ms must be a positive number, got ${JSON.stringify(limitText)}`);
  }
  const threadsText = values.threads;
  const threads = threadsText === undefined ? 1 : Number(threadsText);
  if (!(Number.isInteger(threads) && threads >= 1)) {
    usageError(`--threads must be a positive integer, got ${JSON.stringify(threadsText)}`);
  }
  try {
    // Keys are checked in worker threads when the history is large enough to repay their start-up.
    const ops = readOperationsFile(file);
    const result = await checkOperationsParallel(ops, timeLimitMs === undefined ? {} : { timeLimitMs }, threads);
    write(1, values.json ? `${JSON.stringify(result)}\n` : `${formatResult(result)}\n`);
    process.exit(result.verdict === 'linearizable' ? 0 : result.verdict === 'not-linearizable' ? 1 : 4);
  } catch (e) {
    write(2, `raft-lincheck: ${(e as Error).message}\n`);
    process.exit(3);
  }
}
