import { waitFor } from '@raft/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { RaftServer, ServerOptions } from '../src/index.js';
import { Cluster, threeNodes } from './helpers.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const VALUE_BYTES = 64 * 1024;

/** 200 Puts of 64 KiB values at concurrency 32, spread over the three members; every one must succeed. */
async function putLarge(servers: RaftServer[]): Promise<void> {
  const clients = await Promise.all(servers.map((s) => c.client(s.id)));
  const filler = 'v'.repeat(VALUE_BYTES);
  let next = 0;
  const failures: unknown[] = [];
  await Promise.all(
    Array.from({ length: 32 }, async (_, w) => {
      const cl = clients[w % clients.length];
      while (next < 200) {
        const i = next++;
        try {
          await cl.request('Apply', { kind: 'Command', input: { Put: [`big${i % 50}`, `${i}:${filler}`] } });
        } catch (e) {
          failures.push(e);
        }
      }
    }),
  );
  expect(failures).toEqual([]);
}

/** Every member applies everything the leader committed and ends in the same state. */
async function expectReplicated(servers: RaftServer[]): Promise<void> {
  const commit = Math.max(...(await Promise.all(servers.map(async (s) => (await s.getServerState()).commitIndex))));
  const hashes = await Promise.all(
    servers.map(async (s) => {
      await waitFor(async () => (await s.getServerState()).appliedIndex >= commit, 20_000, `${s.id} to apply`);
      return (await s.getServerState({ stateHash: true })).stateHash;
    }),
  );
  expect(new Set(hashes).size).toBe(1);
  // The last write of one key, read back linearizably through a follower.
  const v = (await servers[1].query({ Get: 'big49' })) as string;
  expect(v.length).toBeGreaterThan(VALUE_BYTES);
  expect(v.startsWith('199:') || v.startsWith('149:') || v.startsWith('99:') || v.startsWith('49:')).toBe(true);
}

describe('large values', () => {
  it('replicates 200 Puts of 64 KiB at concurrency 32 with default limits', async () => {
    c = await Cluster.create();
    const servers = await threeNodes(c);
    await putLarge(servers);
    await expectReplicated(servers);
  });

  it('replicates them through small frames and a small per-peer buffer (split AppendEntries, backpressure)', async () => {
    c = await Cluster.create();
    // 1 MiB frames: AppendEntries are cut into ~256 KiB pieces. A 1 MiB peer buffer: turns' batches are queued
    // behind a busy socket or dropped and retransmitted by Raft; either way every command must still commit.
    const small: Partial<ServerOptions> = { maxFrameBytes: 1024 * 1024, maxPeerBufferBytes: 1024 * 1024 };
    const a = await c.start(undefined, small);
    const b = await c.start(undefined, small);
    const d = await c.start(undefined, small);
    await a.createCluster();
    await a.addServer(b.id);
    await a.addServer(d.id);
    const servers = [a, b, d];
    await putLarge(servers);
    await expectReplicated(servers);
    // Every entry reached both followers: at least 2 x 200 x 64 KiB went over peer connections.
    let sent = 0;
    for (const s of servers) sent += (await s.getServerState()).counters.bytesSent;
    expect(sent).toBeGreaterThan(2 * 200 * VALUE_BYTES);
  });
});
