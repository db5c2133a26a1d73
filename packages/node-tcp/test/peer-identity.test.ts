// Issue 15: a peer that completed the handshake as X must not speak for Y. Replays the attack: a peer that knows the
// shared secret authenticates as one id and sends an AppendEntries in a much higher term claiming to come from
// another; before the fix the server adopted the forged term (and followed the forged leader).
import { createHmac, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { waitFor } from '@raft/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, PEER_MAGIC, PEER_VERSION, type RaftServer } from '../src/index.js';
import { Cluster } from './helpers.js';

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
async function authenticated(id: string): Promise<Socket> {
  const [host, port] = server.id.split(':');
  const s = connect({ host, port: Number(port) });
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  s.on('error', () => undefined);
  s.write(Buffer.concat([PEER_MAGIC, Buffer.of(PEER_VERSION)]));
  const dec = new FrameDecoder(1 << 20);
  const nonce = await new Promise<Uint8Array>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no challenge')), 5000);
    s.on('data', (d) => {
      for (const f of dec.push(d)) {
        const v = dec.decode(f) as { n?: Uint8Array };
        if (v.n) {
          clearTimeout(t);
          resolve(v.n);
        }
      }
    });
  });
  const m = createHmac('sha256', SECRET).update(nonce).update(`\0${CLUSTER}\0${id}`).digest();
  s.write(encodeFrame({ n: randomBytes(16), h: PEER_VERSION, c: CLUSTER, i: id, m }, 1 << 20) as Buffer);
  return s;
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
