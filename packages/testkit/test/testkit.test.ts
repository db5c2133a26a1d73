import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, freePorts, sleep, WaitTimeoutError, waitFor } from '../src/index.js';

/** Binds `port` on 127.0.0.1 and closes it again; resolves false if the port is taken. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('freePorts / freePort', () => {
  it('returns distinct ports that can be bound once returned', async () => {
    const ports = await freePorts(4);
    expect(ports).toHaveLength(4);
    expect(new Set(ports).size).toBe(4);
    for (const p of ports) {
      expect(p).toBeGreaterThan(0);
      expect(p).toBeLessThanOrEqual(65535);
      expect(await canBind(p)).toBe(true);
    }
    expect(await freePorts(0)).toEqual([]);
    expect(await canBind(await freePort())).toBe(true);
  });
});

describe('sleep', () => {
  it('resolves no earlier than asked', async () => {
    const t0 = performance.now();
    await sleep(30);
    // Timers may fire up to a millisecond early by rounding; never tens of milliseconds early.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
  });
});

describe('waitFor', () => {
  it('returns the first truthy value, sync or async, after as many checks as it takes', async () => {
    let calls = 0;
    expect(await waitFor(() => (++calls >= 3 ? 'done' : undefined), 5000, 'three calls', { intervalMs: 1 })).toBe(
      'done',
    );
    expect(calls).toBe(3);
    expect(await waitFor(async () => 7)).toBe(7);
  });

  it('times out with a typed error naming what it waited for, after checking past the deadline', async () => {
    let calls = 0;
    const never = () => {
      calls++;
      return false;
    };
    const err = await waitFor(never, 50, 'the impossible').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(err).toMatchObject({ code: 'WAIT_TIMEOUT', lastError: undefined });
    expect((err as Error).message).toBe('timed out after 50 ms waiting for the impossible');
    expect(calls).toBeGreaterThanOrEqual(2);
  });

  it('ends at the first error of the check, unless told to retry errors; then names the last one', async () => {
    const boom = new Error('boom');
    let calls = 0;
    await expect(
      waitFor(() => {
        calls++;
        throw boom;
      }, 5000),
    ).rejects.toBe(boom);
    expect(calls).toBe(1);

    let n = 0;
    const value = await waitFor(
      async () => {
        if (++n < 3) throw new Error(`not up yet ${n}`);
        return n;
      },
      5000,
      'a server',
      { intervalMs: 1, retryErrors: true },
    );
    expect(value).toBe(3);

    const err = await waitFor(
      () => {
        throw new Error('still down');
      },
      30,
      'a server',
      { intervalMs: 5, retryErrors: true },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as WaitTimeoutError).message).toBe('timed out after 30 ms waiting for a server: still down');
    expect(((err as WaitTimeoutError).lastError as Error).message).toBe('still down');
  });
});
