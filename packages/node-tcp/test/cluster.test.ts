import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, threeNodes, waitFor } from './helpers.js';

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
