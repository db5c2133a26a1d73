import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkProxy, type LinkProxyOptions, LoadgenError } from '../src/index.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Rejects when `p` has not settled within `ms` (every wait in these tests is bounded). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** A server on 127.0.0.1 whose accepted sockets go to `onConn`; closed after the test. */
async function upstream(onConn: (s: Socket) => void): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return { server, port: addr.port, sockets };
}

async function proxyTo(port: number, options: Omit<LinkProxyOptions, 'upstream'>): Promise<LinkProxy> {
  const p = await LinkProxy.start({ upstream: `127.0.0.1:${port}`, ...options });
  cleanups.push(() => p.stop());
  return p;
}

async function dial(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  s.on('error', () => {});
  cleanups.push(() => void s.destroy());
  await within(new Promise((resolve) => s.once('connect', resolve)), 5000, 'connect');
  return s;
}

/** Collects everything `s` receives until `n` bytes have arrived. */
function receive(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer) => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    s.on('data', onData);
  });
}

/** Deterministic bytes (a linear congruential generator), so a failure replays exactly. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

describe('LinkProxy', () => {
  it('delays each direction by at least delayMs, and not by much more', async () => {
    const echo = await upstream((s) => s.pipe(s));
    const delayMs = 25;
    const proxy = await proxyTo(echo.port, { delayMs });
    const c = await dial(proxy.port);
    const rtts: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      const answer = receive(c, 5);
      c.write(`ping${i}`);
      expect((await within(answer, 5000, 'echo')).toString()).toBe(`ping${i}`);
      rtts.push(performance.now() - t0);
    }
    // Through the proxy twice (there and back): never below 2 x delayMs; generous upper bound for a loaded machine.
    expect(Math.min(...rtts)).toBeGreaterThanOrEqual(2 * delayMs);
    rtts.sort((a, b) => a - b);
    expect(rtts[Math.floor(rtts.length / 2)]).toBeLessThan(2 * delayMs + 150);
    const st = proxy.stats();
    expect(st.chunks).toBeGreaterThanOrEqual(16);
    expect(st.meanDelayMs).toBeGreaterThanOrEqual(delayMs);
    expect(st.queuedBytes).toBe(0);
  });

  it('preserves order and bytes over many chunks in both directions', async () => {
    const echo = await upstream((s) => s.pipe(s));
    const proxy = await proxyTo(echo.port, { delayMs: 2 });
    const c = await dial(proxy.port);
    const seed = 0x5eed;
    const total = 2 * 1024 * 1024;
    const data = bytes(total, seed);
    const got = receive(c, total);
    // 2,000+ writes of varying sizes (1 byte to ~2 KiB), so chunk boundaries differ on each side of the proxy.
    let off = 0;
    let i = 0;
    while (off < total) {
      const n = Math.min(total - off, 1 + ((i * 7919) % 2048));
      c.write(data.subarray(off, off + n));
      off += n;
      i++;
    }
    expect(i).toBeGreaterThan(2000);
    const echoed = await within(got, 20_000, 'all bytes echoed');
    expect(echoed.length).toBe(total);
    expect(echoed.equals(data), `echoed bytes differ (seed ${seed})`).toBe(true);
  });

  it('caps bandwidth: 1 MiB at 4 MiB/s takes at least ~200 ms', async () => {
    const sink = await upstream(() => {});
    const proxy = await proxyTo(sink.port, { delayMs: 0, bytesPerSecond: 4 * 1024 * 1024 });
    const c = await dial(proxy.port);
    await within(
      new Promise<void>((resolve) => {
        const wait = () => (sink.sockets.length ? resolve() : setTimeout(wait, 5));
        wait();
      }),
      5000,
      'upstream connection',
    );
    const got = receive(sink.sockets[0], 1024 * 1024);
    const t0 = performance.now();
    c.write(bytes(1024 * 1024, 1));
    await within(got, 10_000, '1 MiB through the capped proxy');
    const ms = performance.now() - t0;
    // (1 MiB - one 64 KiB burst) / 4 MiB/s = 234 ms; uncapped, loopback moves 1 MiB in a few ms.
    expect(ms).toBeGreaterThanOrEqual(200);
    expect(ms).toBeLessThan(5000);
  });

  it('stops reading from a sender whose receiver does not read, and delivers everything once it does', async () => {
    const slow = await upstream((s) => s.pause());
    const maxQueuedBytes = 256 * 1024;
    const proxy = await proxyTo(slow.port, { delayMs: 1, maxQueuedBytes });
    const c = await dial(proxy.port);
    const total = 16 * 1024 * 1024;
    const data = bytes(total, 7);
    c.write(data);
    // Long enough for the proxy to have read far more than the bound, were it not pausing.
    await new Promise((r) => setTimeout(r, 500));
    const held = proxy.stats().queuedBytes;
    // The bound plus at most one socket read that arrived as it was crossed.
    expect(held).toBeLessThanOrEqual(maxQueuedBytes + 64 * 1024);
    expect(held).toBeGreaterThan(0);
    const s = slow.sockets[0];
    const got = receive(s, total);
    s.resume();
    const all = await within(got, 20_000, 'everything after the receiver resumed');
    expect(all.equals(data)).toBe(true);
  });

  it('forwards a FIN each way after the data before it (half-close), and a reset as a reset', async () => {
    const up = await upstream(() => {});
    const proxy = await proxyTo(up.port, { delayMs: 5 });
    const c = await dial(proxy.port);
    c.write('last words');
    c.end();
    await within(
      new Promise<void>((resolve) => {
        const wait = () => (up.sockets.length ? resolve() : setTimeout(wait, 5));
        wait();
      }),
      5000,
      'upstream connection',
    );
    const u = up.sockets[0];
    const upGot: Buffer[] = [];
    u.on('data', (b: Buffer) => upGot.push(b));
    await within(new Promise((resolve) => u.once('end', resolve)), 5000, 'FIN at the upstream');
    expect(Buffer.concat(upGot).toString()).toBe('last words');
    // The other direction still works (half-open), then closes the same way.
    const downGot: Buffer[] = [];
    c.on('data', (b: Buffer) => downGot.push(b));
    u.end('reply');
    await within(new Promise((resolve) => c.once('end', resolve)), 5000, 'FIN at the client');
    expect(Buffer.concat(downGot).toString()).toBe('reply');

    // A reset by the upstream resets the client's connection.
    const c2 = await dial(proxy.port);
    await within(
      new Promise<void>((resolve) => {
        const wait = () => (up.sockets.length === 2 ? resolve() : setTimeout(wait, 5));
        wait();
      }),
      5000,
      'second upstream connection',
    );
    const closed = new Promise<boolean>((resolve) => c2.once('close', resolve));
    up.sockets[1].resetAndDestroy();
    expect(await within(closed, 5000, 'client closed after upstream reset')).toBe(true);
    // And a reset by a client closes the upstream side.
    const c3 = await dial(proxy.port);
    await within(
      new Promise<void>((resolve) => {
        const wait = () => (up.sockets.length === 3 ? resolve() : setTimeout(wait, 5));
        wait();
      }),
      5000,
      'third upstream connection',
    );
    const upClosed = new Promise((resolve) => up.sockets[2].once('close', resolve));
    c3.resetAndDestroy();
    await within(upClosed, 5000, 'upstream closed after client reset');
  });

  it('stop() closes open connections and frees the port', async () => {
    const echo = await upstream((s) => s.pipe(s));
    const proxy = await LinkProxy.start({ upstream: `127.0.0.1:${echo.port}`, delayMs: 1 });
    const c = await dial(proxy.port);
    const closed = new Promise((resolve) => c.once('close', resolve));
    await within(proxy.stop(), 5000, 'stop');
    await within(closed, 5000, 'client connection closed by stop()');
    const again = createServer();
    await within(
      new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(proxy.port, '127.0.0.1', resolve);
      }),
      5000,
      'listening on the freed port',
    );
    await new Promise<void>((resolve) => again.close(() => resolve()));
  });

  it('rejects malformed options with a BAD_OPTION LoadgenError', async () => {
    await expect(LinkProxy.start({ upstream: '127.0.0.1:1', delayMs: -1 })).rejects.toMatchObject({
      code: 'BAD_OPTION',
    });
    await expect(LinkProxy.start({ upstream: 'not an address', delayMs: 1 })).rejects.toBeInstanceOf(LoadgenError);
  });
});
