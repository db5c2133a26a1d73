/**
 * Argument checks and defensive copies shared by the storage's write and read paths: a caller's hard state,
 * snapshot metadata and configurations are validated before anything is queued and copied so that later changes
 * by the caller cannot alter what is written.
 *
 * @packageDocumentation
 */

import type { ClusterConfig, HardState, SnapshotMeta } from '@raft/core';
import { StorageError } from './errors.js';
import { isClusterConfig } from './format.js';

/** A non-negative safe integer (an index, a term, an offset). */
export function isNat(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** The `INVALID_ARGUMENT` error of a call that was refused before anything was queued. */
export function invalid(message: string): StorageError {
  return new StorageError('INVALID_ARGUMENT', message);
}

/** Why `hs` cannot be saved, or null. */
export function checkHardState(hs: HardState): StorageError | null {
  if (!hs || !isNat(hs.term)) return invalid('hard state term must be a non-negative integer');
  if (!(hs.votedFor === null || typeof hs.votedFor === 'string')) return invalid('votedFor must be a string or null');
  return null;
}

/** Why `meta` cannot describe a snapshot, or null. */
export function checkSnapshotMeta(meta: SnapshotMeta): StorageError | null {
  if (!meta || !isNat(meta.index) || !isNat(meta.term)) return invalid('snapshot index and term must be integers');
  if (!isClusterConfig(meta.config)) return invalid('snapshot config must be a cluster configuration');
  return null;
}

/** A copy of a configuration sharing no arrays with the original. */
export function copyConfig(c: ClusterConfig): ClusterConfig {
  return c.oldVoters === undefined
    ? { voters: [...c.voters], learners: [...c.learners] }
    : { voters: [...c.voters], learners: [...c.learners], oldVoters: [...c.oldVoters] };
}

/** A copy of snapshot metadata sharing nothing with the original. */
export function copyMeta(m: SnapshotMeta): SnapshotMeta {
  return { index: m.index, term: m.term, config: copyConfig(m.config) };
}
