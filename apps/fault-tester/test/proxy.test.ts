import { connect, createServer, type Server, type Socket } from 'node:net';
import { encodeFrame, PEER_MAGIC, PEER_VERSION, splitAddress } from '@raft/node-tcp';
import { sleep, waitFor } from '@raft/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxyNetwork } from '../src/proxy.js';

/** An upstream that records what it receives. */
async function sink(): Promise<{ server: Server; addr: string; received: () => Buffer; sockets: Socket[] }> {
  const chunks: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('no address');
  return { server, addr: `127.0.0.1:${a.port}`, received: () => Buffer.concat(chunks), sockets };
}

const hello = (id: string) =>
  Buffer.concat([PEER_MAGIC, Buffer.of(PEER_VERSION), encodeFrame({ h: 1, c: 'raft', i: id }, 1 << 20) as Buffer]);

describe('fault-injecting proxy', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('learns the dialing node from the handshake, resets blocked connections and holds new ones until healed', async () => {
    const up = await sink();
    cleanup.push(() => new Promise<void>((r) => up.server.close(() => r())));
    const net = new ProxyNetwork();
    cleanup.push(() => net.close());
    const proxyId = await net.addProxy(up.addr);
    const { host, port } = splitAddress(proxyId)!;

    const a = connect({ host, port });
    a.on('error', () => {});
    cleanup.push(() => void a.destroy());
    await new Promise<void>((r) => a.once('connect', () => r()));
    a.write(hello('127.0.0.1:1111'));
    await waitFor(() => net.stats.identified === 1);
    a.write('payload-1');
    await waitFor(() => up.received().includes('payload-1'));

    // Blocking 1111 -> proxied node resets the existing connection...
    const closed = new Promise<void>((r) => a.once('close', () => r()));
    net.setBlocked([['127.0.0.1:1111', proxyId]]);
    await closed;
    expect(net.stats.resets).toBe(1);

    // ...and a new connection from the same node gets its hello through identification but nothing delivered.
    const b = connect({ host, port });
    b.on('error', () => {});
    cleanup.push(() => void b.destroy());
    await new Promise<void>((r) => b.once('connect', () => r()));
    const before = up.received().length;
    b.write(hello('127.0.0.1:1111'));
    await waitFor(() => net.stats.identified === 2);
    b.write('payload-2');
    await sleep(200);
    expect(up.received().includes('payload-2')).toBe(false);
    // The chunk carrying the hello is held too: it is the first one known to come from the blocked sender.
    expect(up.received().length).toBe(before);

    net.healAll();
    await waitFor(() => up.received().includes('payload-2'));
  });

  it('passes connections that are not peer connections untouched', async () => {
    const up = await sink();
    cleanup.push(() => new Promise<void>((r) => up.server.close(() => r())));
    const net = new ProxyNetwork();
    cleanup.push(() => net.close());
    const proxyId = await net.addProxy(up.addr);
    net.setBlocked([['127.0.0.1:1111', proxyId]]);
    const { host, port } = splitAddress(proxyId)!;
    const c = connect({ host, port });
    c.on('error', () => {});
    cleanup.push(() => void c.destroy());
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write('{"jsonrpc":"2.0","id":1,"method":"GetServerState"}\n');
    await waitFor(() => up.received().includes('GetServerState'));
    expect(net.stats.identified).toBe(0);
  });

  it('refuses an upstream that is not a server address, before listening', async () => {
    const net = new ProxyNetwork();
    cleanup.push(() => net.close());
    for (const bad of ['127.0.0.1', 'a:b:1', '127.0.0.1:70000']) {
      await expect(net.addProxy(bad)).rejects.toThrow(TypeError);
    }
    const up = await sink();
    cleanup.push(() => new Promise<void>((r) => up.server.close(() => r())));
    expect(splitAddress(await net.addProxy(up.addr))).toMatchObject({ host: '127.0.0.1' });
  });
});
