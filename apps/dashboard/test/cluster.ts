/**
 * The cluster the live-view e2e test watches.
 *
 * FALLBACK IN USE: the test-only {@link FakeCluster} (WebSocket JSON-RPC servers that mimic `GetServerState` and
 * `TakeSnapshot`), because real @raft/node-tcp nodes are not yet usable here (see docs/dashboard.md, "Tests").
 */
import { FakeCluster } from './fake-cluster.js';

/** What the live test needs from a cluster. */
export interface TestCluster {
  /** `host:port` of every node (each serves JSON-RPC over WebSocket on that port). */
  readonly addresses: string[];
  /** Crash-like stop of one node. */
  kill(address: string): Promise<void>;
  /** Stops everything. */
  close(): Promise<void>;
}

/** Starts a three-node cluster with one leader. */
export async function startCluster(): Promise<TestCluster> {
  const c = await FakeCluster.start(3);
  return {
    addresses: c.nodes.map((n) => n.address),
    kill: (a) => c.kill(a),
    close: () => c.close(),
  };
}
