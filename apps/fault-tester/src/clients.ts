/**
 * Client workers: random Put / Get (linearizable Query) / Cas on a small key space, each recorded as an invocation
 * and an `ok`, `fail` (certainly not applied) or `info` (unknown outcome) completion, with monotonic timestamps.
 *
 * @packageDocumentation
 */

import type { HistoryEvent, Json, OpFn } from '@raft/linearizability';
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
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the workers until `stop()`; resolves when every worker has finished its last operation. */
export async function runWorkers(o: WorkerOptions): Promise<void> {
  let started = 0;
  const worker = async (w: number): Promise<void> => {
    let client: RpcClient | null = null;
    let n = 0;
    const lastSeen = new Map<string, Json>();
    const drop = async () => {
      const c = client;
      client = null;
      await c?.close().catch(() => {});
    };
    while (!o.stop() && started < o.maxOps) {
      if (client === null) {
        const targets = o.targets();
        if (targets.length === 0) {
          await sleep(100);
          continue;
        }
        const target = targets[Math.floor(o.rand() * targets.length)];
        try {
          client = await RpcClient.connect(target, { timeoutMs: o.opTimeoutMs + 2_000, connectTimeoutMs: 2_000 });
        } catch {
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
          const v = await client.request<Json>('Apply', {
            kind: o.readKind ?? 'Query',
            input: { Get: key },
            timeoutMs: o.opTimeoutMs,
          });
          o.recorder.record({ ...base, type: 'ok', value: v });
          lastSeen.set(key, v);
        } else if (f === 'put') {
          o.recorder.record({ ...base, type: 'invoke', value });
          const prev = await client.request<Json>('Apply', {
            kind: 'Command',
            input: { Put: [key, value] },
            timeoutMs: o.opTimeoutMs,
          });
          o.recorder.record({ ...base, type: 'ok', value, prev });
          lastSeen.set(key, value);
        } else {
          o.recorder.record({ ...base, type: 'invoke', value: [expected, value] });
          const applied = await client.request<boolean>('Apply', {
            kind: 'Command',
            input: { Cas: [key, expected, value] },
            timeoutMs: o.opTimeoutMs,
          });
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
}
