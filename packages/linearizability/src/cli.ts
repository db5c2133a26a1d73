#!/usr/bin/env node
/**
 * `raft-lincheck <history.jsonl> [--time-limit-ms N] [--json]`: checks a history file and prints the verdict.
 * Exit code 0 = linearizable, 1 = not linearizable, 2 = unknown (budget exceeded), 3 = bad input.
 *
 * @packageDocumentation
 */

import { checkHistory, formatResult } from './check.js';
import { readHistoryFile } from './history.js';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const limitAt = args.indexOf('--time-limit-ms');
const timeLimitMs = limitAt >= 0 ? Number(args[limitAt + 1]) : undefined;
if (!file || (timeLimitMs !== undefined && !Number.isFinite(timeLimitMs))) {
  process.stderr.write('usage: raft-lincheck <history.jsonl> [--time-limit-ms N] [--json]\n');
  process.exit(3);
}
try {
  const result = checkHistory(readHistoryFile(file), timeLimitMs === undefined ? {} : { timeLimitMs });
  process.stdout.write(args.includes('--json') ? `${JSON.stringify(result)}\n` : `${formatResult(result)}\n`);
  process.exit(result.verdict === 'linearizable' ? 0 : result.verdict === 'not-linearizable' ? 1 : 2);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(3);
}
