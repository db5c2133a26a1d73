// Shared knobs of the simulator's tests, read from the environment so a soak or a replay needs no code change.
import { formatTraceEvent, runSchedule, ScheduleFailure, type ScheduleReport } from '../src/index.js';

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${raw}`);
  return n;
}

/** Random schedules per test run (RAFT_SIM_RUNS; default 2,000; `pnpm soak` uses 20,000). */
export const RUNS = envInt('RAFT_SIM_RUNS', 2000);
/** Steps per schedule (RAFT_SIM_STEPS; default 200). */
export const STEPS = envInt('RAFT_SIM_STEPS', 200);
/** The seed the `replay` test runs (RAFT_SIM_SEED), if any. */
export const REPLAY_SEED = process.env.RAFT_SIM_SEED === undefined ? undefined : envInt('RAFT_SIM_SEED', 0);

/** The one-line command that replays `seed` deterministically, with its full trace. */
export function replayCommand(seed: number, steps = STEPS): string {
  const stepsVar = steps === 200 ? '' : ` RAFT_SIM_STEPS=${steps}`;
  // `--` makes pnpm hand `-t replay` to vitest (without it pnpm drops the flag; the property test then notices
  // RAFT_SIM_SEED and runs only that seed, so the shorter form replays too, just with the other test files).
  return `RAFT_SIM_SEED=${seed}${stepsVar} pnpm --filter @raft/sim test -- -t replay`;
}

/** Runs a schedule; on failure throws an error whose message names the seed and the replay command. */
export function runOrExplain(seed: number, steps = STEPS): ScheduleReport {
  try {
    return runSchedule({ seed, steps, traceLimit: 0 });
  } catch (e) {
    const what = e instanceof ScheduleFailure ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    throw new Error(`simulation failed: ${what}\n  replay: ${replayCommand(seed, steps)}`);
  }
}

/** Formats a failure's trace for the replay test's output. */
export function explainFailure(f: ScheduleFailure): string {
  return [...f.trace.map(formatTraceEvent), f.message].join('\n');
}
