/**
 * The load loop shared by every target: C virtual clients ("slots"), each with at most one request in flight,
 * sending the next request the moment its previous one completes (a closed loop, like jlot's `-c`).
 */

import { LoadgenError } from './errors.js';
import { EtcdTransport } from './etcd.js';
import { EtcdGrpcTransport } from './etcd-grpc.js';
import { JsonRpcTransport } from './jsonrpc.js';
import { type ProgressMode, startProgress } from './progress.js';
import { type LoadReport, summarize } from './stats.js';
import { type Endpoint, errorKind, parseEndpoint, type Transport } from './transport.js';
import { Workload, type WorkloadKind } from './workload.js';

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** The protocol: see {@link TARGETS}. */
  readonly target: Target;
  /** `host:port` or `:port` strings, or parsed endpoints. Slot k talks to server k % S. */
  readonly servers: readonly (string | Endpoint)[];
  /**
   * What to send: `command` (puts), `query` (linearizable gets), `local` (local, possibly stale gets) or `mix` (half
   * puts, half linearizable gets). Keys and values come from the seeded {@link Workload}.
   */
  readonly workload: WorkloadKind;
  /** Requests to measure. */
  readonly count: number;
  /** Requests in flight at once (C). */
  readonly concurrency: number;
  /** Unmeasured requests sent first, so that connection warm-up and JIT do not count (default 0). */
  readonly warmup?: number;
  /** See {@link WorkloadOptions.valueSize}. */
  readonly valueSize?: number;
  /** PRNG seed (default: random, and reported). */
  readonly seed?: number;
  /** A request without an answer after this long counts as an error `timeout` (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Stop sending after this long and report what completed (default 30 min): every run is bounded in time. */
  readonly maxSeconds?: number;
  /** JSON-RPC connections per server (default 1; requests are pipelined on each). */
  readonly connectionsPerServer?: number;
  /**
   * `etcd-grpc`: HTTP/2 connections in all (default 100, never more than C, rounded up to a multiple of the
   * servers); the slots' streams are multiplexed over them.
   */
  readonly grpcConnections?: number;
  /** JSON-RPC over TLS: the CA (PEM) the servers' certificates must chain to. Default: plain text. */
  readonly tlsCa?: string | Buffer;
  /** JSON-RPC: a client token each connection authenticates with first. */
  readonly token?: string;
  /** Progress display of the measured phase on stderr (warm-up shows none). Default `auto`: a bar on a TTY. */
  readonly progress?: ProgressMode;
  /** Label of the progress display (default `target workload C=...`). */
  readonly label?: string;
  /** Use this transport instead of building one from `target` (tests). */
  readonly transport?: Transport;
}

/**
 * Every `target` {@link runLoad} accepts: `jsonrpc` (raftpico's API, e.g. raft-kvs, as JSON-RPC lines), `etcd-grpc`
 * (etcd's native gRPC API over HTTP/2), `etcd-gateway` (etcd's HTTP/JSON gateway over HTTP/1.1) and `etcd`, an alias
 * of `etcd-grpc` because gRPC is what etcd's own clients speak.
 */
export const TARGETS = ['jsonrpc', 'etcd-grpc', 'etcd-gateway', 'etcd'] as const;

/** One of {@link TARGETS}. */
export type Target = (typeof TARGETS)[number];

function check(cond: boolean, message: string): void {
  if (!cond) throw new LoadgenError('BAD_OPTION', message);
}

/** Builds the transport for `options.target` (`etcd` builds the `etcd-grpc` one). */
export function makeTransport(options: LoadOptions): Transport {
  const servers = options.servers.map((s) => (typeof s === 'string' ? parseEndpoint(s) : s));
  if (options.target === 'jsonrpc') {
    return new JsonRpcTransport({
      servers,
      connectionsPerServer: options.connectionsPerServer,
      tlsCa: options.tlsCa,
      token: options.token,
    });
  }
  if (options.target === 'etcd-grpc' || options.target === 'etcd') {
    return new EtcdGrpcTransport({ servers, slots: options.concurrency, connections: options.grpcConnections });
  }
  if (options.target === 'etcd-gateway') return new EtcdTransport({ servers, connections: options.concurrency });
  throw new LoadgenError(
    'BAD_OPTION',
    `unknown target "${String(options.target)}"; expected one of ${TARGETS.join(', ')}`,
  );
}

interface Phase {
  readonly count: number;
  readonly record: boolean;
  readonly progress: ProgressMode;
}

interface PhaseResult {
  completed: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  latencies: Float64Array;
  elapsedMs: number;
  truncated: boolean;
}

/**
 * Runs one load test: opens the connections, sends `warmup` then `count` requests with `concurrency` in flight, and
 * reports throughput, latency percentiles and errors. Rejects with {@link LoadgenError} when options are invalid or
 * a server cannot be reached at the start; request failures are counted, never thrown.
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const { count, concurrency } = options;
  check(Number.isInteger(count) && count >= 1, `count must be a positive integer, got ${count}`);
  check(
    Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 100_000,
    `concurrency must be an integer in [1, 100000], got ${concurrency}`,
  );
  const warmup = options.warmup ?? 0;
  check(Number.isInteger(warmup) && warmup >= 0, `warmup must be a non-negative integer, got ${warmup}`);
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  const workload = new Workload({ kind: options.workload, seed, valueSize: options.valueSize });
  const transport = options.transport ?? makeTransport(options);
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const deadline = performance.now() + (options.maxSeconds ?? 1800) * 1000;

  await transport.open();
  try {
    let nextId = 0;
    const runPhase = (phase: Phase): Promise<PhaseResult> =>
      new Promise((resolve) => {
        const res: PhaseResult = {
          completed: 0,
          ok: 0,
          errors: 0,
          errorKinds: {},
          latencies: new Float64Array(phase.record ? phase.count : 0),
          elapsedMs: 0,
          truncated: false,
        };
        if (phase.count === 0) return resolve(res);
        const slots = Math.min(concurrency, phase.count);
        // Per slot: a token that changes whenever its request completes or times out, so a late answer to a
        // timed-out request is ignored instead of being counted twice.
        const token = new Uint32Array(slots);
        const inFlight = new Uint8Array(slots);
        const startedAt = new Float64Array(slots);
        let issued = 0;
        let active = 0;
        let finished = false;
        const started = performance.now();
        const stopProgress = startProgress(
          options.label ?? `${transport.name} ${options.workload} C=${concurrency}`,
          { total: phase.count, done: () => res.completed, errors: () => res.errors },
          phase.progress,
        );

        const finish = () => {
          if (finished) return;
          finished = true;
          res.elapsedMs = performance.now() - started;
          clearInterval(sweeper);
          stopProgress();
          if (phase.record) res.latencies = res.latencies.subarray(0, res.ok);
          resolve(res);
        };

        const complete = (slot: number, error: string | null) => {
          const latency = performance.now() - startedAt[slot];
          inFlight[slot] = 0;
          token[slot]++;
          active--;
          res.completed++;
          if (error === null) {
            if (phase.record) res.latencies[res.ok] = latency;
            res.ok++;
          } else {
            res.errors++;
            const kind = errorKind(error);
            res.errorKinds[kind] = (res.errorKinds[kind] ?? 0) + 1;
          }
        };

        let depth = 0;
        const issue = (slot: number) => {
          if (issued >= phase.count || performance.now() > deadline) {
            if (issued < phase.count) res.truncated = true;
            if (active === 0) finish();
            return;
          }
          issued++;
          active++;
          inFlight[slot] = 1;
          const mine = token[slot];
          startedAt[slot] = performance.now();
          depth++;
          transport.send(slot, nextId++, workload.next(), (error) => {
            if (token[slot] !== mine) return;
            complete(slot, error);
            // A transport that fails synchronously would otherwise recurse once per request.
            if (depth > 0) queueMicrotask(() => issue(slot));
            else issue(slot);
          });
          depth--;
        };

        const sweeper = setInterval(
          () => {
            const now = performance.now();
            for (let s = 0; s < slots; s++) {
              if (inFlight[s] && now - startedAt[s] > timeoutMs) {
                complete(s, 'timeout');
                issue(s);
              }
            }
          },
          Math.min(250, Math.max(10, timeoutMs / 4)),
        );

        for (let s = 0; s < slots; s++) issue(s);
      });

    if (warmup > 0) await runPhase({ count: warmup, record: false, progress: 'off' });
    const cpu0 = process.cpuUsage();
    const res = await runPhase({ count, record: true, progress: options.progress ?? 'auto' });
    const cpu = process.cpuUsage(cpu0);
    const latencyMs = summarize(res.latencies);
    return {
      target: transport.name,
      workload: options.workload,
      servers: options.servers.map((s) => (typeof s === 'string' ? s : `${s.host}:${s.port}`)),
      count,
      concurrency,
      valueSize: workload.valueSize,
      seed,
      completed: res.completed,
      ok: res.ok,
      errors: res.errors,
      errorKinds: res.errorKinds,
      elapsedSec: res.elapsedMs / 1000,
      throughput: res.elapsedMs > 0 ? res.ok / (res.elapsedMs / 1000) : 0,
      latencyMs,
      clientCpuSec: (cpu.user + cpu.system) / 1e6,
      clientCpuMicrosPerOp: res.ok ? (cpu.user + cpu.system) / res.ok : 0,
      truncated: res.truncated,
    };
  } finally {
    transport.close();
  }
}
