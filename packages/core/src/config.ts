import type { ClusterConfig, NodeId } from './types.js';

/**
 * Membership arithmetic: who votes, who receives the log, and what a quorum is, including joint configurations
 * (the Raft paper's section 6), where every decision needs a majority of C_old **and** of C_new.
 */

/** The empty configuration of a node that has not joined any cluster yet. */
export const EMPTY_CONFIG: ClusterConfig = Object.freeze({ voters: [], learners: [] });

/** Whether `config` is joint, C(old,new). */
export function isJoint(config: ClusterConfig): boolean {
  return config.oldVoters !== undefined;
}

/** Whether `id` votes in `config` (in either half of a joint configuration). */
export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id) || (config.oldVoters?.includes(id) ?? false);
}

/** Every member that should receive the log, in a stable order: voters, old voters, then learners. */
export function members(config: ClusterConfig): NodeId[] {
  const out: NodeId[] = [];
  const add = (id: NodeId) => {
    if (!out.includes(id)) out.push(id);
  };
  config.voters.forEach(add);
  config.oldVoters?.forEach(add);
  config.learners.forEach(add);
  return out;
}

/**
 * The largest value that a majority of `voters` has reached (the "quorum median"). For commit, the values are
 * match indexes; for reads, acknowledged heartbeat rounds. An empty voter set imposes no constraint.
 */
function majorityValue(voters: readonly NodeId[], valueAt: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return Number.POSITIVE_INFINITY;
  // Hot path (every acknowledgement on a leader): the common sizes without allocating and sorting an array.
  if (n === 1) return valueAt(voters[0]);
  if (n === 3) {
    const a = valueAt(voters[0]);
    const b = valueAt(voters[1]);
    const c = valueAt(voters[2]);
    return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c)); // the median
  }
  const values = voters.map(valueAt).sort((a, b) => b - a);
  // A majority of n is floor(n/2)+1 voters, so the value a majority has reached is the (floor(n/2)+1)-th largest.
  // (Indexing with (n-1)>>1 instead is right for odd n only: with 2 or 4 voters it lets a minority decide.)
  return values[values.length >> 1];
}

/**
 * The largest value a quorum of `config` has reached. In a joint configuration that is the smaller of the two
 * majorities, so that both C_old and C_new agree.
 */
export function quorumValue(config: ClusterConfig, valueAt: (id: NodeId) => number): number {
  const incoming = majorityValue(config.voters, valueAt);
  if (config.oldVoters === undefined) return incoming;
  return Math.min(incoming, majorityValue(config.oldVoters, valueAt));
}

/** Whether the nodes for which `has` is true form a quorum of `config`. */
export function hasQuorum(config: ClusterConfig, has: (id: NodeId) => boolean): boolean {
  return quorumValue(config, (id) => (has(id) ? 1 : 0)) >= 1;
}

/**
 * Checks a proposed configuration: at least one voter, no duplicates, learners disjoint from voters.
 * Returns a human-readable problem, or null when the configuration is valid.
 */
export function validateConfig(voters: readonly NodeId[], learners: readonly NodeId[]): string | null {
  if (voters.length === 0) return 'a configuration needs at least one voter';
  if (new Set(voters).size !== voters.length) return 'duplicate voter';
  if (new Set(learners).size !== learners.length) return 'duplicate learner';
  for (const l of learners) if (voters.includes(l)) return `${l} cannot be both a voter and a learner`;
  return null;
}

/** Whether two voter lists hold the same members, in any order. */
export function sameMembers(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}
