import { describe, expect, it } from 'vitest';
import { cluster } from './harness.js';

// Bugs the deterministic simulator (@raft/sim) found in the core, pinned down as hand-written scenarios.
describe('regressions found by the simulator', () => {
  it('a losing candidate cannot commit its stale suffix from the new leader heartbeat', () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const h = cluster(ids, { preVote: false, checkQuorum: false });
    h.propose('a');
    h.heartbeats(1);
    // n1 replicates b and c to n3 only: they stay uncommitted (2 of 5).
    for (const to of ['n2', 'n4', 'n5']) h.blocked.add(`n1>${to}`);
    h.propose('b');
    h.propose('c');
    const n3 = h.node('n3');
    const staleFrom = n3.commitIndex + 1;
    expect(n3.lastLogIndex).toBeGreaterThan(staleFrom);
    h.crash('n1');
    // n3 campaigns in a new term nobody hears about, so it never steps down through a higher term.
    for (const to of ids) h.blocked.add(`n3>${to}`);
    h.fire('n3');
    expect(n3.role).toBe('candidate');
    // n2 wins the same term with n4 and n5 and commits its no-op at n3's stale index, out of n3's sight.
    h.blocked.add('n2>n3');
    h.fire('n2');
    expect(h.leader()?.id).toBe('n2');
    expect(n3.currentTerm).toBe(h.node('n2').currentTerm);
    expect(h.node('n2').commitIndex).toBeGreaterThanOrEqual(staleFrom);
    // Back in touch: a read round makes n2 broadcast an empty heartbeat anchored below n3's stale suffix.
    h.blocked.delete('n2>n3');
    h.node('n2').read('r');
    h.drain('n2');
    h.deliverAll();
    // Whatever n3 applied must be what the leader has at those indexes.
    for (const e of h.applied.get('n3')!) expect(h.node('n2').termAt(e.index)).toBe(e.term);
    expect(n3.commitIndex).toBeLessThanOrEqual(h.node('n2').commitIndex);
  });

  it('a leader removed by a C_new that is not yet committed still campaigns (dissertation 4.1)', () => {
    const h = cluster(['n1', 'n2', 'n3']);
    const n1 = h.node('n1');
    expect(n1.removeServer('n1').ok).toBe(true);
    h.drain('n1');
    // Deliver one message at a time until the joint entry commits and n1 appends C_new = {n2, n3}.
    while (n1.config.oldVoters !== undefined || n1.config.voters.includes('n1')) {
      expect(h.deliverAll(1)).toBe(1);
    }
    // The followers' answers never arrive: C_new stays uncommitted and n1 loses leadership (CheckQuorum).
    h.blocked.add('n2>n1');
    h.blocked.add('n3>n1');
    h.heartbeats(25);
    expect(n1.role).toBe('follower');
    expect(n1.commitIndex).toBeLessThan(n1.lastLogIndex);
    // It may be the only node able to finish the change, so it must not sit out elections.
    h.timeout('n1');
    expect(n1.role).toBe('candidate');
  });
});
