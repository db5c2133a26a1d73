import { randomBytes } from 'node:crypto';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitAddress } from '../src/address.js';
import { encodeFrame, FrameDecoder, PEER_VERSION, type RaftServer, RpcClient } from '../src/index.js';
import { Cluster, rawPeer } from './helpers.js';

const SEED = process.env.RAFT_NODE_TCP_SEED ? Number(process.env.RAFT_NODE_TCP_SEED) : Date.now() % 2 ** 31;
const replay = (file: string) =>
  `seed ${SEED} (replay: RAFT_NODE_TCP_SEED=${SEED} pnpm --filter @raft/node-tcp exec vitest run test/${file})`;

/** Run a fast-check property with the file's seed; on failure the error names the seed and the replay command. */
async function check<T>(prop: fc.IAsyncPropertyWithHooks<T> | fc.IAsyncProperty<T>, numRuns: number): Promise<void> {
  try {
    await fc.assert(prop, { seed: SEED, numRuns, endOnFailure: true });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${replay('fuzz.test.ts')}`);
  }
}

const KNOWN_CODES = new Set([
  -32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32003, -32004, -32005, -32006, -32007, -32008,
  -32009, -32010, -32011, -32012,
]);

let c: Cluster;
let server: RaftServer;
const SECRET = 'sesame';

beforeAll(async () => {
  console.log(`fuzz ${replay('fuzz.test.ts')}`);
  c = await Cluster.create();
  server = await c.start(undefined, { maxLineBytes: 4096, secret: SECRET, clusterName: 'fuzz' });
  await server.createCluster();
  await server.apply({ Put: ['sentinel', 42] });
});
afterAll(async () => {
  await c?.cleanup();
});

/** The server still answers correctly on a fresh connection. */
async function stillServes(tag: string): Promise<void> {
  const cl = await RpcClient.connect(server.id, { timeoutMs: 15_000 });
  try {
    expect(await cl.apply({ Put: [`after-${tag}`, tag] })).toBe(null);
    expect(await cl.apply({ Get: 'sentinel' }, 'Query')).toBe(42);
    expect(await cl.apply({ Get: `after-${tag}` }, 'Query')).toBe(tag);
  } finally {
    await cl.close();
  }
}

const methods = fc.constantFrom('Apply', 'GetServerState', 'TakeSnapshot', 'CreateCluster', 'Nope', '', 'AddServer');
const requestLike = fc.record(
  {
    jsonrpc: fc.oneof(fc.constant('2.0'), fc.anything()),
    id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.anything()),
    method: fc.oneof(methods, fc.anything()),
    params: fc.oneof(
      fc.record({
        kind: fc.oneof(fc.constantFrom('Command', 'Query', 'LocalQuery'), fc.anything()),
        input: fc.oneof(fc.jsonValue(), fc.record({ Put: fc.tuple(fc.string(), fc.jsonValue()) })),
        clientId: fc.option(fc.oneof(fc.string(), fc.anything()), { nil: undefined }),
        seq: fc.option(fc.oneof(fc.nat(), fc.anything()), { nil: undefined }),
        timeoutMs: fc.option(fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.anything()), { nil: undefined }),
      }),
      fc.anything(),
    ),
  },
  { requiredKeys: [] },
);
const line = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  requestLike.map((r) => JSON.stringify(r) ?? 'null'),
  fc.array(requestLike, { maxLength: 4 }).map((r) => JSON.stringify(r)),
  fc.constant('x'.repeat(5000)), // oversized
);

describe('fuzzing the JSON-RPC port', () => {
  it('answers garbage, wrong types and oversized lines with JSON-RPC errors and keeps serving', async () => {
    let run = 0;
    await check(
      fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 15 }), async (lines) => {
        run++;
        const text = `${lines.map((l) => l.replace(/\n/g, ' ')).join('\n')}\n{"jsonrpc":"2.0","id":"end-${run}","method":"Apply","params":{"kind":"Query","input":{"Get":"sentinel"}}}\n`;
        const answers = await exchange(server.id, text, `end-${run}`);
        for (const a of answers) {
          for (const r of Array.isArray(a) ? a : [a]) {
            expect(r.jsonrpc).toBe('2.0');
            if (r.error !== undefined) expect(KNOWN_CODES.has(r.error.code)).toBe(true);
            else expect('result' in r).toBe(true);
          }
        }
        const last = answers.find((a) => !Array.isArray(a) && a.id === `end-${run}`) as Answer | undefined;
        expect(last?.result).toBe(42);
      }),
      25,
    );
    await stillServes('rpc');
  });
});

interface Answer {
  jsonrpc: string;
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string };
}

/** Write `text` on a new connection and collect answer lines until the one with id `endId` arrives. */
function exchange(addr: string, text: string, endId: string): Promise<(Answer | Answer[])[]> {
  const { host, port } = splitAddress(addr)!;
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const out: (Answer | Answer[])[] = [];
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer to ${endId}; got ${JSON.stringify(out).slice(0, 500)}`));
    }, 20_000);
    s.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const v = JSON.parse(buf.slice(0, i)) as Answer | Answer[];
        buf = buf.slice(i + 1);
        out.push(v);
        if (!Array.isArray(v) && v.id === endId) {
          clearTimeout(t);
          s.destroy();
          resolve(out);
        }
      }
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.write(text);
  });
}

/** A raw peer connection to the fuzz server (see {@link rawPeer}). */
function peer(hello: Record<string, unknown> | null, extra?: Buffer): Promise<Socket> {
  return rawPeer(server.id, hello, { secret: SECRET, cluster: 'fuzz', extra });
}

/** Address generated messages to the server (the generators cannot know its port). */
function replaceSelf(v: unknown): unknown {
  if (v === 'SELF') return server.id;
  if (Array.isArray(v)) return v.map(replaceSelf);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = replaceSelf(x);
    return o;
  }
  return v;
}

function closed(s: Socket, ms = 5000): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

const anyField = fc.oneof(fc.integer(), fc.nat(), fc.string(), fc.boolean(), fc.constant(null), fc.anything());
const messageLike = fc.record({
  type: fc.oneof(
    fc.constantFrom(
      'RequestVote',
      'RequestVoteResponse',
      'AppendEntries',
      'AppendEntriesResponse',
      'InstallSnapshot',
      'InstallSnapshotResponse',
      'TimeoutNow',
      'ReadIndexRequest',
      'ReadIndexResponse',
    ),
    fc.string(),
  ),
  term: anyField,
  from: fc.oneof(fc.constant('127.0.0.1:1'), anyField),
  to: fc.oneof(fc.constant('SELF'), anyField),
  preVote: anyField,
  granted: anyField,
  lastLogIndex: anyField,
  lastLogTerm: anyField,
  prevLogIndex: anyField,
  prevLogTerm: anyField,
  entries: fc.oneof(fc.constant([]), fc.array(anyField, { maxLength: 3 })),
  leaderCommit: anyField,
  seq: anyField,
  readIds: fc.oneof(fc.array(fc.oneof(fc.integer(), fc.string()), { maxLength: 3 }), anyField),
  data: fc.oneof(fc.uint8Array({ maxLength: 64 }), anyField),
});
const item = fc.oneof(
  fc.tuple(fc.constant(0), messageLike),
  fc.tuple(fc.constantFrom(1, 2), fc.anything()),
  fc.anything(),
);

describe('fuzzing the peer port', () => {
  it('drops connections with random bytes, a bad handshake or a wrong secret, and keeps serving', async () => {
    await check(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        const s = await peer(null, Buffer.from(bytes));
        // Either the server closes it (garbage) or keeps waiting for a valid hello; it must never crash.
        await closed(s, 200);
        s.destroy();
      }),
      20,
    );
    const wrongCluster = await peer({ h: PEER_VERSION, c: 'other', i: '127.0.0.1:1', m: 'good' });
    expect(await closed(wrongCluster)).toBe(true);
    const noSecret = await peer({ h: PEER_VERSION, c: 'fuzz', i: '127.0.0.1:1' });
    expect(await closed(noSecret)).toBe(true);
    const badSecret = await peer({ h: PEER_VERSION, c: 'fuzz', i: '127.0.0.1:1', m: randomBytes(32) });
    expect(await closed(badSecret)).toBe(true);
    const oversized = await peer(null, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    expect(await closed(oversized)).toBe(true);
    expect((await server.getServerState()).counters.peerConnectionsRejected).toBeGreaterThanOrEqual(4);
    await stillServes('handshake');
  });

  it('does not trust a server it dials that cannot prove the secret', async () => {
    // An impostor listens where the leader will dial, answers the handshake without the secret, and tries to
    // inject an acknowledgement.
    const impostor = createNetServer((sock) => {
      const dec = new FrameDecoder(1 << 20);
      sock.on('error', () => undefined);
      sock.once('data', () => {
        sock.write(encodeFrame({ n: randomBytes(16) }, 1 << 20) as Buffer);
        sock.on('data', (d) => {
          for (const _f of dec.push(d)) {
            sock.write(encodeFrame({ ok: randomBytes(32) }, 1 << 20) as Buffer);
            sock.write(
              encodeFrame(
                [[0, { type: 'AppendEntriesResponse', term: 1, from: 'x', to: server.id }]],
                1 << 20,
              ) as Buffer,
            );
          }
        });
      });
    });
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
    const addr = impostor.address() as { port: number };
    const id = `127.0.0.1:${addr.port}`;
    const before = (await server.getServerState()).counters.peerConnectionsRejected;
    const e = await server.addServer(id, { timeoutMs: 700 }).catch((err: Error) => err);
    expect((e as { code?: number }).code).toBe(-32003);
    expect((await server.getServerState()).counters.peerConnectionsRejected).toBeGreaterThan(before);
    await server.removeServer(id);
    await new Promise<void>((r) => impostor.close(() => r()));
    await stillServes('impostor');
  });

  it('survives random frames from an authenticated peer', async () => {
    await check(
      fc.asyncProperty(fc.array(fc.array(item, { maxLength: 4 }), { minLength: 1, maxLength: 6 }), async (frames) => {
        const s = await peer({ h: PEER_VERSION, c: 'fuzz', i: '127.0.0.1:1', m: 'good' });
        const bufs: Buffer[] = [];
        for (const f of frames) {
          const fixed = replaceSelf(f);
          const b = encodeFrame(fixed, 1 << 20);
          if (b) bufs.push(b);
        }
        s.write(Buffer.concat(bufs));
        await closed(s, 100);
        s.destroy();
      }),
      25,
    );
    await stillServes('frames');
  });
});
