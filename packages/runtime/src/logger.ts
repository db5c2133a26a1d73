/**
 * The logging interface the runtime and the server write to, and the default implementations.
 *
 * @packageDocumentation
 */

/**
 * Where the server reports what happened. `fields` are structured details (peer address, error code, ...).
 * Anything with these four methods works (pino, console, a test spy).
 */
export interface Logger {
  /** Chatty diagnostics (connection attempts and the like). */
  debug?(message: string, fields?: Record<string, unknown>): void;
  /** Normal lifecycle events (started, leader elected, snapshot taken). */
  info(message: string, fields?: Record<string, unknown>): void;
  /** Something was refused or dropped (a bad peer, an oversized frame) but the server carries on. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** The server cannot do its job (storage failed). */
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Severity threshold of {@link consoleLogger}. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/**
 * A logger writing one line per event to stderr, at `level` and above (default `warn`), prefixed with `name`
 * (usually the server's address).
 */
export function consoleLogger(level: LogLevel = 'warn', name = ''): Logger {
  const min = LEVELS[level];
  const out = (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    const extra = fields === undefined ? '' : ` ${safeJson(fields)}`;
    // console.error, not process.stderr: the runtime runs in browsers too.
    console.error(`${new Date().toISOString()} ${lvl.toUpperCase()} ${name ? `[${name}] ` : ''}${message}${extra}`);
  };
  return { debug: out('debug'), info: out('info'), warn: out('warn'), error: out('error') };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x) => (x instanceof Error ? x.message : typeof x === 'bigint' ? String(x) : x));
  } catch {
    return String(v);
  }
}
