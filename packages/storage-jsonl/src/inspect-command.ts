/**
 * The `raft-storage-inspect` command line, as a function so that other CLIs can embed it.
 *
 * @packageDocumentation
 */

import { isStorageError } from './errors.js';
import { formatInspectReport, type InspectOptions, inspectDataDir } from './inspect.js';

/** Usage text of the inspect command. */
export const INSPECT_USAGE = `usage: raft-storage-inspect <dir> [--entries [from[..to]]] [--json]

Prints a Raft data directory's state: term and vote, snapshot, log range and segment files.
Never modifies the directory.

  --entries [from[..to]]  also print entries (all, from an index, or an inclusive range such as 10..20 or ..20)
                          as JSON lines, commands in their stored form
  --json                  print one JSON object instead of text (entries included in it)

exit status: 0 ok (a torn tail, i.e. a write interrupted by a crash or still in progress, is reported
             but is not an error: opening the directory truncates it); 1 the directory is missing, damaged or
             unreadable (the error names the file and line); 2 usage error`;

/** Where the command writes. */
export interface CommandOutput {
  /** Normal output. */
  out(text: string): void;
  /** Diagnostics. */
  err(text: string): void;
}

function parseRange(s: string): { from?: number; to?: number } | null {
  const m = /^(\d*)(?:\.\.(\d*))?$/.exec(s);
  if (!m || (m[1] === '' && m[2] === undefined)) return null;
  const from = m[1] === '' ? undefined : Number(m[1]);
  // "7" alone means "from 7 on"; "..20" and "7.." leave one end open.
  const to = m[2] === undefined || m[2] === '' ? undefined : Number(m[2]);
  return { from, to };
}

/**
 * Run the inspect command with `args` (without the program name).
 *
 * @returns the process exit status (see {@link INSPECT_USAGE}).
 */
export async function runInspectCommand(
  args: readonly string[],
  io: CommandOutput = { out: (t) => process.stdout.write(`${t}\n`), err: (t) => process.stderr.write(`${t}\n`) },
): Promise<number> {
  let dir: string | undefined;
  let json = false;
  let entries: InspectOptions['entries'];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--json') json = true;
    else if (a === '-h' || a === '--help') {
      io.out(INSPECT_USAGE);
      return 0;
    } else if (a === '--entries') {
      const next = args[i + 1];
      const range = next === undefined ? null : parseRange(next);
      if (range) {
        entries = range;
        i++;
      } else entries = true;
    } else if (a.startsWith('--entries=')) {
      const range = parseRange(a.slice('--entries='.length));
      if (!range) {
        io.err(`invalid entry range: ${a}\n${INSPECT_USAGE}`);
        return 2;
      }
      entries = range;
    } else if (a.startsWith('-')) {
      io.err(`unknown option: ${a}\n${INSPECT_USAGE}`);
      return 2;
    } else if (dir === undefined) dir = a;
    else {
      io.err(`unexpected argument: ${a}\n${INSPECT_USAGE}`);
      return 2;
    }
  }
  if (dir === undefined) {
    io.err(INSPECT_USAGE);
    return 2;
  }
  try {
    const report = await inspectDataDir(dir, { entries });
    if (json) io.out(JSON.stringify(report, null, 2));
    else {
      io.out(formatInspectReport(report));
      if (report.entries) for (const e of report.entries) io.out(JSON.stringify(e));
    }
    if (report.torn) {
      io.err(
        `warning: torn tail in ${report.torn.file} at line ${report.torn.line} (a write interrupted by a crash); ` +
          'opening the directory will truncate it',
      );
    }
    return 0;
  } catch (e) {
    if (isStorageError(e)) {
      if (json)
        io.out(
          JSON.stringify({ error: { code: e.code, message: e.message, file: e.file ?? null, line: e.line ?? null } }),
        );
      io.err(`error: ${e.message}`);
      io.err('the directory was not modified');
      return 1;
    }
    io.err(`error: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
}
