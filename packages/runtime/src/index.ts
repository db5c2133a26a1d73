/**
 * `@raft/runtime`: the one driver that carries out a `@raft/core` node's actions against a storage, a transport, a
 * clock and the user's Machine. The TCP server (`@raft/node-tcp`), the simulator (`@raft/sim`) and the playground
 * all run it. It imports no Node API. See docs/architecture.md.
 *
 * @packageDocumentation
 */

export { type Deadline, Deadlines } from './deadlines.js';
export { ErrorCode, type ErrorCodeValue, errors, RpcError, type RpcErrorData } from './errors.js';
export {
  type Clock,
  type ForwardOp,
  type ForwardReply,
  type ForwardRequest,
  type PersistedState,
  type RaftStorage,
  type SnapshotReceiver,
  systemClock,
  type TimerHandle,
  type Transport,
} from './io.js';
export { consoleLogger, type Logger, type LogLevel, silentLogger } from './logger.js';
export {
  type ApplyContext,
  type ApplyKind,
  type ApplyOutcome,
  type Command,
  canonicalJson,
  isCommand,
  type JsonValue,
  type Machine,
  ReplicatedMachine,
  toJsonText,
} from './machine.js';
export { ClientRequest, type RequestPhase, saysNotApplied, type WaitReason } from './request.js';
export { isMember, membersOf, RaftRuntime, type ResolvedOptions } from './runtime.js';
export { after, Completion, isThenable, type MaybePromise } from './sync.js';
export {
  type FollowerProgress,
  newRuntimeCounters,
  type RuntimeBugs,
  type RuntimeCounters,
  type RuntimeEvent,
  type RuntimeOptions,
  type RuntimeRequest,
  type RuntimeState,
  type RuntimeTap,
} from './types.js';
