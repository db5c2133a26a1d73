import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFaultTest } from '../src/run.js';
import { formatSummary } from '../src/summary.js';

const faultSeconds = Number(process.env.RAFT_FAULT_SECONDS ?? 60);
const nodes = Number(process.env.RAFT_FAULT_NODES ?? 3);
const seed = process.env.RAFT_FAULT_SEED ? Number(process.env.RAFT_FAULT_SEED) : Math.floor(Math.random() * 2 ** 31);

describe('fault injection against a real cluster', () => {
  it(
    `${nodes} raft-kvs processes under ${faultSeconds}s of crashes, pauses, partitions, membership changes and snapshots stay linearizable`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'raft-fault-'));
      const summary = await runFaultTest({ nodes, faultSeconds, seed, dir });
      const text = formatSummary(summary);
      console.log(text);
      // On failure the run directory (history.jsonl, summary.json, node logs and data) is kept and named above.
      expect(summary.passed, text).toBe(true);
      expect(summary.linearizability.verdict).toBe('linearizable');
      expect(summary.ops.ok).toBeGreaterThan(100);
      expect(summary.faults.total).toBeGreaterThan(0);
      if (faultSeconds >= 60) expect(Object.keys(summary.faults.byKind).length).toBeGreaterThanOrEqual(5);
      rmSync(dir, { recursive: true, force: true });
    },
    (faultSeconds + 240) * 1000,
  );

  it("catches stale reads end to end when clients read a node's local state (a deliberately broken setup)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-fault-stale-'));
    const summary = await runFaultTest({
      nodes: 3,
      faultSeconds: 20,
      seed,
      dir,
      readKind: 'LocalQuery',
      faults: ['isolate-leader', 'partition-majority', 'pause'],
    });
    const text = formatSummary(summary);
    console.log(text);
    expect(summary.linearizability.verdict, text).toBe('not-linearizable');
    expect(summary.linearizability.report).toMatch(/cannot be linearized/);
    expect(summary.passed).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  }, 240_000);
});
