/**
 * Benchmark: check generated histories of 10 000 operations on 5 keys from 10 processes (the size the fault tester
 * produces in a few minutes), linearizable and with an injected stale read. Run: `pnpm --filter
 * @raft/linearizability bench`.
 */

import { checkOperations } from '../src/check.js';
import { generateHistory, injectAnomaly, prng } from '../test/helpers.js';

const runs = Number(process.env.RAFT_BENCH_RUNS ?? 3);
for (const infoRate of [0, 0.02, 0.1]) {
  for (const recordPrev of [true, false]) {
    for (const anomaly of [false, true]) {
      const times: number[] = [];
      let verdict = '';
      let steps = 0;
      for (let run = 0; run < runs; run++) {
        const rand = prng(1000 + run);
        let ops = generateHistory(rand, {
          processes: 10,
          keys: 5,
          ops: 10_000,
          infoRate,
          failRate: 0.02,
          values: 'unique',
          recordPrev,
        });
        if (anomaly) ops = injectAnomaly(rand, ops, 'stale-read-mid') ?? ops;
        const t0 = performance.now();
        const r = checkOperations(ops, { timeLimitMs: 120_000 });
        times.push(performance.now() - t0);
        verdict = r.verdict;
        steps = r.steps;
      }
      times.sort((a, b) => a - b);
      console.log(
        `10000 ops, 5 keys, 10 procs, info ${infoRate}, prev ${recordPrev ? 'recorded' : 'unknown'}, ${anomaly ? 'stale read injected' : 'clean'}: ` +
          `median ${Math.round(times[Math.floor(times.length / 2)])} ms (min ${Math.round(times[0])}), verdict ${verdict}, ${steps} steps`,
      );
    }
  }
}
