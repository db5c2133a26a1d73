import { waitFor } from '@raft/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, silentLogger } from '../src/index.js';
import { Cluster, FAST, KvMachine, threeNodes } from './helpers.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

describe('3-node cluster over JSON-RPC', () => {
  it('is created with CreateCluster and AddServer, and serves commands and queries on every node', async () => {
    c = await Cluster.create();
    const [a, b, d] = await threeNodes(c);
    const ca = await c.client(a.id);
    const st = await ca.request<{ members: string[]; voters: string[] }>('GetServerState');
    expect(st.voters.sort()).toEqual([a.id, b.id, d.id].sort());
    for (const [i, s] of [a, b, d].entries()) {
      const cl = await c.client(s.id);
      expect(await cl.request('Apply', { kind: 'Command', input: { Put: [`k${i}`, i] } })).toBe(null);
    }
    for (const s of [a, b, d]) {
      const cl = await c.client(s.id);
      for (let i = 0; i < 3; i++) expect(await cl.request('Apply', { kind: 'Query', input: { Get: `k${i}` } })).toBe(i);
    }
    await waitFor(async () => (await d.localQuery({ Get: 'k2' })) === 2);
  });
});

describe('failures and membership', () => {
  it('elects a new leader after the leader is killed, and a restarted node catches up from its data dir', async () => {
    c = await Cluster.create();
    const [a, b, d] = await threeNodes(c);
    const leader = await c.leader();
    const ids = [a.id, b.id, d.id];
    const others = ids.filter((id) => id !== leader.id);
    const cl = await c.client(others[0]);
    for (let i = 0; i < 20; i++) await cl.request('Apply', { kind: 'Command', input: { Put: [`before${i}`, i] } });
    const killedId = leader.id;
    const killedAt = Date.now();
    await c.kill(killedId);
    // A follower keeps answering: it waits for the new leader and forwards to it. (With clientId and seq it may
    // also retry by itself if the old leader's connection dies under a forwarded request.)
    expect(await cl.request('Apply', { kind: 'Command', input: { Put: ['after', 1] }, clientId: 't', seq: 1 })).toBe(
      null,
    );
    const newLeader = await c.leader();
    expect(newLeader.id).not.toBe(killedId);
    // "Within a few election timeouts": generous for a loaded CI machine (the timeout is 250-500 ms here).
    expect(Date.now() - killedAt).toBeLessThan(8000);
    for (let i = 0; i < 20; i++) await cl.request('Apply', { kind: 'Command', input: { Put: [`while${i}`, i] } });
    // Restart the old leader from its data directory: it must catch up with what it missed.
    const back = await c.start(killedId);
    expect(back.id).toBe(killedId);
    await waitFor(async () => (await back.localQuery({ Get: 'while19' })) === 19, 15_000, 'restarted node to catch up');
    const cb = await c.client(back.id);
    expect(await cb.request('Apply', { kind: 'Query', input: { Get: 'after' } })).toBe(1);
    expect(await cb.request('Apply', { kind: 'Query', input: { Get: 'before7' } })).toBe(7);
    const hashes = await Promise.all(
      [...c.servers.values()].map(async (s) => {
        await waitFor(
          async () => (await s.getServerState()).appliedIndex >= (await newLeader.getServerState()).commitIndex,
        );
        return (await s.getServerState({ stateHash: true })).stateHash;
      }),
    );
    expect(new Set(hashes).size).toBe(1);
  });

  it('adds a fourth node and removes one while commands flow, losing no command', async () => {
    c = await Cluster.create();
    const [a, b, d] = await threeNodes(c);
    const e = await c.start();
    const cl = await c.client(a.id);
    let stop = false;
    let ok = 0;
    const failures: unknown[] = [];
    const load = (async () => {
      const end = Date.now() + 20_000;
      for (let i = 0; !stop && i < 5000 && Date.now() < end; i++) {
        try {
          await cl.request('Apply', { kind: 'Command', input: { Incr: 'n' } });
          ok++;
        } catch (err) {
          failures.push(err);
        }
      }
    })();
    await waitFor(() => ok > 20, 10_000, 'load to start');
    const admin = await c.client(b.id); // a follower (maybe): AddServer is forwarded to the leader
    const added = await admin.request<{ members: string[] }>('AddServer', { addr: e.id });
    expect(added.members.sort()).toEqual([a.id, b.id, d.id, e.id].sort());
    const removeId = (await c.leader()).id === d.id ? b.id : d.id;
    const removed = await admin.request<{ members: string[] }>('RemoveServer', { addr: removeId });
    expect(removed.members).not.toContain(removeId);
    expect(removed.members).toHaveLength(3);
    const before = ok;
    await waitFor(() => ok > before + 20, 10_000, 'commands to keep flowing');
    stop = true;
    await load;
    expect(failures).toEqual([]);
    // Every acknowledged increment was applied exactly once.
    const remaining = removed.members.map((id) => c.servers.get(id) as NonNullable<ReturnType<typeof c.servers.get>>);
    for (const s of remaining) {
      await waitFor(async () => (await s.localQuery({ Get: 'n' })) === ok, 10_000, `${s.id} to apply every command`);
    }
    const st = await e.getServerState();
    expect(st.membership).toBe('voter');
  });

  it('catches a new node up with a snapshot when the log was compacted', async () => {
    c = await Cluster.create();
    const a = await c.start(undefined, { autoSnapshotEntries: 50 });
    await a.createCluster();
    for (let i = 0; i < 120; i++) await a.apply({ Put: [`k${i}`, i] });
    await waitFor(async () => (await a.getServerState()).snapshotIndex >= 100, 10_000, 'an automatic snapshot');
    const st = await a.getServerState();
    expect(st.firstLogIndex).toBeGreaterThan(1);
    const b = await c.start(undefined, { autoSnapshotEntries: 50 });
    const res = await a.addServer(b.id);
    expect(res.members).toContain(b.id);
    await waitFor(async () => (await b.localQuery({ Get: 'k119' })) === 119, 10_000, 'b to catch up');
    const bs = await b.getServerState();
    expect(bs.counters.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(bs.snapshotIndex).toBeGreaterThanOrEqual(50);
    expect((await a.getServerState()).counters.snapshotsSent).toBeGreaterThanOrEqual(1);
    // And b restarts from its installed snapshot.
    await c.stop(b.id);
    const b2 = await c.start(b.id, { autoSnapshotEntries: 50 });
    expect(await b2.localQuery({ Get: 'k3' })).toBe(3);
    expect(await b2.query({ Get: 'k118' })).toBe(118);
  });

  it('splits AppendEntries and snapshots that exceed a small maxFrameBytes', async () => {
    c = await Cluster.create();
    const warnings: string[] = [];
    const logger = { info() {}, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
    const small = { maxFrameBytes: 4096, autoSnapshotEntries: 40, logger };
    const a = await c.start(undefined, small);
    const b = await c.start(undefined, small);
    await a.createCluster();
    await a.addServer(b.id);
    const value = 'v'.repeat(600);
    // Pipelined, so one turn's AppendEntries carries many 600-byte commands: far more than 4096 bytes.
    await Promise.all(Array.from({ length: 60 }, (_, i) => a.apply({ Put: [`big${i}`, value] })));
    await waitFor(async () => (await b.localQuery({ Get: 'big59' })) === value, 10_000, 'b to get every entry');
    // A third server joins after compaction: the snapshot (about 40 KB) travels in chunks below the frame size.
    const d = await c.start(undefined, small);
    await a.addServer(d.id);
    await waitFor(async () => (await d.localQuery({ Get: 'big0' })) === value, 10_000, 'd to install the snapshot');
    expect((await d.getServerState()).counters.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    // Nothing had to be dropped for being too large, and the frames really were small.
    expect(warnings).toEqual([]);
    const st = await a.getServerState();
    expect(st.counters.bytesSent / st.counters.framesSent).toBeLessThan(4100);
  });

  it('forms a cluster with a shared secret and shuts out a server with the wrong one', async () => {
    c = await Cluster.create();
    const opts = { secret: 'correct horse', clusterName: 'prod' };
    const a = await c.start(undefined, opts);
    const b = await c.start(undefined, opts);
    await a.createCluster();
    await a.addServer(b.id);
    expect(await b.apply({ Put: ['s', 1] })).toBe(null);
    const intruder = await c.start(undefined, { secret: 'battery staple', clusterName: 'prod' });
    const e = await a.addServer(intruder.id, { timeoutMs: 800 }).catch((err: Error) => err);
    expect((e as { code?: number }).code).toBe(-32003);
    // The intruder refused the leader's handshake (its secret differs), so it never got any entry.
    expect((await intruder.getServerState()).counters.peerConnectionsRejected).toBeGreaterThan(0);
    expect((await intruder.getServerState()).lastLogIndex).toBe(0);
    expect(await a.query({ Get: 's' })).toBe(1);
  });

  it('picks a port for address port 0 and reuses it when restarted on the same data dir', async () => {
    c = await Cluster.create();
    const dir = c.dataDir('port0');
    const mk = () =>
      createServer({ address: '127.0.0.1:0', dataDir: dir, machine: new KvMachine(), logger: silentLogger, ...FAST });
    const a = mk();
    await a.start();
    expect(a.id).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(a.id).not.toBe('127.0.0.1:0');
    await a.createCluster();
    await a.apply({ Put: ['p', 0] });
    await a.stop();
    const b = mk();
    await b.start();
    try {
      expect(b.id).toBe(a.id);
      expect(await b.query({ Get: 'p' })).toBe(0);
      // Another address on the same data directory is refused: the cluster knows the server by address.
      await expect(
        createServer({ address: '127.0.0.1:1', dataDir: dir, machine: new KvMachine(), logger: silentLogger }).start(),
      ).rejects.toThrow(/belongs to server/);
    } finally {
      await b.kill();
    }
  });
});

describe('exactly-once retries', () => {
  it('never answers "not applied" for a retried command whose first forwarded attempt was applied', async () => {
    c = await Cluster.create();
    const [a, b, d] = await threeNodes(c);
    // The leader applies the command, then dies (with the third node) before it can answer the forwarding node:
    // b's forwarded attempt is lost in flight, b retries it, and no leader can be found for the rest of the timeout.
    const m = c.machines.get(a.id) as KvMachine;
    const apply = m.apply.bind(m);
    m.apply = (input, ctx) => {
      const out = apply(input, ctx);
      const put = (input as { Put?: [string, unknown] }).Put;
      if (ctx.kind === 'Command' && put?.[0] === 'boom') {
        void a.kill();
        void d.kill();
      }
      return out;
    };
    const err = await b.apply({ Put: ['boom', 1] }, { clientId: 'client-1', seq: 1, timeoutMs: 1500 }).then(
      () => null,
      (e: unknown) => e as { code: number; message: string; data?: { notApplied?: boolean } },
    );
    expect(err).not.toBeNull();
    expect(err?.message).toMatch(/outcome is unknown/);
    expect(err?.data?.notApplied).toBe(false);
    // It was applied: once the others are back, the same clientId and seq return the original answer.
    c.servers.delete(a.id);
    c.servers.delete(d.id);
    await c.start(a.id);
    await c.start(d.id);
    await waitFor(async () => (await b.query({ Get: 'boom' }).catch(() => null)) === 1, 15_000, 'boom applied');
    expect(await b.apply({ Put: ['boom', 1] }, { clientId: 'client-1', seq: 1 })).toBe(null);
  });
});
