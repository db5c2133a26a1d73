/**
 * @raft/loadgen: a load generator for raftpico-style JSON-RPC servers (raft-kvs) and for etcd, with one load loop,
 * one workload generator and one report format for both, so their numbers compare like with like.
 */

export type { ChartOptions, ChartPanel, ChartPoint } from './chart.js';
export { compact, niceMax, renderBarChart } from './chart.js';
export { markers, replaceRegion } from './docs.js';
export type { LoadgenErrorCode } from './errors.js';
export { LoadgenError } from './errors.js';
export type { EtcdOptions, ParsedResponse } from './etcd.js';
export { EtcdTransport, encodeEtcd, parseResponse } from './etcd.js';
export type { EtcdGrpcOptions } from './etcd-grpc.js';
export { DEFAULT_GRPC_CONNECTIONS, EtcdGrpcTransport } from './etcd-grpc.js';
export type { KeyValue, PutFields, RangeFields, RangeResult } from './etcd-protobuf.js';
export {
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResponse,
  encodePutFrame,
  encodeRangeFrame,
  encodeRangeResponseFrame,
  ProtobufError,
  unframe,
} from './etcd-protobuf.js';
export type { HeaderField } from './hpack.js';
export { encodeHeaderBlock, HpackDecoder, HpackError, huffmanCode, huffmanDecode, huffmanEncode } from './hpack.js';
export type { JsonRpcOptions } from './jsonrpc.js';
export { encodeApply, JsonRpcTransport } from './jsonrpc.js';
export type { LinkProxyOptions, LinkProxyStats } from './link-proxy.js';
export { LinkProxy } from './link-proxy.js';
export type { ProgressMode, ProgressSource } from './progress.js';
export { startProgress } from './progress.js';
export type { LoadOptions, Target } from './runner.js';
export { makeTransport, runLoad, TARGETS } from './runner.js';
export type { LatencySummary, LoadReport } from './stats.js';
export { formatTable, percentile, summarize } from './stats.js';
export type { FsyncRate } from './system.js';
export { cpuModel, cpuSeconds, measureFsyncRate, residentBytes } from './system.js';
export type { Completion, Endpoint, Transport } from './transport.js';
export { errorKind, parseEndpoint } from './transport.js';
export type { Op, WorkloadKind, WorkloadOptions } from './workload.js';
export { WORKLOADS, Workload } from './workload.js';
