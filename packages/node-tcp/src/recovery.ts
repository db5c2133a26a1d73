/**
 * Reporting what the storage repaired when it was opened: one warning in the log, and the `recovery` field of
 * `GetServerState`. Kept out of server.ts so that the server only calls {@link reportRecovery} once at start.
 *
 * @packageDocumentation
 */

import type { Logger } from '@raft/runtime';
import { formatRecoveryRepair, type RecoveryRepair, type RecoveryReport } from '@raft/storage-jsonl';

/** The `recovery` field of `GetServerState`: what opening the data directory repaired when this server started. */
export interface ServerRecovery {
  /**
   * Every change recovery made (a torn write truncated, a segment header rewritten, a leftover file deleted), in
   * order; empty after a clean shutdown, or when the storage given to the server does not report repairs.
   */
  repaired: RecoveryRepair[];
}

/**
 * Log at `warn` what opening the storage repaired (one line, nothing if nothing was repaired), and return it for
 * `GetServerState`.
 */
export function reportRecovery(storage: { readonly recovery?: RecoveryReport }, log: Logger): ServerRecovery {
  const repaired = (storage.recovery?.repaired ?? []).map((r) => ({ ...r }));
  if (repaired.length > 0)
    log.warn(`storage recovery repaired the data directory: ${repaired.map(formatRecoveryRepair).join('; ')}`, {
      repaired,
    });
  return { repaired };
}

/** A copy for one `GetServerState` answer (callers of the in-process API may modify what they get). */
export function copyRecovery(r: ServerRecovery): ServerRecovery {
  return { repaired: r.repaired.map((x) => ({ ...x })) };
}
