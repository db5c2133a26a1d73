/**
 * The human-readable run summary.
 *
 * @packageDocumentation
 */
import type { RunSummary } from './run.js';

/** A run summary as text: verdict first, then counts, faults and every problem found. */
export function formatSummary(s: RunSummary): string {
  const lines = [
    `=== fault test ${s.passed ? 'PASSED' : 'FAILED'} (seed ${s.seed}, ${s.nodes} nodes, ${s.faultSeconds}s of faults, ${s.durationSeconds.toFixed(0)}s total)`,
    `operations: ${s.ops.total} (ok ${s.ops.ok}, fail ${s.ops.fail}, info ${s.ops.info}); ${Object.entries(s.ops.byF)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(
        ', ',
      )}; unknown outcomes retried with the same clientId/seq: ${s.ops.retried} (${s.ops.resolvedByRetry} resolved)`,
    `faults: ${s.faults.total} (${Object.entries(s.faults.byKind)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}); ${s.faults.problems} could not be carried out as planned`,
    `proxy: ${s.proxy.connections} connections, ${s.proxy.identified} identified as peers, ${s.proxy.resets} reset by partitions`,
    `linearizability: ${s.linearizability.verdict}${s.linearizability.note ? ` (${s.linearizability.note})` : ''} in ${s.linearizability.elapsedMs} ms`,
    `lost acknowledged writes: ${s.lostAcknowledgedWrites.length === 0 ? 'none' : s.lostAcknowledgedWrites.join('; ')}`,
    `convergence: ${s.convergence.detail}${s.convergence.leaderChanges ? `; leader changes seen per node since its last start: ${s.convergence.leaderChanges.join(', ')}` : ''}`,
    `crashes: ${s.crashes.length === 0 ? 'none' : s.crashes.join('; ')}`,
  ];
  if (s.problems.length > 0) lines.push(`problems: ${s.problems.join('; ')}`);
  if (s.linearizability.verdict !== 'linearizable') lines.push(s.linearizability.report);
  lines.push(
    s.passed
      ? `history and summary: ${s.dir}`
      : `history, node logs and data kept in ${s.dir}\nreplay the same fault schedule: ${s.replay}`,
  );
  return lines.join('\n');
}
