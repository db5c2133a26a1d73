import type { Socket } from 'node:net';
import { waitFor } from '@raft/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeFrame, PEER_VERSION, type RaftServer } from '../src/index.js';
import { Cluster, rawPeer } from './helpers.js';

const SECRET = 'sesame';
const CLUSTER = 'ident';
let c: Cluster;
let server: RaftServer;

beforeAll(async () => {
  c = await Cluster.create();
  server = await c.start(undefined, { secret: SECRET, clusterName: CLUSTER });
  await server.createCluster();
});
afterAll(async () => {
  await c?.cleanup();
});

/** A peer connection that proves the secret as `id`. */
function authenticated(id: string): Promise<Socket> {
  return rawPeer(server.id, { h: PEER_VERSION, c: CLUSTER, i: id, m: 'good' }, { secret: SECRET, cluster: CLUSTER });
}

function appendEntries(from: string, term: number): Buffer {
  const m = { type: 'AppendEntries', term, from, to: server.id, prevLogIndex: 0, prevLogTerm: 0, entries: [] };
  return encodeFrame([[0, { ...m, leaderCommit: 0, seq: 1 }]], 1 << 20) as Buffer;
}

const closed = (s: Socket) =>
  new Promise<boolean>((resolve) => {
    if (s.destroyed) resolve(true);
    const t = setTimeout(() => resolve(false), 3000);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });

it('refuses a message whose sender is not the id its connection proved, and keeps its term', async () => {
  const before = (await server.getServerState()).term;
  const s = await authenticated('127.0.0.1:1');
  s.write(appendEntries('127.0.0.1:2', before + 1000)); // claims to be another node, the "leader" of a new term
  expect(await closed(s)).toBe(true);
  expect((await server.getServerState()).term).toBe(before);

  // The same message under the id the connection proved is delivered (so the refusal above is the check's doing).
  const honest = await authenticated('127.0.0.1:1');
  honest.write(appendEntries('127.0.0.1:1', before + 1000));
  await waitFor(async () => (await server.getServerState()).term === before + 1000, 5000, "the honest message's term");
  honest.destroy();
});
