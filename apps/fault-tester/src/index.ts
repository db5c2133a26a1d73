/**
 * Fault-injection testing of a real raft-kvs cluster (crashes, pauses, partitions through a proxy, membership
 * changes, snapshots) with a linearizability check of the client history. See docs/fault-testing.md.
 *
 * @packageDocumentation
 */
export { classifyError, Recorder, runWorkers, type WorkerOptions } from './clients.js';
export { Cluster, ClusterError, type ClusterOptions, type NodeHandle } from './cluster.js';
export { FAULTS, type FaultKind, type FaultRecord, type NemesisOptions, runNemesis } from './nemesis.js';
export { ProxyNetwork } from './proxy.js';
export { lostWrites, type RunOptions, type RunSummary, runFaultTest } from './run.js';
export { formatSummary } from './summary.js';
