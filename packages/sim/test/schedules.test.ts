import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSchedule, ScheduleFailure } from '../src/index.js';
import { explainFailure, REPLAY_SEED, RUNS, replayCommand, runOrExplain, STEPS } from './env.js';

// The main property: thousands of hostile random schedules (loss, duplication, reordering, partitions incl. one-way
// ones, crashes losing unflushed writes, membership changes incl. removing the leader, snapshots and chunked
// installs, reads on leaders and followers, leader transfers) never break a safety property, checked after every
// step, and every run ends live. Seeds come from fast-check; a failure names the seed and a one-line replay command.
describe('random schedules', () => {
  const title =
    REPLAY_SEED === undefined
      ? `${RUNS} schedules of ${STEPS} steps keep every safety property and end live`
      : `schedule ${REPLAY_SEED} (RAFT_SIM_SEED) of ${STEPS} steps keeps every safety property and ends live`;
  it(title, {
    timeout: Math.max(240_000, RUNS * 100),
  }, () => {
    const totals = { committed: 0, elections: 0, reads: 0, installs: 0, configChanges: 0, snapshots: 0, runs: 0 };
    let worstLeaderMs = 0;
    let worstCommitMs = 0;
    let tightestMarginMs = Number.POSITIVE_INFINITY;
    if (REPLAY_SEED !== undefined) {
      // Replaying one seed (see the `replay` test below, which prints its trace): run just that schedule here.
      expect(runOrExplain(REPLAY_SEED).commitAfterMs).toBeGreaterThanOrEqual(0);
      return;
    }
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7fffffff }), (seed) => {
        const r = runOrExplain(seed);
        totals.runs++;
        totals.committed += r.committed;
        totals.elections += r.elections;
        totals.reads += r.readsServed;
        totals.installs += r.installs;
        totals.configChanges += r.configChanges;
        totals.snapshots += r.snapshots;
        worstLeaderMs = Math.max(worstLeaderMs, r.leaderAfterMs);
        worstCommitMs = Math.max(worstCommitMs, r.commitAfterMs);
        tightestMarginMs = Math.min(tightestMarginMs, r.commitBoundMs - (r.commitAfterMs - r.leaderAfterMs));
      }),
      // Shrinking a seed means nothing (a smaller seed is a different schedule): report the first failure as is.
      { numRuns: RUNS, endOnFailure: true },
    );
    // The schedules must actually exercise the protocol, or passing would prove little.
    expect(totals.runs).toBe(RUNS);
    expect(totals.committed).toBeGreaterThan(RUNS * 20);
    expect(totals.elections).toBeGreaterThan(RUNS);
    expect(totals.reads).toBeGreaterThan(RUNS * 2);
    expect(totals.installs).toBeGreaterThan(RUNS / 20);
    expect(totals.configChanges).toBeGreaterThan(RUNS / 2);
    expect(totals.snapshots).toBeGreaterThan(RUNS);
    expect(worstCommitMs).toBeGreaterThan(0);
    console.info(
      `[sim] ${RUNS} schedules x ${STEPS} steps: ${JSON.stringify(totals)}; ` +
        `liveness worst case (virtual ms after faults stopped): leader after ${worstLeaderMs}, commit after ` +
        `${worstCommitMs}; tightest margin to the commit bound ${Math.round(tightestMarginMs)} ms`,
    );
  });

  it('ends live when every voter crashed before persisting the bootstrap configuration (seed 1621778730)', () => {
    // Found by `pnpm soak`: all three voters crashed at time 0, keeping term 1 but losing the configuration entry.
    // The core refused a second createCluster (it had a term), so no node could ever campaign.
    const r = runSchedule({ seed: 1621778730, steps: 200 });
    expect(r.commitAfterMs).toBeGreaterThanOrEqual(0);
    expect(r.committed).toBeGreaterThan(0);
  });

  it("a check that fails inside a node's runtime is reported as itself, not as a stalled node (seed 1750863771)", () => {
    // Found by the default schedules: a durability check raised inside a node's turn was taken by the runtime for
    // its own failure, the node went silent and the run failed as "liveness". The simulation now surfaces such
    // violations after the event (and a runtime that stops is itself a violation); this seed then passes.
    const r = runSchedule({ seed: 1750863771, steps: 200 });
    expect(r.commitAfterMs).toBeGreaterThanOrEqual(0);
    expect(r.committed).toBeGreaterThan(0);
  });

  it('a reply meant for a crashed incarnation never answers its successor (seed 325466742)', () => {
    // Found by a soak: n4 forwarded a command as #1, crashed, restarted and forwarded another command as #1 again;
    // the old #1's NOT_A_MEMBER reply reached the new runtime and answered the new command "not applied" although
    // it was being committed. A reply travels on its request's connection, which dies with the requester.
    const r = runSchedule({ seed: 325466742, steps: 200 });
    expect(r.committed).toBeGreaterThan(0);
  });

  it('a node that lost an unsynced term may lead that term again (seed 1511615900)', () => {
    // Found by a soak once the simulated disk kept term and vote apart until an fsync: the only voter won term 5,
    // appended entries, crashed before any of it was durable (so nothing of it had left the node), restarted in
    // term 4, won term 5 again and wrote other entries at the same indexes. Safe; the checker now forgets entries
    // that existed only in a crashed node's memory instead of calling this a log-matching violation.
    const r = runSchedule({ seed: 1511615900, steps: 200 });
    expect(r.committed).toBeGreaterThan(0);
  });

  it('a leadership that never reached the disk is forgotten at the crash (seed 643486896)', () => {
    // Found by the default schedules: the only voter won term 6 and crashed before term 6 was durable (so no message
    // of that term left it); after the restart a removed-but-not-yet-committed member won term 6. Safe; the checker
    // used to call it two leaders in one term.
    const r = runSchedule({ seed: 643486896, steps: 200 });
    expect(r.committed).toBeGreaterThan(0);
  });

  it("a local snapshot is not taken while a leader's snapshot is being installed (seed 412846865)", () => {
    // Found by the default schedules: n4 received a leader's snapshot at 30 and, while it was being made durable,
    // took its own at 23; the older one reached the disk last. storage-jsonl refuses an older snapshot (fatal, the
    // node stops); the simulated disk now refuses it the same way, and the runtime no longer takes one then.
    const r = runSchedule({ seed: 412846865, steps: 200 });
    expect(r.committed).toBeGreaterThan(0);
  });

  it('replay: runs RAFT_SIM_SEED (default seed 1) with a full trace and prints it on failure', () => {
    const seed = REPLAY_SEED ?? 1;
    let failure: ScheduleFailure | null = null;
    try {
      const r = runSchedule({ seed, steps: STEPS, traceLimit: 2000 });
      console.info(
        `[sim] seed ${seed}: ${r.committed} entries committed, ${r.elections} elections, ${r.readsServed} reads, ` +
          `${r.installs} snapshot installs, ${r.configChanges} config changes, ${r.virtualMs} virtual ms; profile ${JSON.stringify(r.profile)}`,
      );
    } catch (e) {
      if (!(e instanceof ScheduleFailure)) throw e;
      failure = e;
      console.error(explainFailure(e));
    }
    expect(failure === null ? 'passed' : `${failure.message}\n  replay: ${replayCommand(seed)}`).toBe('passed');
  });
});
