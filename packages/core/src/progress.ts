import type { Index, SnapshotMeta } from './types.js';

/**
 * What a leader knows about one follower's log, and how it is currently feeding it (as in etcd's raft):
 *
 * - `probe`: the leader does not know where the follower's log ends. It sends one AppendEntries at a time and
 *   waits for the answer (or the next heartbeat) before sending another, backing `nextIndex` off using the
 *   follower's conflict hints.
 * - `replicate`: the follower is known to match up to `matchIndex`. The leader streams entries optimistically,
 *   advancing `nextIndex` as it sends, with at most `maxInflightMessages` unacknowledged messages (pipelining).
 * - `snapshot`: the follower needs entries the leader has compacted; a snapshot is being sent in chunks.
 */
export interface Progress {
  /** Highest index known to be replicated (and persisted) on the follower. */
  matchIndex: Index;
  /** Index of the next entry to send. */
  nextIndex: Index;
  /** How the leader feeds this follower (see above). */
  state: 'probe' | 'replicate' | 'snapshot';
  /** In `replicate`: the last index carried by each unacknowledged message, oldest first. */
  inflight: Index[];
  /** In `probe`: a probe is outstanding, so do not send another until an answer or a heartbeat. */
  probeSent: boolean;
  /** Whether the follower answered since the last CheckQuorum round. */
  recentActive: boolean;
  /** The highest heartbeat round (`seq`) the follower has acknowledged in this term. */
  ackedSeq: number;
  /** `matchIndex` at the previous heartbeat, to detect a pipeline stalled by lost messages. */
  matchAtLastTick: Index;
  /** Heartbeats in a row without progress while messages were in flight. */
  stallTicks: number;
  /** In `snapshot`: the transfer under way. */
  snapshot: SnapshotTransfer | null;
}

/** The state of a chunked snapshot transfer to one follower. */
export interface SnapshotTransfer {
  /** The snapshot being sent. */
  meta: SnapshotMeta;
  /** The offset the follower has acknowledged (the next chunk starts here). */
  offset: number;
  /** A chunk was requested from the runtime or sent, and no answer has come yet. */
  waiting: boolean;
  /** The last chunk has been sent. */
  sentLast: boolean;
  /** Heartbeats since the last answer; the chunk is re-requested when this grows. */
  idleTicks: number;
}

/** A fresh progress record for a follower whose log is unknown. */
export function newProgress(nextIndex: Index): Progress {
  return {
    matchIndex: 0,
    nextIndex,
    state: 'probe',
    inflight: [],
    probeSent: false,
    recentActive: false,
    ackedSeq: 0,
    matchAtLastTick: 0,
    stallTicks: 0,
    snapshot: null,
  };
}

/** Switches to `probe`, to resend from `nextIndex` one message at a time. */
export function becomeProbe(pr: Progress, nextIndex: Index): void {
  pr.state = 'probe';
  pr.nextIndex = Math.max(nextIndex, pr.matchIndex + 1);
  pr.inflight.length = 0;
  pr.probeSent = false;
  pr.stallTicks = 0;
  pr.snapshot = null;
}

/** Switches to `replicate`: the follower matched, so entries can stream from `matchIndex + 1`. */
export function becomeReplicate(pr: Progress): void {
  pr.state = 'replicate';
  pr.nextIndex = Math.max(pr.nextIndex, pr.matchIndex + 1);
  pr.inflight.length = 0;
  pr.probeSent = false;
  pr.snapshot = null;
}

/** Records an acknowledgement up to `matchIndex`; returns whether it moved forward. */
export function acknowledge(pr: Progress, matchIndex: Index): boolean {
  if (matchIndex <= pr.matchIndex) return false;
  pr.matchIndex = matchIndex;
  if (pr.nextIndex <= matchIndex) pr.nextIndex = matchIndex + 1;
  let freed = 0;
  while (freed < pr.inflight.length && pr.inflight[freed] <= matchIndex) freed++;
  if (freed > 0) pr.inflight.splice(0, freed);
  return true;
}
