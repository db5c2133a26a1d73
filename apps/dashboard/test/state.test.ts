import { describe, expect, it } from 'vitest';
import { niceCeil } from '../src/live/chart.js';
import { parseServerState } from '../src/live/state.js';

describe('parseServerState', () => {
  it('reads the ServerState fields the page shows', () => {
    const s = parseServerState(
      {
        id: '127.0.0.1:7001',
        role: 'leader',
        membership: 'voter',
        term: 4,
        votedFor: '127.0.0.1:7001',
        leader: '127.0.0.1:7001',
        voters: ['127.0.0.1:7001', '127.0.0.1:7002'],
        learners: ['127.0.0.1:7003'],
        commitIndex: 10,
        appliedIndex: 9,
        firstLogIndex: 5,
        lastLogIndex: 12,
        lastLogTerm: 4,
        snapshotIndex: 4,
        snapshotTerm: 2,
        followers: { '127.0.0.1:7002': { matchIndex: 8, nextIndex: 9, lag: 4, state: 'replicate', inflight: 1 } },
        counters: { commandsApplied: 7 },
        uptimeMs: 1500,
      },
      'x',
    );
    expect(s.role).toBe('leader');
    expect(s.followers?.['127.0.0.1:7002']).toEqual({
      matchIndex: 8,
      nextIndex: 9,
      lag: 4,
      state: 'replicate',
      inflight: 1,
    });
    expect(s.learners).toEqual(['127.0.0.1:7003']);
    expect(s.oldVoters).toBeNull();
    expect(s.commandsApplied).toBe(7);
  });

  it('tolerates missing and malformed fields (a node of another version must not break the page)', () => {
    const s = parseServerState(
      { term: 'x', voters: [1, 'a'], followers: { b: { matchIndex: 3 } }, lastLogIndex: 10 },
      'fallback',
    );
    expect(s.id).toBe('fallback');
    expect(s.term).toBe(0);
    expect(s.role).toBe('unknown');
    expect(s.voters).toEqual(['a']);
    expect(s.followers?.b.lag).toBe(7); // computed from lastLogIndex when the node does not send it
    expect(parseServerState(null, 'n').id).toBe('n');
  });
});

describe('niceCeil', () => {
  it('rounds up to 1, 2 or 5 times a power of ten', () => {
    expect(niceCeil(1)).toBe(1);
    expect(niceCeil(1.1)).toBe(2);
    expect(niceCeil(37)).toBe(50);
    expect(niceCeil(501)).toBe(1000);
    expect(niceCeil(0.3)).toBe(0.5);
  });
});
