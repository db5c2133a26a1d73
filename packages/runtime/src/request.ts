/**
 * The life of one client request, and the one rule that decides what its caller is told: applied (its output),
 * certainly not applied (safe to retry), or outcome unknown.
 *
 * A request moves through these phases, and its timeout's answer depends on where it is:
 *
 * ```text fragment
 *   waiting(leader | config | transfer) ──> proposed ──> settled (output, or an error)
 *        ^   │                               (in this node's log, or a membership change under way)
 *        │   ├──> forwarded(id) ──> settled (the leader's answer)
 *        │   │        └── connection lost ──> waiting again, with mayHaveApplied (idempotent requests)
 *        │   │                            └─> settled "outcome unknown" (others)
 *        │   └──> reading ──> settled (the query's output)
 *        └────────── every refusal that may pass (no leader, a change in progress) ──┘
 * ```
 *
 * `mayHaveApplied` is sticky: once an earlier attempt may have taken effect, no later answer may say "not applied"
 * (that would only be true of the retry); such answers become "outcome unknown".
 *
 * @packageDocumentation
 */

import type { Deadline, Deadlines } from './deadlines.js';
import { ErrorCode, errors, RpcError } from './errors.js';
import type { ApplyOutcome } from './machine.js';

/** Why a request is waiting. */
export type WaitReason = 'leader' | 'config' | 'transfer';

/** Where a request is in its life (see the module comment). */
export type RequestPhase =
  | { readonly kind: 'waiting'; readonly reason: WaitReason }
  | { readonly kind: 'proposed' }
  | { readonly kind: 'forwarded'; readonly id: number }
  | { readonly kind: 'reading' }
  | { readonly kind: 'settled' };

/** What the timeout's answer needs to know about the node when it fires. */
export interface TimeoutContext {
  /** A leader is known right now. */
  readonly leaderKnown: boolean;
  /** This node is in the configuration (or was, in a joint one). */
  readonly member: boolean;
  /** This node's id. */
  readonly self: string;
}

/** Errors that tell the client its request was certainly not applied. */
export function saysNotApplied(e: RpcError): boolean {
  if (e.code === ErrorCode.MACHINE_ERROR) return false; // the command was applied, and the machine refused it
  const data = e.data as { notApplied?: unknown } | undefined;
  if (data?.notApplied === true) return true;
  return (
    e.code === ErrorCode.NO_LEADER ||
    e.code === ErrorCode.PROPOSAL_LOST ||
    e.code === ErrorCode.NOT_A_MEMBER ||
    e.code === ErrorCode.OVERLOADED
  );
}

/** The failure outcome of `error`. */
export const fail = (error: RpcError): ApplyOutcome => ({ ok: false, error });

// Phases without data are shared: a request changes phase several times, at every member, for every request.
const WAITING: Record<WaitReason, RequestPhase> = {
  leader: { kind: 'waiting', reason: 'leader' },
  config: { kind: 'waiting', reason: 'config' },
  transfer: { kind: 'waiting', reason: 'transfer' },
};
const PROPOSED: RequestPhase = { kind: 'proposed' };
/** The retry of a request that has not set one (one function for all of them). */
const NOTHING = (): void => undefined;
const READING: RequestPhase = { kind: 'reading' };
const SETTLED: RequestPhase = { kind: 'settled' };

/** A request in progress: it settles exactly once, with its answer or at its deadline. */
export class ClientRequest implements Deadline {
  private _phase: RequestPhase = WAITING.leader;
  /** An earlier attempt may have taken effect (see the module comment). Never goes back to false. */
  mayHaveApplied = false;
  /** Whether repeating the request cannot do harm (exactly-once commands, membership changes). */
  idempotent = false;
  /** Runs the request again from the top (after a wait). */
  retry: () => void = NOTHING;
  /** What a timeout means for this request, when the generic text would mislead. */
  timeoutHint: string | undefined;
  /** When the request times out (the clock's milliseconds). */
  readonly deadline: number;
  /** Its place among the pending deadlines (kept by {@link Deadlines}). */
  heapIndex = -1;

  /**
   * @param what - how messages name the request ("the command", "AddServer 127.0.0.1:4001").
   * @param mutates - whether it changes state (a read's timeout is always "not applied").
   * @param timeoutMs - how long it may take.
   * @param deadlines - where its deadline waits (one timer for all requests).
   * @param done - receives the one answer.
   * @param context - the node's state when the timeout fires.
   * @param onSettle - told once, as the request settles, with the phase it was in (the runtime's bookkeeping).
   */
  constructor(
    readonly what: string,
    readonly mutates: boolean,
    readonly timeoutMs: number,
    private readonly deadlines: Deadlines,
    private readonly done: (o: ApplyOutcome) => void,
    private readonly context: () => TimeoutContext,
    private readonly onSettle: (r: ClientRequest, phaseBefore: RequestPhase) => void,
  ) {
    this.deadline = deadlines.clock.now() + timeoutMs;
    deadlines.add(this);
  }

  /** The deadline passed: answer with what a timeout means in the current phase. */
  expire(): void {
    this.settle(this.timeoutOutcome());
  }

  /** Where the request is. */
  get phase(): RequestPhase {
    return this._phase;
  }

  /** True once answered. */
  get settled(): boolean {
    return this._phase.kind === 'settled';
  }

  /** Milliseconds left before the deadline (at least 1). */
  get remainingMs(): number {
    return Math.max(1, this.deadline - this.deadlines.clock.now());
  }

  /** It waits (for a leader, or for a change in progress to finish); the runtime calls `retry` later. */
  wait(reason: WaitReason): void {
    if (!this.settled) this._phase = WAITING[reason];
  }

  /** It is in this node's log (or a membership change it asked for is under way). */
  proposed(): void {
    if (!this.settled) this._phase = PROPOSED;
  }

  /** It was handed to the leader as forwarded request `id`. */
  forwarded(id: number): void {
    if (!this.settled) this._phase = { kind: 'forwarded', id };
  }

  /** A linearizable read is under way. */
  reading(): void {
    if (!this.settled) this._phase = READING;
  }

  /**
   * The connection carrying its forwarded attempt closed before the answer: the attempt may or may not have been
   * applied. An idempotent request waits to be retried (and can no longer be answered "not applied"); any other
   * settles as "outcome unknown".
   *
   * @param forget - test only: plant the bug of forgetting the lost attempt.
   * @returns whether the request is now waiting for a retry
   */
  lost(forget = false): boolean {
    if (this.settled) return false;
    if (this.idempotent) {
      // `forget` plants a bug for the simulator's tests: the earlier attempt is forgotten.
      if (!forget) this.mayHaveApplied = true;
      this.wait('leader');
      return true;
    }
    this.settle(
      fail(
        new RpcError(
          ErrorCode.TIMEOUT,
          `the connection to the leader was lost before it answered; the outcome of ${this.what} is unknown (retry with the same clientId and seq to make the retry safe)`,
          { notApplied: false },
        ),
      ),
    );
    return false;
  }

  /** Answer the request (later calls are ignored). */
  settle(o: ApplyOutcome): void {
    if (this.settled) return;
    if (this.mayHaveApplied && !o.ok && saysNotApplied(o.error)) o = fail(earlierAttemptUnknown(this.what, o.error));
    const before = this._phase;
    this._phase = SETTLED;
    this.deadlines.remove(this);
    this.onSettle(this, before);
    this.done(o);
  }

  /** The answer when the deadline passes: it depends on the phase the request is in. */
  private timeoutOutcome(): ApplyOutcome {
    const ctx = this.context();
    const p = this._phase;
    if (p.kind === 'waiting') {
      if (p.reason === 'config') {
        return fail(
          new RpcError(
            ErrorCode.CONFIG_CHANGE_IN_PROGRESS,
            `another membership change was still in progress after ${this.timeoutMs} ms; retry when it has finished`,
            { notApplied: true },
          ),
        );
      }
      if (p.reason === 'transfer') {
        return fail(
          new RpcError(
            ErrorCode.TRANSFER_IN_PROGRESS,
            `a leadership transfer was still in progress after ${this.timeoutMs} ms; retry`,
            { notApplied: true },
          ),
        );
      }
      if (!ctx.member && !ctx.leaderKnown) return fail(errors.notAMember(ctx.self));
      return fail(
        new RpcError(
          ErrorCode.NO_LEADER,
          `no leader was known for ${this.timeoutMs} ms (election in progress, or a quorum of servers is unreachable); ${this.what} was not applied, retry later`,
          { leader: null, notApplied: true },
        ),
      );
    }
    if (p.kind === 'reading' && !ctx.leaderKnown) {
      return fail(
        new RpcError(
          ErrorCode.NO_LEADER,
          `no leader could confirm the read within ${this.timeoutMs} ms (election in progress, or a quorum of servers is unreachable); retry later`,
          { leader: null, notApplied: true },
        ),
      );
    }
    if (this.timeoutHint !== undefined) {
      return fail(
        new RpcError(ErrorCode.TIMEOUT, `${this.what} did not finish within ${this.timeoutMs} ms: ${this.timeoutHint}`),
      );
    }
    return fail(errors.timeout(this.what, this.timeoutMs, !this.mutates || p.kind === 'reading'));
  }
}

/** What a retried request reports when its retry failed but an earlier attempt's outcome is unknown. */
function earlierAttemptUnknown(what: string, retryError: RpcError): RpcError {
  return new RpcError(
    ErrorCode.TIMEOUT,
    `${what}: the connection to the leader was lost before it answered an earlier attempt, which may have been applied; ` +
      `the retry failed (${retryError.message}). The outcome is unknown: send it again with the same clientId and seq to learn it`,
    { notApplied: false },
  );
}

/** A proposal that a leader change discarded. */
export function proposalLost(): RpcError {
  return new RpcError(
    ErrorCode.PROPOSAL_LOST,
    'the leader changed before the command committed and it was discarded: it was not applied; retry',
    { notApplied: true },
  );
}
