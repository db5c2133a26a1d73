import { connect } from 'node:net';
import { freePort, waitFor } from '@raft/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { splitAddress } from '../src/address.js';
import { ErrorCode, RpcClient, RpcError } from '../src/index.js';
import { Cluster, KvMachine, threeNodes } from './helpers.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

/** Send raw text on a new connection and collect `n` answer lines. */
async function raw(addr: string, text: string | Buffer, n: number, timeoutMs = 10_000): Promise<unknown[]> {
  const { host, port } = splitAddress(addr)!;
  const s = connect({ host, port });
  const lines: unknown[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`only ${lines.length} of ${n} answers: ${JSON.stringify(lines)}`)),
      timeoutMs,
    );
    s.on('data', (d) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
      if (lines.length >= n) {
        clearTimeout(t);
        resolve();
      }
    });
    s.on('error', reject);
    s.write(text);
  });
  s.destroy();
  return lines;
}

async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcError) return e;
    throw e;
  }
  throw new Error('expected an RpcError');
}

describe('JSON-RPC protocol', () => {
  it('answers standard errors, batches and notifications, and keeps the connection usable', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const lines = await raw(
      a.id,
      [
        '{not json',
        '{"jsonrpc":"2.0","id":1,"method":"Nope"}',
        '{"jsonrpc":"1.0","id":2,"method":"GetServerState"}',
        '{"jsonrpc":"2.0","id":3,"method":"Apply","params":{"kind":"Sideways","input":1}}',
        '{"jsonrpc":"2.0","id":4,"method":"Apply","params":5}',
        '[]',
        '{"jsonrpc":"2.0","method":"GetServerState"}',
        '[{"jsonrpc":"2.0","id":5,"method":"GetServerState"},{"jsonrpc":"2.0","method":"GetServerState"},7]',
        '{"jsonrpc":"2.0","id":{"x":1},"method":"GetServerState"}',
        '{"jsonrpc":"2.0","id":"last","method":"Apply","params":{"kind":"Command","input":{"Put":["k",1]}}}',
        '',
      ].join('\n'),
      9,
    );
    const byId = (id: unknown) =>
      lines.find((l) => !Array.isArray(l) && (l as { id: unknown }).id === id) as {
        error?: { code: number; message: string };
        result?: unknown;
      };
    const nullIds = lines.filter((l) => !Array.isArray(l) && (l as { id: unknown }).id === null) as {
      error: { code: number };
    }[];
    expect(nullIds.map((l) => l.error.code).sort()).toEqual([-32700, -32600, -32600].sort());
    expect(byId(1).error?.code).toBe(-32601);
    expect(byId(2).error?.code).toBe(-32600);
    expect(byId(3).error?.code).toBe(-32602);
    expect(byId(4).error?.code).toBe(-32602);
    // A fresh server is no cluster member: commands say so at once, with an actionable message.
    expect(byId('last').error?.code).toBe(ErrorCode.NOT_A_MEMBER);
    expect(byId('last').error?.message).toMatch(/CreateCluster/);
    const batch = lines.find((l) => Array.isArray(l)) as { id?: unknown; result?: unknown; error?: { code: number } }[];
    expect(batch).toHaveLength(2); // the notification gets no answer
    expect(batch.find((r) => r.id === 5)?.result).toMatchObject({ id: a.id });
    expect(batch.find((r) => r.id === null)?.error?.code).toBe(-32600);
  });

  it('rejects an oversized line with an error and serves the next line', async () => {
    c = await Cluster.create();
    const a = await c.start(undefined, { maxLineBytes: 1024 });
    const big = `{"jsonrpc":"2.0","id":1,"method":"GetServerState","params":{"pad":"${'x'.repeat(5000)}"}}`;
    const lines = (await raw(a.id, `${big}\n{"jsonrpc":"2.0","id":2,"method":"GetServerState"}\n`, 2)) as {
      id: unknown;
      error?: { code: number; message: string };
      result?: unknown;
    }[];
    expect(lines[0].error?.code).toBe(-32600);
    expect(lines[0].error?.message).toMatch(/maxLineBytes/);
    expect(lines[1].id).toBe(2);
    expect(lines[1].result).toMatchObject({ id: a.id });
  });

  it('refuses CreateCluster twice, inputs the machine rejects, and pipelines requests', async () => {
    c = await Cluster.create();
    const a = await c.start(undefined, { storageSync: true }); // the real fsync path, once
    const cl = await c.client(a.id);
    // raftpico's benchmark sends these three pipelined on one connection.
    const b = await c.start();
    const [r1, r2, r3] = await Promise.all([
      cl.request<{ members: string[] }>('CreateCluster'),
      cl.request<{ members: string[] }>('AddServer', { addr: b.id }),
      cl.request<null>('Apply', { kind: 'Command', input: { Put: ['x', 1] } }),
    ]);
    expect(r1).toEqual({ members: [a.id] });
    expect(r2.members.sort()).toEqual([a.id, b.id].sort());
    expect(r3).toBe(null);
    expect((await rpcError(cl.request('CreateCluster'))).code).toBe(ErrorCode.CLUSTER_ALREADY_CREATED);
    const bad = await rpcError(cl.request('Apply', { kind: 'Command', input: { Fly: 1 } }));
    expect(bad.code).toBe(-32602);
    expect(bad.data?.reason).toMatch(/unknown operation/);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => cl.request('Apply', { kind: 'Command', input: { Put: [`p${i}`, i] } })),
    );
    expect(results.every((r) => r === null)).toBe(true);
    expect(await cl.request('Apply', { kind: 'Query', input: { Get: 'p199' } })).toBe(199);
    expect(await cl.request('Apply', { kind: 'LocalQuery', input: { Get: 'p0' } })).toBe(0);
    const snap = await cl.request<{ snapshotIndex: number }>('TakeSnapshot');
    expect(snap.snapshotIndex).toBeGreaterThan(200);
  });

  it('applies a retried command once (clientId + seq), across a leader failover', async () => {
    c = await Cluster.create();
    await threeNodes(c);
    const leader = await c.leader();
    const follower = [...c.servers.values()].find((s) => s.id !== leader.id) as NonNullable<typeof leader>;
    const cl = await c.client(follower.id);
    const first = await cl.request('Apply', { kind: 'Command', input: { Incr: 'n' }, clientId: 'c1', seq: 1 });
    const again = await cl.request('Apply', { kind: 'Command', input: { Incr: 'n' }, clientId: 'c1', seq: 1 });
    expect(first).toBe(1);
    expect(again).toBe(1);
    expect(await cl.request('Apply', { kind: 'Command', input: { Incr: 'n' }, clientId: 'c1', seq: 2 })).toBe(2);
    const stale = await rpcError(
      cl.request('Apply', { kind: 'Command', input: { Incr: 'n' }, clientId: 'c1', seq: 1 }),
    );
    expect(stale.code).toBe(ErrorCode.STALE_SEQUENCE);
    // The session table is replicated state: the new leader deduplicates too, even from a snapshot.
    await leader.takeSnapshot();
    await c.kill(leader.id);
    expect(await cl.request('Apply', { kind: 'Command', input: { Incr: 'n' }, clientId: 'c1', seq: 2 })).toBe(2);
    expect(await cl.request('Apply', { kind: 'Query', input: { Get: 'n' } })).toBe(2);
    const back = await c.start(leader.id);
    await waitFor(async () => (await back.getServerState()).sessions === 1, 10_000, 'sessions after restart');
    expect(await back.apply({ Incr: 'n' }, { clientId: 'c1', seq: 2 })).toBe(2);
    expect(await back.apply({ Incr: 'n' }, { clientId: 'c1', seq: 3 })).toBe(3);
  });
});

describe('membership edge cases', () => {
  it('a server that never comes up stays a learner, does not stall commits, and can be removed', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const b = await c.start();
    await a.createCluster();
    await a.addServer(b.id);
    const ghost = `127.0.0.1:${await freePort()}`; // nobody listens there
    const e = await rpcError(a.addServer(ghost, { timeoutMs: 600 }));
    expect(e.code).toBe(ErrorCode.TIMEOUT);
    expect(e.message).toMatch(/learner/);
    const st = await a.getServerState();
    expect(st.learners).toEqual([ghost]);
    expect(await b.apply({ Put: ['still', 'works'] })).toBe(null);
    expect((await b.removeServer(ghost)).members.sort()).toEqual([a.id, b.id].sort());
    // Removing a non-member is idempotent (a retried RemoveServer succeeds): the answer shows the members.
    expect((await a.removeServer(ghost)).members.sort()).toEqual([a.id, b.id].sort());
    // Removing the last voter is refused.
    await a.removeServer(b.id);
    const bad = await rpcError(a.removeServer(a.id));
    expect(bad.code).toBe(ErrorCode.INVALID_MEMBER);
    const last = await rpcError(a.call('RemoveServer', { addr: 'nonsense' }));
    expect(last.code).toBe(-32602);
  });
});

describe('no quorum', () => {
  it('answers NO_LEADER with an actionable message once the timeout passes, and recovers', async () => {
    c = await Cluster.create();
    await threeNodes(c);
    const leader = await c.leader();
    const [survivor, other] = [...c.servers.values()].filter((s) => s.id !== leader.id);
    const otherId = other.id;
    await c.kill(leader.id);
    await c.kill(otherId);
    await waitFor(
      async () => (await survivor.getServerState()).leader === null,
      10_000,
      'the survivor to lose its leader',
    );
    const e = await rpcError(survivor.apply({ Put: ['x', 1] }, { timeoutMs: 800 }));
    expect(e.code, e.message).toBe(ErrorCode.NO_LEADER);
    expect(e.message).toMatch(/no leader/);
    expect(e.data?.notApplied).toBe(true);
    const q = await rpcError(survivor.query({ Get: 'x' }, { timeoutMs: 800 }));
    expect(q.code, q.message).toBe(ErrorCode.NO_LEADER);
    // A quorum comes back: the survivor serves again.
    await c.start(otherId);
    expect(await survivor.apply({ Put: ['x', 2] }, { timeoutMs: 15_000 })).toBe(null);
  });
});

describe('a misbehaving Machine', () => {
  it('reports apply and snapshot failures to the caller and keeps serving', async () => {
    c = await Cluster.create();
    let failSnapshots = true;
    const machine = new KvMachine();
    const flaky = Object.assign(machine, {
      snapshot(): Uint8Array {
        if (failSnapshots) throw new Error('disk of the machine is full');
        return KvMachine.prototype.snapshot.call(machine);
      },
    });
    const a = await c.start(undefined, { machine: flaky, autoSnapshotEntries: 5 });
    await a.createCluster();
    // Incr on a non-number throws inside apply: the caller gets MACHINE_ERROR, the state is unchanged.
    await a.apply({ Put: ['s', 'text'] });
    const e = await rpcError(a.apply({ Incr: 's' }));
    expect(e.code).toBe(ErrorCode.MACHINE_ERROR);
    for (let i = 0; i < 20; i++) await a.apply({ Put: [`k${i}`, i] }); // auto-snapshots fail meanwhile
    const snap = await rpcError(a.takeSnapshot());
    expect(snap.code).toBe(ErrorCode.INTERNAL_ERROR);
    expect(snap.message).toMatch(/disk of the machine is full/);
    failSnapshots = false;
    expect((await a.takeSnapshot()).snapshotIndex).toBeGreaterThan(20);
    expect(await a.query({ Get: 'k19' })).toBe(19);
  });
});

describe('in-process API and WebSocket', () => {
  it('runs the same flows through the in-process API', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const b = await c.start();
    const d = await c.start();
    expect(await a.createCluster()).toEqual({ members: [a.id] });
    await a.addServer(b.id);
    expect((await b.addServer(d.id)).members.sort()).toEqual([a.id, b.id, d.id].sort()); // forwarded by b
    expect(await d.apply({ Put: ['k', { deep: [1, 2] }] })).toBe(null);
    expect(await b.query({ Get: 'k' })).toEqual({ deep: [1, 2] });
    await waitFor(async () => JSON.stringify(await d.localQuery({ Get: 'k' })) === '{"deep":[1,2]}');
    const st = await a.getServerState();
    expect(st.role).toBe('leader');
    expect(Object.keys(st.followers ?? {}).sort()).toEqual([b.id, d.id].sort());
    const t = await a.transferLeadership(b.id);
    expect(t.leader).toBe(b.id);
    await waitFor(async () => (await b.getServerState()).role === 'leader', 10_000, 'b to lead');
    expect((await a.removeServer(d.id)).members.sort()).toEqual([a.id, b.id].sort());
    expect(await a.apply({ Put: ['k2', 2] })).toBe(null);
    const err = await rpcError(a.call('Nope'));
    expect(err.code).toBe(-32601);
    const snap = await b.takeSnapshot();
    expect(snap.snapshotIndex).toBeGreaterThan(0);
    // A stopped server object is not restarted (its Machine already holds state): a new one is created instead.
    await c.stop(d.id);
    await expect(d.start()).rejects.toThrow(/fresh Machine/);
  });

  it('survives a leader crash and a restart through the in-process API', async () => {
    c = await Cluster.create();
    const [a, b, d] = [await c.start(), await c.start(), await c.start()];
    await a.createCluster();
    await a.addServer(b.id);
    await a.addServer(d.id);
    for (let i = 0; i < 10; i++) await b.apply({ Incr: 'n' }, { clientId: 'inproc', seq: i });
    await c.kill(a.id);
    // b and d elect a new leader; an exactly-once retry of the last command is not applied again.
    expect(await d.apply({ Incr: 'n' }, { clientId: 'inproc', seq: 9 })).toBe(10);
    expect(await d.apply({ Incr: 'n' }, { clientId: 'inproc', seq: 10 })).toBe(11);
    expect(await b.query({ Get: 'n' })).toBe(11);
    const a2 = await c.start(a.id);
    await waitFor(async () => (await a2.localQuery({ Get: 'n' })) === 11, 15_000, 'the restarted server to catch up');
    expect(await a2.query({ Get: 'n' })).toBe(11);
    expect((await a2.getServerState()).membership).toBe('voter');
  });

  it('serves JSON-RPC over WebSocket and GET /state on the same port', async () => {
    c = await Cluster.create();
    const a = await c.start();
    const b = await c.start();
    const ws = new WebSocket(`ws://${a.id}/`);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    const answers = new Map<unknown, { result?: unknown; error?: { code: number } }>();
    ws.on('message', (m) => {
      const v = JSON.parse(String(m));
      for (const r of Array.isArray(v) ? v : [v]) answers.set(r.id, r);
    });
    const call = async (id: number, method: string, params?: unknown) => {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      await waitFor(() => answers.has(id), 10_000, `answer ${id}`);
      return answers.get(id) as { result?: unknown; error?: { code: number } };
    };
    expect((await call(1, 'CreateCluster')).result).toEqual({ members: [a.id] });
    expect(((await call(2, 'AddServer', { addr: b.id })).result as { members: string[] }).members).toHaveLength(2);
    expect((await call(3, 'Apply', { kind: 'Command', input: { Put: ['w', 3] } })).result).toBe(null);
    expect((await call(4, 'Apply', { kind: 'Query', input: { Get: 'w' } })).result).toBe(3);
    ws.send('garbage');
    expect((await call(5, 'GetServerState')).result).toMatchObject({ role: 'leader' });
    const d = await c.start();
    expect(((await call(6, 'AddServer', { addr: d.id })).result as { members: string[] }).members).toHaveLength(3);
    expect(((await call(7, 'RemoveServer', { addr: b.id })).result as { members: string[] }).members.sort()).toEqual(
      [a.id, d.id].sort(),
    );
    expect((await call(8, 'Apply', { kind: 'Query', input: { Get: 'w' } })).result).toBe(3);
    expect((await call(9, 'Nope')).error?.code).toBe(-32601);
    ws.close();
    const res = await fetch(`http://${a.id}/state`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: string }).id).toBe(a.id);
    // The line protocol still works on the same port.
    const cl = await RpcClient.connect(a.id);
    expect(await cl.apply({ Get: 'w' }, 'Query')).toBe(3);
    await cl.close();
  });
});
