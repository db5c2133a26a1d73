import { describe, expect, it } from 'vitest';
import { niceCeil } from '../src/live/chart.js';
import { RECONNECT_MAX_MS, reconnectDelay } from '../src/live/rpc.js';
import { ago, type FollowerProgress, followerLag, parseServerState } from '../src/live/state.js';

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

describe('followerLag', () => {
  const p = (o: Partial<FollowerProgress>): FollowerProgress => ({
    matchIndex: 100,
    nextIndex: 101,
    lag: 5,
    state: 'replicate',
    inflight: 0,
    ...o,
  });
  it("is the leader's number for a follower the page reaches, or does not watch", () => {
    expect(followerLag(p({}), true)).toEqual({ known: true, lag: 5 });
    expect(followerLag(p({}), undefined)).toEqual({ known: true, lag: 5 });
    expect(followerLag(p({ state: 'probe', matchIndex: 7, lag: 3 }), true)).toEqual({ known: true, lag: 3 });
  });
  it('is unknown for a follower the page cannot reach (a frozen match index only grows the "lag")', () => {
    const v = followerLag(p({ lag: 5236, state: 'replicate' }), false);
    expect(v.known).toBe(false);
    expect(v.known ? '' : v.why).toMatch(/cannot reach/);
  });
  it('is unknown while the leader has heard nothing from it (probe, match index 0)', () => {
    const v = followerLag(p({ matchIndex: 0, lag: 300, state: 'probe' }), true);
    expect(v.known).toBe(false);
    expect(v.known ? '' : v.why).toMatch(/not heard/);
  });
});

describe('reconnectDelay', () => {
  it('starts at 1 s and doubles to a 30 s cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 100].map(reconnectDelay)).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
    expect(RECONNECT_MAX_MS).toBe(30_000);
    expect(reconnectDelay(0)).toBe(1000);
  });
  it('makes 9 attempts in the first 3 minutes of an outage', () => {
    let t = 0;
    let n = 0;
    for (let a = 1; a < 1000; a++) {
      t += reconnectDelay(a);
      if (t > 180_000) break;
      n++;
    }
    expect(n).toBe(9); // at 1, 3, 7, 15, 31 s, then every 30 s: 61, 91, 121, 151 (the next would be at 181 s)
  });
});

describe('ago', () => {
  it('prints a duration for people', () => {
    expect(ago(400)).toBe('0.4 s');
    expect(ago(-5)).toBe('0.0 s');
    expect(ago(12_300)).toBe('12 s');
    expect(ago(59_700)).toBe('1 min 0 s');
    expect(ago(185_000)).toBe('3 min 5 s');
  });
});
