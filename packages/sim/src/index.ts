/**
 * `@raft/sim`: a deterministic simulator for `@raft/core`. A cluster runs in virtual time with a seeded generator
 * driving message loss, delay, duplication and reordering, partitions (including one-way ones), crashes that lose
 * unflushed writes, fsync latency, and random election timeouts; a {@link SafetyChecker} verifies Raft's safety
 * properties on every action. {@link runSchedule} runs one random schedule of client traffic and faults.
 *
 * Browser-safe: nothing here imports `node:` modules.
 *
 * @packageDocumentation
 */
export {
  configKey,
  type NodeView,
  SafetyChecker,
  type SafetyCheckerOptions,
  type SafetyProperty,
  SafetyViolation,
  type ViolationDetails,
} from './checker.js';
export { EventQueue, type Scheduled } from './event-queue.js';
export { DEFAULT_NETWORK, Network, type NetworkOptions } from './network.js';
export { normalizeSeed, Prng, splitmix32 } from './prng.js';
export {
  DEFAULT_MEMBER_WEIGHTS,
  DEFAULT_WEIGHTS,
  drawProfile,
  LIVENESS_ANSWER_MS,
  LIVENESS_COMMIT_MS,
  LIVENESS_LEADER_MS,
  type MemberWeights,
  type Profile,
  runSchedule,
  ScheduleFailure,
  type ScheduleOptions,
  type ScheduleReport,
  type StepWeights,
} from './schedule.js';
export { type PendingWrite, SimDisk, SimStorage, type SimStorageHooks, type StoredSnapshot } from './sim-disk.js';
export { type AppliedRecord, type NodeEvent, SimNode, type SimNodeHost } from './sim-node.js';
export {
  describeMessage,
  formatTraceEvent,
  type ReadOutcome,
  type RequestOutcome,
  Simulation,
  type SimulationOptions,
  type UnansweredRequest,
} from './simulation.js';
export {
  type KvCommand,
  KvStateMachine,
  kvCommandKey,
  makeKvCommand,
  ReferenceMachine,
  type StateMachine,
} from './state-machine.js';
export {
  DEFAULT_TIMING,
  type RaftNodeLike,
  type SimRaftOptions,
  type SimResult,
  type TimingOptions,
  type TraceEvent,
  type TraceKind,
  type UnsafeBugs,
} from './types.js';
