/**
 * `@raft/core`: a pure, deterministic Raft node. Feed it inputs (method calls), drain its actions, perform them.
 * See docs/core.md for the model, the durability rules and a complete driver loop.
 *
 * @packageDocumentation
 */
export { EMPTY_CONFIG, hasQuorum, isJoint, isVoter, members, quorumValue } from './config.js';
export { err, ok, RaftError, type Result } from './errors.js';
export { type PersistedState, type ProgressView, RaftNode } from './node.js';
export type * from './types.js';
