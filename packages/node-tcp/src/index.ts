/**
 * `@raft/node-tcp`: run a `@raft/core` node on real sockets, timers and storage, with raftpico's JSON-RPC API.
 * See docs/node-tcp.md and API.md.
 *
 * @packageDocumentation
 */

export { type BatchResult, RpcClient, type RpcClientOptions } from './client.js';
export { ConnectionError, ErrorCode, type ErrorCodeValue, RpcError, type RpcErrorData } from './errors.js';
export { encodeFrame, FrameDecoder, FrameError, PEER_MAGIC, PEER_VERSION } from './frame.js';
export { consoleLogger, type Logger, type LogLevel, silentLogger } from './logger.js';
export {
  type ApplyContext,
  type ApplyKind,
  type ApplyOutcome,
  type Command,
  type JsonValue,
  type Machine,
  ReplicatedMachine,
} from './machine.js';
export type { ServerRecovery } from './recovery.js';
export {
  type ApplyOptions,
  createServer,
  type FollowerProgress,
  RaftServer,
  type RaftStorage,
  type ServerCounters,
  type ServerOptions,
  type ServerState,
} from './server.js';
export { splitAddress } from './transport.js';
