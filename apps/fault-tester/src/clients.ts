/**
 * Client workers: random Put / Get (linearizable Query) / Cas on a small key space, each recorded as an invocation
 * and an `ok`, `fail` (certainly not applied) or `info` (unknown outcome) completion, with monotonic timestamps.
 *
 * @packageDocumentation
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type { HistoryEvent, JsonValue, OpFn } from '@raft/linearizability';
import { ConnectionError, ErrorCode, RpcClient, RpcError } from '@raft/node-tcp';

/** Collects history events with monotonic timestamps (ns since the recorder was created). */
export class Recorder {
  /** Every event so far, in recording order (the order of the history file); `time` is ns since creation. */
  readonly events: HistoryEvent[] = [];
  private readonly t0 = process.hrtime.bigint();

  /** Nanoseconds since the start, as a number (exact below 2^53 ns, about 104 days). */
  now(): number {
    return Number(process.hrtime.bigint() - this.t0);
  }

  /** Appends an event stamped now. */
  record(e: Omit<HistoryEvent, 'time'>): void {
    this.events.push({ ...e, time: this.now() } as HistoryEvent);
  }
}

/**
 * Error codes documented as "not applied". Everything else (TIMEOUT, SHUTTING_DOWN, a lost connection after
 * sending...) is an unknown outcome.
 */
const NOT_APPLIED: ReadonlySet<number> = new Set([
  ErrorCode.NO_LEADER,
  ErrorCode.PROPOSAL_LOST,
  ErrorCode.INVALID_PARAMS,
  ErrorCode.PARSE_ERROR,
  ErrorCode.INVALID_REQUEST,
  ErrorCode.METHOD_NOT_FOUND,
  ErrorCode.NOT_A_MEMBER,
  ErrorCode.MACHINE_ERROR,
  ErrorCode.OVERLOADED,
]);

/** How a failed command is recorded: `fail` only when the server says it was certainly not applied. */
export function classifyError(e: unknown): 'fail' | 'info' {
  if (e instanceof RpcError) {
    if (e.data?.notApplied === true) return 'fail';
    return NOT_APPLIED.has(e.code) ? 'fail' : 'info';
  }
  if (e instanceof ConnectionError && !e.sent) return 'fail';
  return 'info';
}

/** Options of {@link runWorkers}. */
export interface WorkerOptions {
  /** A client token each connection authenticates with (servers with a credentials file need one). */
  readonly token?: string;
  /** Listen addresses of the nodes currently worth trying (called before each connection). */
  readonly targets: () => string[];
  /**
   * Concurrent clients. Worker w is history process w, one operation at a time, on its own connection to a node
   * picked from `targets()` (a new one after an unknown outcome or a broken connection).
   */
  readonly workers: number;
  /** Size of the key space: keys `k0` .. `k<keys-1>`, picked uniformly. Few keys mean more contention per key. */
  readonly keys: number;
  /**
   * The `timeoutMs` sent with each `Apply` (the server gives up after it); the client waits 2 s longer. A write that
   * times out is recorded as `info` (it may still apply), a read as `fail`.
   */
  readonly opTimeoutMs: number;
  /** Workers stop starting operations once this returns true. */
  readonly stop: () => boolean;
  /**
   * Uniform in [0, 1): picks targets, keys, operations and pauses. Seed it to repeat the choices (the interleaving
   * still depends on timing).
   */
  readonly rand: () => number;
  /** Where every invocation and completion is recorded (the history that is checked afterwards). */
  readonly recorder: Recorder;
  /** Upper bound on operations (all workers together), so a run is bounded in count as well as time. */
  readonly maxOps: number;
  /**
   * How Gets are served: `Query` (linearizable, the default) or `LocalQuery` (whatever the contacted node has
   * applied: deliberately not linearizable, to show the checker catches stale reads end to end).
   */
  readonly readKind?: 'Query' | 'LocalQuery';
  /**
   * How long a command whose outcome is unknown (a timeout, a lost connection) is retried, on a fresh connection to
   * some live node, with the same `clientId` and `seq` before it is recorded as `info`. Default 10 000 ms; 0 records
   * `info` at once. node-tcp applies a `(clientId, seq)` at most once and answers a retry with the original output,
   * so an `ok` after retries is that one application: the operation spans from its invocation to that answer. Each
   * worker is one client session with one command outstanding. This turns most unknown outcomes into definite
   * ones (an `info` can be linearized anywhere after its invocation, which is what makes checking expensive), and
   * exercises exactly-once delivery under faults.
   */
  readonly retryUnknownMs?: number;
}

/** What the workers did besides the history: retries of commands with an unknown outcome. */
export interface WorkerStats {
  /** Commands whose first attempt had an unknown outcome, so they were retried with the same `(clientId, seq)`. */
  unknownRetried: number;
  /** Of those, how many got a definite answer (recorded as `ok`); the others are `info`. */
  resolvedByRetry: number;
}

/**
 * Runs the workers until `stop()`; resolves when every worker has finished its last operation (an unknown outcome
 * being retried counts as unfinished, up to {@link WorkerOptions.retryUnknownMs}).
 */
export async function runWorkers(o: WorkerOptions): Promise<WorkerStats> {
  let started = 0;
  const stats: WorkerStats = { unknownRetried: 0, resolvedByRetry: 0 };
  const retryMs = o.retryUnknownMs ?? 10_000;
  // Unique per run, so sessions of an earlier run on the same data never collide with these.
  const session = `ft-${process.pid}-${Date.now().toString(36)}`;
  const worker = async (w: number): Promise<void> => {
    let client: RpcClient | null = null;
    let n = 0;
    let seq = 0;
    const clientId = `${session}-w${w}`;
    const lastSeen = new Map<string, JsonValue>();
    const drop = async () => {
      const c = client;
      client = null;
      await c?.close().catch(() => {});
    };
    /** A connection to a random live node, or null if none could be made right now. */
    const connect = async (): Promise<RpcClient | null> => {
      const targets = o.targets();
      if (targets.length === 0) return null;
      const target = targets[Math.floor(o.rand() * targets.length)];
      try {
        return await RpcClient.connect(target, {
          timeoutMs: o.opTimeoutMs + 2_000,
          connectTimeoutMs: 2_000,
          token: o.token,
        });
      } catch {
        return null;
      }
    };
    /**
     * Retry a command whose outcome is unknown until a definite answer or the deadline. Errors from the retries
     * prove nothing (an earlier attempt may still commit), so only an answer ends it.
     */
    const retry = async <T>(params: Record<string, unknown>): Promise<{ ok: true; result: T } | { ok: false }> => {
      stats.unknownRetried++;
      const deadline = Date.now() + retryMs;
      while (Date.now() < deadline) {
        await drop();
        client = await connect();
        if (client === null) {
          await sleep(100);
          continue;
        }
        try {
          const result = await client.request<T>('Apply', params);
          stats.resolvedByRetry++;
          return { ok: true, result };
        } catch {
          await sleep(50 + Math.floor(o.rand() * 100));
        }
      }
      return { ok: false };
    };
    /** Send a command; on an unknown outcome, retry it with the same session and seq (see `retryUnknownMs`). */
    const command = async <T>(input: JsonValue): Promise<T> => {
      const params = { kind: 'Command', input, clientId, seq: ++seq, timeoutMs: o.opTimeoutMs };
      try {
        return await (client as RpcClient).request<T>('Apply', params);
      } catch (e) {
        if (retryMs <= 0 || classifyError(e) !== 'info') throw e;
        const r = await retry<T>(params);
        if (r.ok) return r.result;
        throw e;
      }
    };
    while (!o.stop() && started < o.maxOps) {
      if (client === null) {
        client = await connect();
        if (client === null) {
          await sleep(100);
          continue;
        }
      }
      started++;
      const key = `k${Math.floor(o.rand() * o.keys)}`;
      const r = o.rand();
      const f: OpFn = r < 0.4 ? 'get' : r < 0.75 ? 'put' : 'cas';
      const value = `w${w}-${n++}`;
      const expected = lastSeen.get(key) ?? null;
      const base = { process: w, f, key };
      try {
        if (f === 'get') {
          o.recorder.record({ ...base, type: 'invoke' });
          const v = await client.request<JsonValue>('Apply', {
            kind: o.readKind ?? 'Query',
            input: { Get: key },
            timeoutMs: o.opTimeoutMs,
          });
          o.recorder.record({ ...base, type: 'ok', value: v });
          lastSeen.set(key, v);
        } else if (f === 'put') {
          o.recorder.record({ ...base, type: 'invoke', value });
          const prev = await command<JsonValue>({ Put: [key, value] });
          o.recorder.record({ ...base, type: 'ok', value, prev });
          lastSeen.set(key, value);
        } else {
          o.recorder.record({ ...base, type: 'invoke', value: [expected, value] });
          const applied = await command<boolean>({ Cas: [key, expected, value] });
          o.recorder.record({ ...base, type: 'ok', value: [expected, value], applied: applied === true });
          if (applied === true) lastSeen.set(key, value);
          else lastSeen.delete(key);
        }
      } catch (e) {
        // A read that failed changed nothing, whatever the error: record it as fail.
        const type = f === 'get' ? 'fail' : classifyError(e);
        const error = e instanceof Error ? e.message.slice(0, 200) : String(e);
        o.recorder.record({ ...base, type, ...(f === 'put' ? { value } : {}), error });
        // After an unknown outcome or a broken connection, start afresh on some node.
        if (type === 'info' || e instanceof ConnectionError) await drop();
        else await sleep(20 + Math.floor(o.rand() * 80)); // e.g. no leader yet: back off a little
      }
      await sleep(Math.floor(o.rand() * 10));
    }
    await drop();
  };
  await Promise.all(Array.from({ length: o.workers }, (_, w) => worker(w)));
  return stats;
}
