/**
 * Entry point of the `raft-storage-inspect` executable (tsup adds the `#!/usr/bin/env node` line).
 *
 * @packageDocumentation
 */

import { runInspectCommand } from './inspect-command.js';

runInspectCommand(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (e: unknown) => {
    process.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
