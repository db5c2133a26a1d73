// The fault tester with client authentication (issue 15): given a token, its cluster runs with a credentials file
// naming it, its own admin calls and clients authenticate, and an anonymous client is refused.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, newToken, RpcClient } from '@raft/node-tcp';
import { expect, it } from 'vitest';
import { Cluster } from '../src/cluster.js';

it('runs its cluster with the token required, and only the token works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'raft-fault-auth-'));
  const token = newToken();
  const cluster = await Cluster.start({ nodes: 3, dir, token, heartbeatMs: 50, electionMs: 300 });
  try {
    // Only the hash is written down.
    expect(readFileSync(join(dir, 'credentials.json'), 'utf8')).not.toContain(token);
    const target = cluster.nodes[1].listen;
    const anon = await RpcClient.connect(target);
    await expect(anon.request('Apply', { kind: 'Command', input: { Put: ['k', 1] } })).rejects.toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
    });
    await anon.close();
    const c = await RpcClient.connect(target, { token, timeoutMs: 20_000 });
    expect(await c.request('Apply', { kind: 'Command', input: { Put: ['k', 1] } })).toBeNull();
    await c.close();
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
