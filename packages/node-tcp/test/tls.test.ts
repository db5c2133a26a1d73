// Issue 15, item 1: TLS on the single port and mutual TLS between peers. A three-node cluster forms and replicates
// over TLS only; plain-text clients and peers are refused with a reason; a peer whose certificate (signed by the
// cluster CA) names another server cannot claim that server's id, and one signed by another CA cannot join at all.
// Certificates are made by openssl at test time (test/certs.ts).

import { writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { waitFor } from '@raft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  ErrorCode,
  encodeFrame,
  FrameDecoder,
  hashToken,
  newToken,
  PEER_MAGIC,
  PEER_VERSION,
  type RaftServer,
  RpcClient,
  type TlsOptions,
} from '../src/index.js';
import { makePki, type Pair, type TestPki } from './certs.js';
import { Cluster } from './helpers.js';

const CLUSTER = 'tls-test';
let pki: TestPki;
let rogue: TestPki;
let nodePair: Pair;
let tls: TlsOptions;
let c: Cluster;
let servers: RaftServer[];
const writer = newToken();

beforeAll(async () => {
  pki = makePki();
  rogue = makePki('rogue-ca');
  // One certificate for every member: they all run on 127.0.0.1, which it names (the "host" identity rule).
  nodePair = pki.issue('127.0.0.1', ['IP:127.0.0.1']);
  tls = { ca: pki.ca, ...nodePair };
  c = await Cluster.create();
  const credentialsFile = join(c.dir, 'credentials.json');
  writeFileSync(credentialsFile, JSON.stringify({ tokens: [{ name: 'w', role: 'write', sha256: hashToken(writer) }] }));
  servers = [];
  for (let i = 0; i < 3; i++) servers.push(await c.start(undefined, { tls, clusterName: CLUSTER, credentialsFile }));
  const [a, b, d] = servers;
  await a.createCluster();
  await a.addServer(b.id);
  await a.addServer(d.id);
}, 60_000);
afterAll(async () => {
  await c?.cleanup();
  pki?.cleanup();
  rogue?.cleanup();
});

const clientTls = () => ({ ca: pki.ca });

describe('a TLS cluster', () => {
  it('replicates over TLS, and a TLS client with a token writes through a follower (forwarded, no token needed)', async () => {
    const leader = await c.leader();
    const follower = servers.find((s) => s !== leader) as RaftServer;
    const cl = await RpcClient.connect(follower.id, { tls: clientTls(), token: writer, timeoutMs: 10_000 });
    c.clients.push(cl);
    expect(await cl.request('Apply', { kind: 'Command', input: { Put: ['k', 'v'] } })).toBeNull();
    expect(await cl.request('Apply', { kind: 'Query', input: { Get: 'k' } })).toBe('v');
    await waitFor(() => [...c.machines.values()].every((m) => m.map.get('k') === 'v'), 10_000, 'all three to apply');
    const st = await leader.getServerState();
    expect(st.members.length).toBe(3);
    expect(st.counters.peerConnectionsRejected).toBe(0);
  });

  it('refuses a client that does not trust the cluster CA, and a client of a server whose certificate names another address', async () => {
    await expect(RpcClient.connect(servers[0].id, { tls: { ca: rogue.ca } })).rejects.toBeInstanceOf(ConnectionError);
    // A member's certificate names 127.0.0.1; reached as "localhost" it proves nothing.
    const port = servers[0].id.split(':')[1];
    await expect(RpcClient.connect(`localhost:${port}`, { tls: clientTls() })).rejects.toThrow(/localhost/);
  });
});

/** Send `bytes` on a plain TCP connection and collect what comes back until the server closes it. */
async function plain(bytes: Buffer | string): Promise<Buffer> {
  const [host, port] = servers[0].id.split(':');
  const s = netConnect({ host, port: Number(port) });
  const got: Buffer[] = [];
  s.on('data', (d) => got.push(d));
  s.on('error', () => undefined);
  s.write(bytes);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the server did not close the connection')), 5000);
    s.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return Buffer.concat(got);
}

describe('plain text on a TLS server', () => {
  it('a JSON-RPC client gets an UNAUTHENTICATED line saying TLS is required, then the connection closes', async () => {
    const got = await plain(
      '{"jsonrpc":"2.0","id":1,"method":"Apply","params":{"kind":"Command","input":{"Put":["x",1]}}}\n',
    );
    const line = JSON.parse(got.toString('utf8').trim());
    expect(line.error.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(line.error.message).toMatch(/TLS/);
    expect([...c.machines.values()].some((m) => m.map.has('x'))).toBe(false);
  });

  it('an HTTP client gets a 400', async () => {
    const got = await plain('GET /state HTTP/1.1\r\nhost: x\r\n\r\n');
    expect(got.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('a plain-text peer gets a refusal frame', async () => {
    const got = await plain(Buffer.concat([PEER_MAGIC, Buffer.of(PEER_VERSION)]));
    const dec = new FrameDecoder(1 << 20);
    const [f] = dec.push(got);
    expect((dec.decode(f) as { e: string }).e).toMatch(/TLS/);
  });
});

/**
 * A peer connection over TLS with `pair`'s certificate that claims `id` in its hello. Resolves with the server's
 * answer to the hello (`ok` or a refusal `e`), or with the TLS failure.
 */
async function peerAs(pair: Pair, id: string): Promise<{ ok?: unknown; e?: string; tlsError?: string }> {
  const [host, port] = servers[0].id.split(':');
  const s: Socket = tlsConnect({ host, port: Number(port), ca: pki.ca, ...pair, checkServerIdentity: () => undefined });
  s.on('error', () => undefined);
  const dec = new FrameDecoder(1 << 20);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ tlsError: 'timeout' }), 8000);
    const done = (v: { ok?: unknown; e?: string; tlsError?: string }) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    s.once('secureConnect', () => s.write(Buffer.concat([PEER_MAGIC, Buffer.of(PEER_VERSION)])));
    s.once('close', () => done({ tlsError: 'closed' }));
    s.on('data', (d) => {
      for (const f of dec.push(d)) {
        const v = dec.decode(f) as { n?: Uint8Array; ok?: unknown; e?: string };
        if (v.n !== undefined) {
          const n = Buffer.alloc(16, 7);
          s.write(encodeFrame({ h: PEER_VERSION, c: CLUSTER, i: id, n }, 1 << 20) as Buffer);
        } else done(v);
      }
    });
  });
}

describe('peer identity from the certificate', () => {
  it('a peer whose CA-signed certificate names another server cannot claim a member id', async () => {
    const forger = pki.issue('127.0.0.1:1'); // names exactly 127.0.0.1:1, not the host
    const before = (await servers[0].getServerState()).counters.peerConnectionsRejected;
    const forged = await peerAs(forger, servers[1].id);
    expect(forged.e).toMatch(/certificate names/);
    expect((await servers[0].getServerState()).counters.peerConnectionsRejected).toBe(before + 1);
    // Under the id its certificate proves, the same peer is accepted: the refusal above is the identity check's.
    const honest = await peerAs(forger, '127.0.0.1:1');
    expect(honest.ok).toBe(true);
  });

  it('a peer without a certificate, or with one from another CA, is refused', async () => {
    const stranger = rogue.issue('127.0.0.1', ['IP:127.0.0.1']);
    const r = await peerAs(stranger, servers[1].id);
    expect(r.e).toMatch(/not signed by the cluster CA/);
    const none = await peerAs({ cert: undefined, key: undefined } as unknown as Pair, servers[1].id);
    expect(none.e).toMatch(/missing or not signed/);
  });
});
