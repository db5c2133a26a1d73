/**
 * `@raft/testkit`: the small helpers the workspace's tests and test tools (the fault tester, the cluster benchmark)
 * share, written once: free loopback ports, `sleep` and a bounded `waitFor`. Private: never published, so a
 * published package may list it only under `devDependencies`.
 *
 * @packageDocumentation
 */

import { createServer, type Server } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Resolves after `ms` milliseconds (Node's `setTimeout` from `node:timers/promises`).
 *
 * @param ms - how long to wait, in milliseconds
 */
export function sleep(ms: number): Promise<void> {
  return delay(ms);
}

/**
 * Finds `n` free TCP ports on 127.0.0.1 by binding `n` servers to port 0 at once (so the ports are distinct), reading
 * their ports and closing them. Another process may take a port before the caller binds it: tests that start
 * servers on these ports bind them soon after.
 *
 * @param n - how many ports (0 or more)
 * @returns `n` distinct port numbers
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => {
      const a = s.address();
      if (a === null || typeof a === 'string') throw new Error('a TCP server on 127.0.0.1 has no port');
      return a.port;
    });
  } finally {
    await Promise.all(
      servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))),
    );
  }
}

/** One free TCP port on 127.0.0.1 (see {@link freePorts}). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port;
}

/** Options of {@link waitFor} besides the timeout and the description. */
export interface WaitForOptions {
  /** Milliseconds between two checks. Default 20. */
  readonly intervalMs?: number;
  /**
   * When true, a check that throws (or rejects) counts as "not yet", and the timeout error names the last such
   * error: for checks that talk to a server that may not be up yet. When false (the default), the error ends the
   * wait at once.
   */
  readonly retryErrors?: boolean;
}

/** Thrown by {@link waitFor} when its condition did not hold in time. */
export class WaitTimeoutError extends Error {
  /** Always `WAIT_TIMEOUT`. */
  readonly code = 'WAIT_TIMEOUT';
  /** The last error the check threw, with `retryErrors`; otherwise undefined. */
  readonly lastError: unknown;

  /**
   * @param message - what was waited for, and for how long
   * @param lastError - the last error the check threw, if any
   */
  constructor(message: string, lastError?: unknown) {
    super(message);
    this.name = 'WaitTimeoutError';
    this.lastError = lastError;
  }
}

/** The values of `T` that {@link waitFor} accepts as "done". */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Calls `check` every `intervalMs` until it returns a truthy value (or a promise of one), and returns that value.
 * Bounded in time: once `timeoutMs` has passed with no truthy value it throws {@link WaitTimeoutError}. `check` runs
 * at least once, and once more after the deadline, so a slow machine's last chance is not lost to the sleep.
 *
 * @example
 * ```ts
 * await waitFor(() => server.role === 'leader', 5000, 'a leader');
 * const value = await waitFor(() => fetchValue(), 20_000, 'the value', { intervalMs: 100, retryErrors: true });
 * ```
 *
 * @param check - the condition; a truthy result ends the wait
 * @param timeoutMs - how long to keep trying, in milliseconds. Default 10 000.
 * @param what - what is waited for, named in the timeout error. Default `condition`.
 * @param options - the polling interval, and whether errors of `check` are retried
 * @returns the first truthy value `check` returned
 * @throws WaitTimeoutError when `timeoutMs` passed; with `retryErrors` false, whatever `check` threw
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
  options: WaitForOptions = {},
): Promise<Truthy<T>> {
  const intervalMs = options.intervalMs ?? 20;
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as Truthy<T>;
    } catch (e) {
      if (!options.retryErrors) throw e;
      lastError = e;
    }
    if (Date.now() > end) {
      const cause =
        lastError === undefined ? '' : `: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`, lastError);
    }
    await delay(intervalMs);
  }
}
