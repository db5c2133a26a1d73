import { describe, expect, it } from 'vitest';
import { type AppendEntries, RaftNode } from '../src/index.js';
import { cluster, Harness } from './harness.js';

const ids = ['n1', 'n2', 'n3'];

describe('bootstrap and election', () => {
  it('a single-node cluster elects itself and commits proposals', () => {
    const h = new Harness(['a']);
    expect(h.node('a').createCluster().ok).toBe(true);
    h.drain('a');
    expect(h.node('a').role).toBe('leader');
    h.propose('x');
    expect(h.state.get('a')).toEqual(['x']);
    expect(h.node('a').commitIndex).toBe(3); // config, no-op, command
  });

  it('refuses to bootstrap twice and refuses proposals on followers with a leader hint', () => {
    const h = cluster(ids);
    const again = h.node('n1').createCluster(ids);
    expect(again.ok).toBe(false);
    if (!again.ok) expect(again.error.code).toBe('ALREADY_INITIALIZED');
    const r = h.node('n2').propose('x');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('NOT_LEADER');
      expect(r.error.leaderId).toBe('n1');
    }
  });

  it('bootstraps again after a crash that kept the hard state of createCluster but lost its configuration entry', () => {
    const voters = ['n1', 'n2', 'n3'];
    // Durable state after the crash: term 1 and no vote (persisted), the config entry lost.
    const n1 = RaftNode.restart('n1', { hardState: { term: 1, votedFor: null }, snapshot: null, entries: [] });
    expect(n1.config.voters).toEqual([]);
    const r = n1.createCluster(voters);
    expect(r.ok).toBe(true);
    expect(n1.currentTerm).toBe(1);
    expect(n1.config.voters).toEqual(voters);
    // A one-voter bootstrap also persists a vote for itself.
    const solo = RaftNode.restart('a', { hardState: { term: 1, votedFor: 'a' }, snapshot: null, entries: [] });
    expect(solo.createCluster(['a']).ok).toBe(true);
    expect(solo.role).toBe('leader');
    // But not a node that took part in a cluster: a later term, a vote for another node, or any log.
    const refused = [
      RaftNode.restart('n1', { hardState: { term: 2, votedFor: null }, snapshot: null, entries: [] }),
      RaftNode.restart('n1', { hardState: { term: 1, votedFor: 'n2' }, snapshot: null, entries: [] }),
      RaftNode.restart('n1', {
        hardState: { term: 1, votedFor: null },
        snapshot: null,
        entries: [{ index: 1, term: 1, type: 'config', config: { voters, learners: [] } }],
      }),
    ];
    for (const n of refused) {
      const again = n.createCluster(voters);
      expect(again.ok).toBe(false);
      if (!again.ok) expect(again.error.code).toBe('ALREADY_INITIALIZED');
    }
  });

  it('elects a leader through PreVote and replicates to every node', () => {
    const h = cluster(ids);
    expect(h.leader()?.id).toBe('n1');
    expect(h.node('n1').currentTerm).toBe(2);
    h.propose('a');
    h.propose('b');
    h.heartbeats();
    for (const id of ids) expect(h.state.get(id)).toEqual(['a', 'b']);
  });

  it('a partitioned node does not disturb the cluster when it returns (PreVote)', () => {
    const h = cluster(ids);
    h.propose('a');
    for (const p of ['n1', 'n2']) {
      h.blocked.add(`n3>${p}`);
      h.blocked.add(`${p}>n3`);
    }
    for (let i = 0; i < 5; i++) h.fire('n3');
    expect(h.node('n3').currentTerm).toBe(2); // pre-votes never raise the term
    h.blocked.clear();
    h.fire('n3'); // its pre-vote is refused: the others hear from a leader
    expect(h.leader()?.id).toBe('n1');
    expect(h.node('n1').currentTerm).toBe(2);
    h.heartbeats();
    expect(h.node('n3').leaderId).toBe('n1');
  });

  it('a leader that loses its quorum steps down (CheckQuorum)', () => {
    const h = cluster(ids, { electionTicks: 4 });
    h.down.add('n2');
    h.down.add('n3');
    for (let i = 0; i < 8 && h.node('n1').role === 'leader'; i++) h.fire('n1');
    expect(h.node('n1').role).toBe('follower');
  });

  it('a vote from a higher term is ignored while the leader is healthy, honoured after a timeout', () => {
    const h = cluster(ids);
    const n2 = h.node('n2');
    n2.handleMessage({
      type: 'RequestVote',
      term: 9,
      from: 'n3',
      to: 'n2',
      preVote: false,
      lastLogIndex: 99,
      lastLogTerm: 9,
      transfer: false,
    });
    expect(n2.currentTerm).toBe(2);
    h.timeout('n2'); // election timer fires: n2 forgets the leader
    h.queue = [];
    n2.handleMessage({
      type: 'RequestVote',
      term: 9,
      from: 'n3',
      to: 'n2',
      preVote: false,
      lastLogIndex: 99,
      lastLogTerm: 9,
      transfer: false,
    });
    expect(n2.currentTerm).toBe(9);
    expect(n2.votedFor).toBe('n3');
  });
});

describe('replication', () => {
  it('batches all proposals of one turn into one AppendEntries per follower', () => {
    const h = cluster(ids);
    const leader = h.node('n1');
    for (let i = 0; i < 256; i++) expect(leader.propose(`c${i}`).ok).toBe(true);
    const appends = leader
      .takeActions()
      .flatMap((a) => (a.type === 'send' && a.message.type === 'AppendEntries' ? [a.message] : []));
    expect(appends.map((m) => m.to).sort()).toEqual(['n2', 'n3']);
    for (const m of appends) expect((m as AppendEntries<string>).entries.length).toBe(256);
  });

  it('pipelines: several batches are in flight before the first is acknowledged', () => {
    const h = cluster(ids, { maxInflightMessages: 4 });
    h.propose('warm');
    const leader = h.node('n1');
    const sent: AppendEntries<string>[] = [];
    for (let b = 0; b < 6; b++) {
      leader.propose(`b${b}`);
      for (const a of leader.takeActions()) {
        if (a.type === 'send' && a.message.type === 'AppendEntries' && a.message.to === 'n2') sent.push(a.message);
      }
    }
    expect(sent.length).toBe(4); // the window, not one round trip per batch
  });

  it('followers acknowledge only persisted entries; the leader counts itself only once persisted', () => {
    const h = cluster(ids);
    h.holdWrites.add('n2');
    h.holdWrites.add('n3');
    const idx = h.propose('x');
    expect(h.node('n1').commitIndex).toBeLessThan(idx);
    h.flushWrites('n2');
    h.deliverAll();
    expect(h.node('n1').commitIndex).toBe(idx);

    // The leader may send before its own fsync: two followers alone form a quorum.
    h.holdWrites.clear();
    h.flushWrites('n3');
    h.deliverAll();
    h.holdWrites.add('n1');
    const idx2 = h.propose('y');
    expect(h.node('n1').commitIndex).toBe(idx2);
    // With one follower down, the leader's own durability is needed.
    h.down.add('n3');
    const idx3 = h.propose('z');
    expect(h.node('n1').commitIndex).toBeLessThan(idx3);
    h.flushWrites('n1');
    h.deliverAll();
    expect(h.node('n1').commitIndex).toBe(idx3);
  });

  it('backs up quickly over a long divergent suffix using conflict hints', () => {
    const h = cluster(ids);
    h.propose('base');
    // n3 is cut off, then leader n1 keeps a long tail of uncommitted entries of its own term.
    h.down.add('n2');
    h.down.add('n3');
    for (let i = 0; i < 50; i++) h.node('n1').propose(`lost${i}`);
    h.drain('n1');
    h.queue = [];
    h.crash('n1');
    h.down.delete('n2');
    h.down.delete('n3');
    h.elect('n2');
    expect(h.leader()?.id).toBe('n2');
    for (let i = 0; i < 5; i++) h.propose(`new${i}`);
    h.restart('n1');
    h.queue = [];
    const before = h.trace.length;
    h.heartbeats(2);
    const rejections = h.trace.slice(before).filter((t) => t.startsWith('n1 send')).length;
    expect(h.node('n1').lastLogIndex).toBe(h.node('n2').lastLogIndex);
    expect(h.state.get('n1')).toEqual(h.state.get('n2'));
    expect(rejections).toBeLessThan(10); // not one round trip per divergent entry
  });

  it('does not commit an entry of an earlier term by counting replicas (Figure 8)', () => {
    const h = cluster(ids);
    h.propose('a');
    // n1 appends an entry in term 2 that only n2 receives, then crashes.
    h.down.add('n3');
    h.node('n1').propose('old');
    h.drain('n1');
    h.queue = h.queue.filter((m) => m.to === 'n2');
    h.holdWrites.add('n2');
    h.deliverAll();
    h.crash('n1');
    h.holdWrites.delete('n2');
    h.flushWrites('n2');
    h.queue = [];
    h.down.delete('n3');
    // n2 becomes leader of term 3; before its no-op commits, the term-2 entry must not count as committed.
    const n2 = h.node('n2');
    h.holdWrites.add('n3');
    h.elect('n2');
    expect(n2.role).toBe('leader');
    const oldIndex = n2.lastLogIndex - 1;
    expect(n2.termAt(oldIndex)).toBe(2);
    expect(n2.commitIndex).toBeLessThan(oldIndex);
    h.flushWrites('n3');
    h.deliverAll();
    expect(n2.commitIndex).toBe(n2.lastLogIndex);
  });

  it('a restarted follower recovers its log from disk and catches up', () => {
    const h = cluster(ids);
    h.propose('a');
    h.crash('n3');
    h.propose('b');
    h.propose('c');
    h.restart('n3');
    expect(h.node('n3').lastLogIndex).toBeGreaterThanOrEqual(3);
    h.heartbeats(4); // the leader notices the stalled pipeline after two quiet heartbeats and resends
    expect(h.state.get('n3')).toEqual(['a', 'b', 'c']);
  });

  it('is deterministic: the same inputs produce the same action stream', () => {
    const run = () => {
      const h = cluster(ids);
      for (let i = 0; i < 20; i++) h.propose(`c${i}`);
      h.crash('n1');
      h.elect('n2');
      h.propose('after');
      h.restart('n1');
      h.heartbeats(3);
      h.node('n2').read('r1');
      h.drain('n2');
      h.deliverAll();
      return JSON.stringify(h.trace) + JSON.stringify([...h.state]);
    };
    expect(run()).toBe(run());
  });
});

describe('membership', () => {
  it('adds a server as a learner and promotes it through joint consensus once caught up', () => {
    const h = cluster(ids);
    for (let i = 0; i < 10; i++) h.propose(`c${i}`);
    h.add('n4');
    const r = h.node('n1').addServer('n4');
    expect(r.ok).toBe(true);
    h.drain('n1');
    h.deliverAll();
    h.heartbeats(3);
    const cfg = h.node('n1').committedConfig;
    expect(cfg.voters).toContain('n4');
    expect(cfg.oldVoters).toBeUndefined();
    expect(h.state.get('n4')).toEqual(h.state.get('n1'));
    const configs = h.applied.get('n1')!.flatMap((e) => (e.type === 'config' ? [e.config] : []));
    expect(configs.some((c) => c.oldVoters !== undefined)).toBe(true);
  });

  it('refuses a second change while one is in progress', () => {
    const h = cluster(ids);
    h.holdWrites.add('n2');
    h.holdWrites.add('n3');
    expect(h.node('n1').addLearner('n4').ok).toBe(true);
    const again = h.node('n1').addLearner('n5');
    expect(again.ok).toBe(false);
    if (!again.ok) expect(again.error.code).toBe('CONFIG_CHANGE_IN_PROGRESS');
  });

  it('a removed leader steps down after the change commits and the rest elect a new leader', () => {
    const h = cluster(ids);
    h.propose('a');
    expect(h.node('n1').removeServer('n1').ok).toBe(true);
    h.drain('n1');
    h.deliverAll();
    h.heartbeats(2);
    expect(h.node('n1').role).toBe('follower');
    expect(h.node('n1').committedConfig.voters).toEqual(['n2', 'n3']);
    h.fire('n2');
    expect(h.leader()?.id).toBe('n2');
    h.propose('b');
    // The removed node never campaigns.
    for (let i = 0; i < 3; i++) h.fire('n1');
    expect(h.leader()?.id).toBe('n2');
  });
});

describe('snapshots', () => {
  it('compacts the log and catches a lagging node up with a chunked snapshot', () => {
    const h = cluster(ids, { snapshotChunkBytes: 8 });
    h.crash('n3');
    for (let i = 0; i < 20; i++) h.propose(`c${i}`);
    h.heartbeats();
    const meta = h.snapshot('n1');
    expect(h.node('n1').firstLogIndex).toBe(meta.index + 1);
    h.restart('n3');
    const before = h.trace.length;
    h.heartbeats(3);
    const chunks = h.trace.slice(before).filter((t) => t === 'n3 saveSnapshotChunk').length;
    expect(chunks).toBeGreaterThan(3);
    h.propose('after');
    h.heartbeats();
    expect(h.state.get('n3')).toEqual(h.state.get('n1'));
    expect(h.node('n3').snapshot?.index).toBe(meta.index);
  });

  it('restarts from a snapshot plus the entries after it', () => {
    const h = cluster(ids);
    for (let i = 0; i < 5; i++) h.propose(`c${i}`);
    h.heartbeats();
    h.snapshot('n2');
    h.propose('later');
    h.heartbeats();
    h.crash('n2');
    h.restart('n2');
    h.heartbeats(2);
    expect(h.state.get('n2')).toEqual(h.state.get('n1'));
  });
});

describe('reads', () => {
  it('serves ReadIndex reads after one shared heartbeat round', () => {
    const h = cluster(ids);
    h.propose('a');
    const leader = h.node('n1');
    leader.read(1);
    leader.read(2);
    const sends = leader.takeActions().filter((a) => a.type === 'send');
    expect(sends.length).toBe(2); // one round for both reads: one message per follower
    for (const a of sends) if (a.type === 'send') h.queue.push(a.message);
    h.deliverAll();
    expect(h.reads.filter((r) => r.index !== undefined).map((r) => r.readId)).toEqual([1, 2]);
  });

  it('does not confirm a read on a leader that is cut off from its quorum', () => {
    const h = cluster(ids);
    h.down.add('n2');
    h.down.add('n3');
    h.node('n1').read('r');
    h.drain('n1');
    h.deliverAll();
    expect(h.reads).toEqual([]);
  });

  it('a follower reads through the leader and waits until it has applied the read index', () => {
    const h = cluster(ids);
    h.propose('a');
    h.node('n2').read('f');
    h.drain('n2');
    h.deliverAll();
    const r = h.reads.find((x) => x.readId === 'f');
    expect(r?.node).toBe('n2');
    expect(r?.index).toBeGreaterThanOrEqual(3);
    expect(h.node('n2').lastApplied).toBeGreaterThanOrEqual(r!.index!);
  });

  // Issue 14: a lost ReadIndexRequest (or its answer) left the follower's read waiting for ever, with a healthy
  // leader. The follower now sends it again once `electionTicks` of the leader's heartbeat rounds went by.
  for (const lost of ['ReadIndexRequest', 'ReadIndexResponse'] as const) {
    it(`a follower whose ${lost} is lost sends the request again after electionTicks heartbeats`, () => {
      const h = cluster(ids, { electionTicks: 5 });
      h.propose('a');
      h.node('n2').read('f');
      h.drain('n2');
      // Deliver everything, losing the one read message of the given type.
      let dropped = 0;
      for (let i = 0; i < 1_000 && h.queue.length > 0; i++) {
        const m = h.queue[0];
        if (m.type === lost && dropped === 0) {
          h.queue.shift();
          dropped++;
          continue;
        }
        h.deliverAll(1);
      }
      expect(dropped).toBe(1);
      expect(h.reads).toEqual([]);
      h.heartbeats(3); // fewer rounds than the bound: still waiting
      expect(h.reads).toEqual([]);
      h.heartbeats(3);
      const r = h.reads.find((x) => x.readId === 'f');
      expect(r?.node).toBe('n2');
      expect(r?.failed).toBeUndefined();
      expect(r?.index).toBeGreaterThanOrEqual(3);
    });
  }

  it('a forwarded read is sent again once per bound, and answered once even if both answers arrive', () => {
    const h = cluster(ids, { electionTicks: 4 });
    h.propose('a');
    const n2 = h.node('n2');
    n2.read('f');
    const first = n2.takeActions().filter((a) => a.type === 'send' && a.message.type === 'ReadIndexRequest');
    expect(first.length).toBe(1);
    // Hold the first request back; heartbeats advance the leader's rounds.
    const held = first[0].type === 'send' ? first[0].message : null;
    let resent = 0;
    for (let round = 1; round <= 4; round++) {
      h.timeout('n1');
      for (let i = 0; i < 100 && h.queue.length > 0; i++) {
        const m = h.queue.shift()!;
        if (m.type === 'ReadIndexRequest') {
          resent++;
          h.queue.unshift(m);
          break;
        }
        h.nodes.get(m.to)!.handleMessage(m);
        h.drain(m.to);
      }
      if (resent > 0) {
        expect(round).toBe(4);
        break;
      }
    }
    expect(resent).toBe(1);
    h.queue.push(held!);
    h.deliverAll();
    expect(h.reads.filter((x) => x.readId === 'f').length).toBe(1);
    expect(h.reads.find((x) => x.readId === 'f')?.index).toBeGreaterThanOrEqual(3);
  });

  it('a leader fails a read it cannot confirm within electionTicks heartbeats (CheckQuorum off)', () => {
    const h = cluster(ids, { electionTicks: 5, checkQuorum: false });
    h.propose('a');
    h.down.add('n2');
    h.down.add('n3');
    h.node('n1').read('r');
    h.drain('n1');
    for (let i = 0; i < 4; i++) h.fire('n1');
    expect(h.reads).toEqual([]);
    h.fire('n1');
    expect(h.reads).toEqual([{ node: 'n1', readId: 'r', failed: 'LEADERSHIP_LOST' }]);
    expect(h.node('n1').role).toBe('leader');
  });

  it('a leader fails, within the bound, reads waiting for its no-op and tells the follower that asked', () => {
    const h = cluster(ids, { electionTicks: 5, checkQuorum: false });
    // n2 wins an election, but n1's and n3's disks stall: its no-op never commits.
    h.holdWrites.add('n1');
    h.holdWrites.add('n3');
    h.elect('n2');
    expect(h.leader()?.id).toBe('n2');
    h.node('n2').read('own');
    h.drain('n2');
    h.node('n3').read('fwd');
    h.drain('n3');
    h.deliverAll();
    expect(h.reads).toEqual([]);
    for (let i = 0; i < 5; i++) h.fire('n2');
    expect(h.reads).toContainEqual({ node: 'n2', readId: 'own', failed: 'LEADERSHIP_LOST' });
    expect(h.reads).toContainEqual({ node: 'n3', readId: 'fwd', failed: 'LEADERSHIP_LOST' });
  });

  it('a read on a node without a leader fails at once', () => {
    const h = new Harness(['x']);
    h.node('x').read('q');
    h.drain('x');
    expect(h.reads).toEqual([{ node: 'x', readId: 'q', failed: 'NOT_LEADER' }]);
  });
});

describe('leadership transfer', () => {
  it('hands leadership to the target and refuses proposals meanwhile', () => {
    const h = cluster(ids);
    h.crash('n2');
    h.propose('a');
    h.restart('n2');
    const leader = h.node('n1');
    expect(leader.transferLeadership('n2').ok).toBe(true);
    const p = leader.propose('blocked');
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.error.code).toBe('TRANSFER_IN_PROGRESS');
    h.drain('n1');
    h.deliverAll();
    h.heartbeats(4);
    expect(h.leader()?.id).toBe('n2');
    expect(h.node('n1').role).toBe('follower');
  });

  it('gives up after an election timeout if the target does not win', () => {
    const h = cluster(ids, { electionTicks: 4 });
    h.down.add('n3');
    expect(h.node('n1').transferLeadership('n3').ok).toBe(true);
    for (let i = 0; i < 5; i++) h.fire('n1');
    expect(h.node('n1').transferTarget).toBeNull();
    expect(h.node('n1').propose('ok').ok).toBe(true);
  });
});

describe('purity', () => {
  it('restart refuses a log with a hole', () => {
    expect(() =>
      RaftNode.restart('a', {
        hardState: { term: 1, votedFor: null },
        snapshot: null,
        entries: [{ term: 1, index: 2, type: 'noop' }],
      }),
    ).toThrow(/does not follow/);
  });
});
