/**
 * `pnpm bench:lincheck`: the linearizability checker's CLI on generated histories, optionally next to another
 * checker run on the same files in the same run.
 *
 * Generates every shape in BENCH_SHAPES (packages/linearizability/src/generate.ts: seeded, so the files are the same
 * on every run) as JSON Lines, runs the built CLI (`raft-lincheck`, from dist: run `pnpm --filter
 * @raft/linearizability build` first; the root script does) on each file three times, and takes the median wall
 * time, start-up included. Every verdict is checked against the generator's ground truth (linearizable by
 * construction, or not linearizable with an injected anomaly); a wrong verdict fails the run. Writes the table to
 * docs/benchmarks.md between the bench:lincheck markers.
 *
 *   pnpm bench:lincheck                                   # our CLI only
 *   pnpm bench:lincheck --other porcupine=/path/to/binary # also run another checker (see --help)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuModel, replaceRegion } from '../apps/loadgen/src/index.js';
import { BENCH_SHAPES, generateBenchHistory } from '../packages/linearizability/src/generate.js';
import { formatHistory } from '../packages/linearizability/src/history.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages', 'linearizability', 'bin', 'raft-lincheck.cjs');

const HELP = `usage: pnpm bench:lincheck [options]

  --other NAME=PATH   also run the executable PATH on each history file (argument: the file), as column NAME; its
                      exit status must be 0 for linearizable, 1 for not linearizable, anything else for unknown
  --other-note TEXT   how that checker was built and run (printed under the table)
  --runs N            runs per history and checker (default 3; the median is reported)
  --timeout-s N       give up on one run after N seconds (default 120; it counts as unknown)
  --only NAMES        comma-separated shape names (default: all)
  --dir DIR           where the history files go (default: a temporary directory, removed afterwards)
  --no-write          print the table only; leave docs/ untouched
  -h, --help`;

interface Run {
  readonly ms: number;
  readonly verdict: 'linearizable' | 'not-linearizable' | 'unknown';
}

/**
 * The checkers' environment: ours, without NODE_EXTRA_CA_CERTS. Node reads and parses that certificate bundle when
 * it starts (about 40 ms on the machine these tables come from, where it is set for every process), and a checker
 * makes no TLS connection; leaving it in would time the machine's CA setup, not the checker.
 */
const CHECKER_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

/** Runs one checker on one file, timing it from spawn to exit. */
function runOnce(cmd: string, args: readonly string[], timeoutS: number): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    maxBuffer: 1 << 26,
    env: CHECKER_ENV,
  });
  const ms = performance.now() - t0;
  const verdict = r.status === 0 ? 'linearizable' : r.status === 1 ? 'not-linearizable' : 'unknown';
  return { ms, verdict };
}

/** `runs` runs, stopping early when one is unknown (a timeout would only repeat). Median time and the verdicts. */
function measure(cmd: string, args: readonly string[], runs: number, timeoutS: number) {
  const all: Run[] = [];
  for (let i = 0; i < runs; i++) {
    const r = runOnce(cmd, args, timeoutS);
    all.push(r);
    if (r.verdict === 'unknown') break;
  }
  const times = all.map((r) => r.ms).sort((a, b) => a - b);
  const verdicts = new Set(all.map((r) => r.verdict));
  const verdict = verdicts.size === 1 ? all[0].verdict : 'unknown';
  return { median: times[Math.floor(times.length / 2)], runs: all.length, verdict };
}

const fmtMs = (ms: number) => `${Math.round(ms).toLocaleString('en-US')} ms`;

function main(): void {
  const { values } = parseArgs({
    options: {
      other: { type: 'string' },
      'other-note': { type: 'string' },
      runs: { type: 'string', default: '3' },
      'timeout-s': { type: 'string', default: '120' },
      only: { type: 'string' },
      dir: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const runs = Number(values.runs);
  const timeoutS = Number(values['timeout-s']);
  const other = values.other?.split('=', 2) as [string, string] | undefined;
  const only = values.only?.split(',');
  const shapes = BENCH_SHAPES.filter((s) => only === undefined || only.includes(s.name));
  const dir = values.dir ?? join(ROOT, '.raft-data', `bench-lincheck-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const loadBefore = loadavg()[0];
  const started = new Date();
  const rows: string[] = [];
  let wrong = 0;
  try {
    for (const shape of shapes) {
      const { events, expected } = generateBenchHistory(shape);
      const file = join(dir, `${shape.name}.jsonl`);
      writeFileSync(file, formatHistory(events));
      const ours = measure(process.execPath, [CLI, file], runs, timeoutS);
      const theirs = other ? measure(other[1], [file], runs, timeoutS) : undefined;
      const cell = (m: { median: number; verdict: string }) =>
        m.verdict === 'unknown'
          ? `unknown after ${fmtMs(m.median)}`
          : m.verdict === expected
            ? fmtMs(m.median)
            : `**wrong: ${m.verdict}** (${fmtMs(m.median)})`;
      // `unknown` is reported in the table but is not a wrong verdict; a definite verdict against the truth is.
      if (ours.verdict !== expected && ours.verdict !== 'unknown') wrong++;
      const line = `| ${shape.label} | ${expected} | ${cell(ours)} |${theirs ? ` ${cell(theirs)} |` : ''}`;
      console.log(
        `[bench:lincheck] ${shape.name}: ours ${ours.verdict} ${fmtMs(ours.median)}${theirs ? `, ${other?.[0]} ${theirs.verdict} ${fmtMs(theirs.median)}` : ''}`,
      );
      rows.push(line);
    }
  } finally {
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const head = other
    ? `| history | ground truth | raft-lincheck | ${other[0]} |\n|---|---|---:|---:|`
    : '| history | ground truth | raft-lincheck |\n|---|---|---:|';
  const body = [
    `Measured ${started.toISOString().slice(0, 10)} on ${cpuModel()} (${availableParallelism()} CPUs), Node ${process.version}, by`,
    '`pnpm bench:lincheck` (scripts/bench-lincheck.ts): each history generated from its seed by',
    '`BENCH_SHAPES` in packages/linearizability/src/generate.ts, each checker run on the same file as a fresh process,',
    `wall time from spawn to exit (start-up and reading the file included; NODE_EXTRA_CA_CERTS, which costs Node`,
    `some 40 ms of start-up here, is unset for both), median of ${runs} runs (one when a run`,
    `gives up; a run is stopped after ${timeoutS} s). Verdicts are checked against the generator's ground truth.`,
    `The machine is shared with other work: 1-minute load average ${loadBefore.toFixed(1)} before and`,
    `${loadavg()[0].toFixed(1)} after the run on ${availableParallelism()} CPUs (above ${availableParallelism()} means other work competed for them), so`,
    'figures move a lot between runs; compare the columns of one run, not runs.',
    '',
    head,
    ...rows,
    ...(values['other-note'] ? ['', values['other-note']] : []),
  ].join('\n');
  console.log(body);
  if (!values['no-write']) {
    const docPath = join(ROOT, 'docs', 'benchmarks.md');
    const doc = readFileSync(docPath, 'utf8');
    writeFileSync(docPath, replaceRegion(doc, 'bench:lincheck', body, '## Linearizability checker'));
    console.log(`[bench:lincheck] wrote ${relative(ROOT, docPath)}`);
  }
  if (wrong > 0) {
    console.error(`[bench:lincheck] ${wrong} verdict(s) of raft-lincheck disagree with the ground truth`);
    process.exitCode = 1;
  }
}

main();
