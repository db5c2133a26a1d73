// The one request state machine (request.ts): what a client is told in each phase, and the rule that an earlier
// attempt that may have been applied is never answered "not applied".
import { describe, expect, it } from 'vitest';
import {
  type ApplyOutcome,
  ClientRequest,
  type Clock,
  Deadlines,
  ErrorCode,
  errors,
  RpcError,
  saysNotApplied,
} from '../src/index.js';

/** A clock whose timers fire only when the test says so. */
function manualClock(): Clock & { fire(): void; time: number } {
  let timers: { fn: () => void; at: number; cancelled: boolean }[] = [];
  const c = {
    time: 0,
    now: () => c.time,
    setTimeout: (fn: () => void, ms: number) => {
      const t = { fn, at: c.time + ms, cancelled: false };
      timers.push(t);
      return t;
    },
    clearTimeout: (h: unknown) => {
      if (h) (h as { cancelled: boolean }).cancelled = true;
    },
    defer: (fn: () => void) => fn(),
    random: () => 0.5,
    fire: () => {
      const due = timers.filter((t) => !t.cancelled);
      timers = [];
      for (const t of due) {
        c.time = Math.max(c.time, t.at);
        t.fn();
      }
    },
  };
  return c;
}

function request(mutates = true, ctx = { leaderKnown: true, member: true, self: 'a' }) {
  const clock = manualClock();
  const answers: ApplyOutcome[] = [];
  const released: string[] = [];
  const r = new ClientRequest(
    'the command',
    mutates,
    1000,
    new Deadlines(clock),
    (o) => answers.push(o),
    () => ctx,
    (_r, before) => released.push(before.kind),
  );
  return { r, clock, answers, released };
}

const code = (o: ApplyOutcome | undefined) => (o !== undefined && !o.ok ? o.error.code : 'ok');
const notApplied = (o: ApplyOutcome | undefined) => o !== undefined && !o.ok && saysNotApplied(o.error);

describe('ClientRequest', () => {
  it('settles once: later answers and the timeout are ignored', () => {
    const { r, clock, answers, released } = request();
    r.proposed();
    r.settle({ ok: true, output: 1 });
    r.settle({ ok: true, output: 2 });
    clock.fire();
    expect(answers).toEqual([{ ok: true, output: 1 }]);
    expect(released).toEqual(['proposed']);
    expect(r.settled).toBe(true);
  });

  it('times out by phase: waiting for a leader is "not applied", a proposed command is "outcome unknown"', () => {
    const waiting = request();
    waiting.clock.fire();
    expect(code(waiting.answers[0])).toBe(ErrorCode.NO_LEADER);
    expect(notApplied(waiting.answers[0])).toBe(true);

    const proposed = request();
    proposed.r.proposed();
    proposed.clock.fire();
    expect(code(proposed.answers[0])).toBe(ErrorCode.TIMEOUT);
    expect(notApplied(proposed.answers[0])).toBe(false);

    const config = request();
    config.r.wait('config');
    config.clock.fire();
    expect(code(config.answers[0])).toBe(ErrorCode.CONFIG_CHANGE_IN_PROGRESS);

    const read = request(false);
    read.r.reading();
    read.clock.fire();
    expect(notApplied(read.answers[0])).toBe(true);
  });

  it('a node outside any cluster that knows no leader answers NOT_A_MEMBER at the deadline', () => {
    const { clock, answers } = request(true, { leaderKnown: false, member: false, self: 'x' });
    clock.fire();
    expect(code(answers[0])).toBe(ErrorCode.NOT_A_MEMBER);
  });

  it('a lost forward of an idempotent request waits for a retry, and no later answer may say "not applied"', () => {
    const { r, answers, released } = request();
    r.idempotent = true;
    r.forwarded(7);
    expect(r.lost()).toBe(true);
    expect(r.phase).toEqual({ kind: 'waiting', reason: 'leader' });
    r.settle({ ok: false, error: errors.noLeader() }); // the retry found no leader
    expect(code(answers[0])).toBe(ErrorCode.TIMEOUT);
    expect(notApplied(answers[0])).toBe(false);
    expect(answers[0]?.ok === false && answers[0].error.message).toMatch(
      /earlier attempt, which may have been applied/,
    );
    expect(released).toEqual(['waiting']);
  });

  it('a lost forward of a plain command is answered "outcome unknown" at once', () => {
    const { r, answers, released } = request();
    r.forwarded(3);
    expect(r.lost()).toBe(false);
    expect(code(answers[0])).toBe(ErrorCode.TIMEOUT);
    expect(notApplied(answers[0])).toBe(false);
    expect(released).toEqual(['forwarded']);
  });

  it('a machine error is never "not applied" (the command was applied and refused)', () => {
    expect(saysNotApplied(new RpcError(ErrorCode.MACHINE_ERROR, 'no', { notApplied: true }))).toBe(false);
    expect(saysNotApplied(new RpcError(ErrorCode.PROPOSAL_LOST, 'lost'))).toBe(true);
    expect(saysNotApplied(new RpcError(ErrorCode.TIMEOUT, 'late', { notApplied: false }))).toBe(false);
  });
});
