/**
 * The server's public types: {@link ServerOptions} (every knob of `createServer`), {@link ServerCounters} (what an
 * operator watches), {@link ServerState} (the `GetServerState` answer) and {@link ApplyOptions}. Kept apart from
 * `server.ts` so that the options and counters can be read (and documented) without the server's wiring.
 *
 * @packageDocumentation
 */

import type { RaftOptions } from '@raft/core';
import {
  type Logger,
  type Machine,
  newRuntimeCounters,
  type RaftStorage,
  type RuntimeCounters,
  type RuntimeState,
} from '@raft/runtime';
import type { ServerRecovery } from './recovery.js';
import type { TlsOptions } from './tls.js';

/** Options of `createServer`. Only `address`, `machine` and `dataDir` (or `storage`) are required. */
export interface ServerOptions {
  /** `host:port`: the server's id in the cluster and where it listens. Port 0 picks a free port (see docs). */
  address: string;
  /** Listen somewhere else than `address` (e.g. `0.0.0.0:4000` behind NAT). Default: `address`. */
  listen?: string;
  /** The data directory (storage-jsonl). Required unless {@link ServerOptions.storage} is given. */
  dataDir?: string;
  /** The replicated state machine. */
  machine: Machine;
  /** Leader heartbeat interval in ms. Default 100. */
  heartbeatMs?: number;
  /** Minimum election timeout in ms; each election waits a random time in [t, 2t). Default 1000. */
  electionTimeoutMs?: number;
  /** Default timeout of a request (waiting for a leader, forwarding, committing, membership changes). Default 10 s. */
  requestTimeoutMs?: number;
  /** Take a snapshot after this many entries were applied since the last one; 0 disables. Default 100 000. */
  autoSnapshotEntries?: number;
  /** Largest peer frame sent or accepted, in bytes. Larger AppendEntries are split. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Largest JSON-RPC line or WebSocket message, in bytes. Default 16 MiB. */
  maxLineBytes?: number;
  /**
   * Bytes queued for a peer (not yet written, plus unsent in its socket) above which a turn's entry-carrying
   * messages to it are dropped (Raft retransmits). Queued messages reference log entries, so this is mostly not extra
   * memory. Default 256 MiB.
   */
  maxPeerBufferBytes?: number;
  /** Requests in progress on this server above which new ones get `OVERLOADED`. Default 100 000. */
  maxInflightRequests?: number;
  /**
   * Client connections (JSON-RPC lines, WebSocket, HTTP) open at once; one more gets an `OVERLOADED` error line (HTTP:
   * 503) and is closed. Peer connections never count. Default 10 000.
   */
  maxClientConnections?: number;
  /**
   * A client connection with no request in progress and no traffic for this long is closed; a connection that has
   * sent nothing yet is closed after min(this, 30 s). 0 disables (TCP keepalive still finds half-open ones).
   * Default 300 000 (5 minutes).
   */
  clientIdleTimeoutMs?: number;
  /**
   * Largest answer to a client (a batch's answers count together; larger ones are replaced by `OUTPUT_LIMIT_EXCEEDED`
   * errors), and most unsent answer bytes a client connection may have queued before it is closed with an
   * `OUTPUT_LIMIT_EXCEEDED` line. Default 64 MiB.
   */
  maxClientOutputBytes?: number;
  /** Requests in one JSON-RPC batch; a larger batch gets an `INVALID_REQUEST` error per request. Default 10 000. */
  maxBatchRequests?: number;
  /** Cluster name every peer must present in its handshake. Default `raft`. */
  clusterName?: string;
  /**
   * Shared secret peers prove (HMAC-SHA256 of a server challenge) in their handshake. Default: none. Required (or
   * `insecure`) when `address` or `listen` is not a loopback address. Pass it from a file or the environment,
   * never a command line (`ps` shows argv to every local user).
   */
  secret?: string;
  /**
   * TLS for every connection on the port (peers and clients), as PEM text or Buffers: the cluster CA, this
   * server's certificate and key. Peers then connect with mutual TLS, and a peer's certificate must prove the id it
   * claims (CN or a subjectAltName equal to its `host:port`, or to its host: see docs/security.md). Plain-text
   * connections are refused. Default: none (plain text).
   */
  tls?: TlsOptions;
  /**
   * A JSON credentials file (`{"tokens": [{"name", "role", "sha256"}]}`, see docs/security.md): clients must then
   * present a token and may only do what its role allows. Re-read when it changes. Default: none (no client
   * authentication; a server reachable from other hosts warns at start).
   */
  credentialsFile?: string;
  /**
   * Start without a secret although `address` or `listen` can be reached from other hosts (a trusted network).
   * Default false: such a server refuses to start and says why.
   */
  insecure?: boolean;
  /** Storage to use instead of opening `dataDir` (the server closes it on stop). */
  storage?: RaftStorage;
  /** `false` skips fsync (tests and benchmarks only: acknowledged writes can be lost on power failure). Default true. */
  storageSync?: boolean;
  /** Exactly-once client sessions remembered (least recently used forgotten first). Default 100 000. */
  maxSessions?: number;
  /** Core tunables (`electionTicks` is derived from the timeouts unless given). */
  raft?: Partial<RaftOptions>;
  /** Where to log. Default: warnings and errors to stderr. */
  logger?: Logger;
}

/** Counters useful to an operator (monotonic since start, except `clientConnections`). */
export interface ServerCounters extends RuntimeCounters {
  /**
   * JSON-RPC requests received from clients (TCP lines and WebSocket messages; each element of a batch counts).
   * Calls of the in-process API are not counted.
   */
  rpcRequests: number;
  /**
   * JSON-RPC error responses sent: malformed text or requests (including a whole unparsable line or an empty batch,
   * which are not counted in `rpcRequests`) and requests that failed.
   */
  rpcErrors: number;
  /**
   * Items written to peer sockets (or buffered for a connection still in its handshake): Raft messages, forwarded
   * requests and their replies. An AppendEntries split into several frames counts once per part.
   */
  messagesSent: number;
  /** Raft messages received from peers (forwarded requests and replies not included). */
  messagesReceived: number;
  /**
   * Raft messages discarded instead of delivered: the peer was unreachable (backing off), its queue was over
   * `maxPeerBufferBytes`, or its connection closed before they were written. Raft retransmits what still matters.
   */
  messagesDropped: number;
  /** Peer frames written after the handshake (one frame carries one or more items). */
  framesSent: number;
  /** Peer frames received after the handshake. */
  framesReceived: number;
  /** Bytes written to peer connections, handshakes included (client traffic is not counted). */
  bytesSent: number;
  /** Bytes read from peer connections, handshakes included (client traffic is not counted). */
  bytesReceived: number;
  /**
   * Peer connections refused: incoming ones with a bad protocol version, cluster name or secret, a handshake not
   * finished in time or a malformed frame, and outgoing ones whose peer did not prove the shared secret.
   */
  peerConnectionsRejected: number;
  /** Client connections (JSON-RPC over TCP and WebSocket) open right now: a gauge, not a monotonic counter. */
  clientConnections: number;
}

/** The `GetServerState` result: the runtime's state plus what the server adds. */
export interface ServerState extends RuntimeState {
  /** The cluster name peers must present in their handshake ({@link ServerOptions.clusterName}). */
  clusterName: string;
  /** A copy of the operator counters at the time of the call (see {@link ServerCounters}). */
  counters: ServerCounters;
  /** Wall-clock milliseconds since `RaftServer.start` brought this server up. */
  uptimeMs: number;
  /** What recovery repaired in the data directory when this server started (see {@link ServerRecovery}). */
  recovery: ServerRecovery;
}

/** Options of `RaftServer.apply`. */
export interface ApplyOptions {
  /** Exactly-once session id (with `seq`). */
  clientId?: string;
  /** Sequence number within the session (with `clientId`). */
  seq?: number;
  /** Request timeout in ms (default: the server's `requestTimeoutMs`). */
  timeoutMs?: number;
}

/** Fresh operator counters: all zero. */
export function newServerCounters(): ServerCounters {
  return {
    ...newRuntimeCounters(),
    rpcRequests: 0,
    rpcErrors: 0,
    messagesSent: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    peerConnectionsRejected: 0,
    clientConnections: 0,
  };
}
