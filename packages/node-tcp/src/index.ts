/**
 * `@raft/node-tcp`: run a `@raft/runtime` node on real sockets, timers and storage, with raftpico's JSON-RPC API.
 * See docs/node-tcp.md and API.md.
 *
 * @packageDocumentation
 */

export {
  type ApplyContext,
  type ApplyKind,
  type ApplyOutcome,
  type Command,
  consoleLogger,
  ErrorCode,
  type ErrorCodeValue,
  type FollowerProgress,
  type JsonValue,
  type Logger,
  type LogLevel,
  type Machine,
  ReplicatedMachine,
  RpcError,
  type RpcErrorData,
  silentLogger,
} from '@raft/runtime';
export { exposureProblem, isLoopbackHost, openClientPortWarning, splitAddress } from './address.js';
export {
  type Caller,
  type CredentialEntry,
  CredentialStore,
  CredentialsError,
  hashToken,
  newToken,
  parseCredentials,
  type Role,
  requiredRole,
  roleAllows,
} from './auth.js';
export { type BatchResult, RpcClient, type RpcClientOptions } from './client.js';
export { ConnectionError } from './errors.js';
export { encodeFrame, FrameDecoder, FrameError, PEER_MAGIC, PEER_VERSION } from './frame.js';
export { METHODS, toRuntimeRequest } from './methods.js';
export type { ServerRecovery } from './recovery.js';
export { createServer, RaftServer, type RaftStorage } from './server.js';
export type {
  ApplyOptions,
  ServerCounters,
  ServerOptions,
  ServerState,
} from './server-types.js';
export {
  type ClientTlsOptions,
  certificateNames,
  certificateProves,
  clientConnectOptions,
  type TlsOptions,
} from './tls.js';
