import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@raft/testkit';
import {
  createServer,
  encodeFrame,
  FrameDecoder,
  type Machine,
  PEER_MAGIC,
  PEER_VERSION,
  type RaftServer,
  RpcClient,
  type ServerOptions,
  silentLogger,
  splitAddress,
} from '../src/index.js';

/** A tiny key-value machine in raftpico's tuple form: {"Put":[k,v]}, {"Get":k}, {"Delete":k}, "List". */
export class KvMachine implements Machine {
  map = new Map<string, unknown>();
  applied: number[] = [];
  apply(input: unknown, ctx: { kind: string; index: number }): unknown {
    if (input === 'List') return [...this.map.keys()].sort();
    const o = input as Record<string, unknown>;
    if ('Put' in o) {
      const [k, v] = o.Put as [string, unknown];
      if (ctx.kind !== 'Command') throw new Error('Put must be a Command');
      const prev = this.map.get(k) ?? null;
      this.map.set(k, v);
      this.applied.push(ctx.index);
      return prev;
    }
    if ('Get' in o) return this.map.get(o.Get as string) ?? null;
    if ('Delete' in o) {
      const prev = this.map.get(o.Delete as string) ?? null;
      this.map.delete(o.Delete as string);
      return prev;
    }
    if ('Incr' in o) {
      const k = o.Incr as string;
      const cur = this.map.get(k) ?? 0;
      if (typeof cur !== 'number') throw new Error(`${k} is not a number`);
      const v = cur + 1;
      this.map.set(k, v);
      return v;
    }
    throw new Error('unknown operation');
  }
  validate(input: unknown): string | undefined {
    if (input === 'List') return undefined;
    if (input === null || typeof input !== 'object' || Array.isArray(input)) return 'input must be an object or "List"';
    const keys = Object.keys(input);
    if (keys.length !== 1 || !['Put', 'Get', 'Delete', 'Incr'].includes(keys[0])) return `unknown operation ${keys[0]}`;
    if (keys[0] === 'Put') {
      const a = (input as { Put: unknown }).Put;
      if (!Array.isArray(a) || a.length !== 2 || typeof a[0] !== 'string') return 'Put takes [key, value]';
    }
    return undefined;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.map.entries()].sort()));
  }
  restore(s: unknown): void {
    this.map = new Map(JSON.parse(new TextDecoder().decode(s as Uint8Array)) as [string, unknown][]);
  }
}

/** Fast test timings that still tolerate a loaded CPU. */
export const FAST = { heartbeatMs: 30, electionTimeoutMs: 250, requestTimeoutMs: 8000 };

/** A set of servers sharing one temp directory; `cleanup()` stops everything and deletes it. */
export class Cluster {
  readonly servers = new Map<string, RaftServer>();
  readonly machines = new Map<string, KvMachine>();
  readonly clients: RpcClient[] = [];
  private constructor(readonly dir: string) {}

  static async create(): Promise<Cluster> {
    return new Cluster(await mkdtemp(join(tmpdir(), 'node-tcp-test-')));
  }

  dataDir(name: string): string {
    return join(this.dir, name.replace(/[^0-9a-z]/gi, '_'));
  }

  /** Start a server (a fresh one on a free port, or a restarted one at `address`). */
  async start(address?: string, extra: Partial<ServerOptions> = {}): Promise<RaftServer> {
    const addr = address ?? `127.0.0.1:${await freePort()}`;
    const machine = new KvMachine();
    const s = createServer({
      address: addr,
      dataDir: this.dataDir(addr),
      machine,
      storageSync: false,
      logger: silentLogger,
      ...FAST,
      ...extra,
    });
    await s.start();
    this.servers.set(s.id, s);
    this.machines.set(s.id, machine);
    return s;
  }

  async client(addr: string): Promise<RpcClient> {
    const c = await RpcClient.connect(addr, { timeoutMs: 20_000 });
    this.clients.push(c);
    return c;
  }

  async stop(id: string): Promise<void> {
    await this.servers.get(id)?.stop();
    this.servers.delete(id);
  }

  async kill(id: string): Promise<void> {
    await this.servers.get(id)?.kill();
    this.servers.delete(id);
  }

  async leader(timeoutMs = 10_000): Promise<RaftServer> {
    let found: RaftServer | undefined;
    await waitFor(async () => {
      const ls = [...this.servers.values()].filter((s) => s.isRunning);
      const states = await Promise.all(ls.map((s) => s.getServerState()));
      const i = states.findIndex((st) => st.role === 'leader');
      found = i >= 0 ? ls[i] : undefined;
      return found !== undefined;
    }, timeoutMs);
    return found as RaftServer;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    await Promise.all([...this.servers.values()].map((s) => s.kill()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Build a 3-node cluster over JSON-RPC (CreateCluster + two AddServer on the first). */
export async function threeNodes(c: Cluster): Promise<RaftServer[]> {
  const a = await c.start();
  const b = await c.start();
  const d = await c.start();
  const cl = await c.client(a.id);
  const res = await cl.request<{ members: string[] }>('CreateCluster');
  if (res.members.length !== 1) throw new Error('bad CreateCluster');
  await cl.request('AddServer', { addr: b.id });
  await cl.request('AddServer', { addr: d.id });
  return [a, b, d];
}

/**
 * A raw peer connection to `address`: says the magic and version, reads the challenge, and (unless `hello` is null)
 * sends a hello. A hello whose `m` is `'good'` gets the real HMAC of `secret` over the challenge, `cluster` and its
 * id `i`. `extra` bytes follow. For tests that play a (hostile) peer by hand.
 */
export async function rawPeer(
  address: string,
  hello: Record<string, unknown> | null,
  o: { secret: string; cluster: string; extra?: Buffer | undefined },
): Promise<Socket> {
  const { host, port } = splitAddress(address) as { host: string; port: number };
  const s = connect({ host, port });
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
  if (hello !== null) {
    const h: Record<string, unknown> = { n: randomBytes(16), ...hello };
    if (h.m === 'good')
      h.m = createHmac('sha256', o.secret)
        .update(nonce)
        .update(`\0${o.cluster}\0${String(h.i)}`)
        .digest();
    s.write(encodeFrame(h, 1 << 20) as Buffer);
  }
  if (o.extra) s.write(o.extra);
  return s;
}
