/**
 * A small, strict command-line parser: positionals plus `--flag value` / `--flag=value` / boolean `--flag`, with
 * every unknown flag reported as a usage error (so typos never silently change behaviour).
 *
 * @packageDocumentation
 */

/** A usage mistake: printed with the command's help and exit status 2. */
export class UsageError extends Error {
  /** Always `usage`. */
  readonly code = 'usage';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Which flags a command accepts: name → `'string'` (takes a value) or `'boolean'`. */
export type FlagSpec = Readonly<Record<string, 'string' | 'boolean'>>;

/** Parsed arguments. */
export interface ParsedArgs {
  /** Arguments that are not flags, in order. */
  readonly positionals: string[];
  /** Flag values (`true` for boolean flags that were given). */
  readonly flags: Record<string, string | boolean>;
}

/** Parses `argv` against `spec`. `--help`/`-h` is always accepted as a boolean flag named `help`. */
export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      flags.help = true;
      continue;
    }
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option --${name}`);
    if (kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
      flags[name] = true;
    } else if (eq >= 0) {
      flags[name] = a.slice(eq + 1);
    } else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`option --${name} needs a value`);
      flags[name] = v;
      i++;
    }
  }
  return { positionals, flags };
}

/** Reads a flag as a positive integer (or `undefined` when absent). */
export function intFlag(flags: ParsedArgs['flags'], name: string, min = 1): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min) {
    throw new UsageError(`option --${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Reads a flag as a string (or `undefined` when absent). */
export function stringFlag(flags: ParsedArgs['flags'], name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}
