import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@raft/testkit';
import { describe, expect, it } from 'vitest';
import { type ApplyContext, createServer, type Machine, silentLogger } from '../src/index.js';
import { Cluster, FAST } from './helpers.js';

/**
 * A machine whose state is the list of applied commands with their log indexes. Its snapshot captures the list
 * when called and resolves only when the test says so, like a machine serialising a large state in slices.
 */
class SlowSnapshotMachine implements Machine {
  items: [number, unknown][] = [];
  restoredWith: [number, unknown][] | null = null;
  release: (() => void) | null = null;
  apply(input: unknown, ctx: ApplyContext): unknown {
    if (ctx.kind === 'Command') this.items.push([ctx.index, input]);
    return this.items.length;
  }
  constructor(private readonly slow = true) {}
  snapshot(): Promise<Uint8Array> {
    const captured = JSON.stringify(this.items);
    if (!this.slow) return Promise.resolve(new TextEncoder().encode(captured));
    return new Promise((resolve) => {
      this.release = () => resolve(new TextEncoder().encode(captured));
    });
  }
  restore(s: unknown): void {
    this.items = JSON.parse(new TextDecoder().decode(s as Uint8Array)) as [number, unknown][];
    this.restoredWith = this.items.map((x) => [...x] as [number, unknown]);
  }
}

describe('asynchronous machine snapshots', () => {
  it('save the state captured when the snapshot started, while commands keep being applied', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'node-tcp-snap-'));
    const opts = { address: '127.0.0.1:0', dataDir: dir, logger: silentLogger, storageSync: false, ...FAST };
    const m1 = new SlowSnapshotMachine();
    const a = createServer({ ...opts, machine: m1 });
    try {
      await a.start();
      await a.createCluster();
      for (let i = 0; i < 5; i++) await a.apply({ n: i });
      const taking = a.takeSnapshot();
      // The snapshot is pending: the server still commits and applies commands (no blocking, no queueing).
      await expect.poll(() => m1.release !== null).toBe(true);
      for (let i = 5; i < 8; i++) expect(await a.apply({ n: i })).toBe(i + 1);
      m1.release?.();
      const { snapshotIndex } = await taking;
      const atSnapshot = m1.items.filter(([index]) => index <= snapshotIndex);
      expect(atSnapshot.map(([, input]) => input)).toEqual([0, 1, 2, 3, 4].map((n) => ({ n })));
      expect(m1.items.length).toBe(8);
      await a.stop();

      // Restart from the data directory: restore gets exactly the captured state, then the log replays the rest.
      const m2 = new SlowSnapshotMachine();
      const b = createServer({ ...opts, address: a.id, machine: m2 });
      await b.start();
      try {
        expect(m2.restoredWith).toEqual(atSnapshot);
        expect(await b.query('any')).toBe(8);
        expect(m2.items).toEqual(m1.items);
      } finally {
        await b.kill();
      }
    } finally {
      await a.kill().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('drop a snapshot still being encoded when a newer one from the leader is installed meanwhile', async () => {
    const c = await Cluster.create();
    const start = async (machine: SlowSnapshotMachine) => {
      const address = `127.0.0.1:${await freePort()}`;
      const s = createServer({
        address,
        dataDir: c.dataDir(address),
        machine,
        logger: silentLogger,
        storageSync: false,
        ...FAST,
      });
      c.servers.set(address, s);
      await s.start();
      return s;
    };
    try {
      const a = await start(new SlowSnapshotMachine(false));
      await a.createCluster();
      const b = await start(new SlowSnapshotMachine(false));
      await a.addServer(b.id);
      // f's machine snapshots slowly: f gets a few commands, then is asked for a snapshot it cannot finish yet.
      const slow = new SlowSnapshotMachine();
      const f = await start(slow);
      await a.addServer(f.id);
      for (let i = 0; i < 5; i++) await a.apply({ n: i });
      await waitFor(() => slow.items.length === 5, 10_000, 'f applying the commands');
      const pending = f.takeSnapshot();
      await expect.poll(() => slow.release !== null).toBe(true);
      // Remove f, move the cluster on and compact its log, then add f back: the leader can only catch f up with
      // a snapshot, newer than the one f is still encoding.
      await a.removeServer(f.id);
      for (let i = 5; i < 30; i++) await a.apply({ n: i });
      await a.takeSnapshot();
      await b.takeSnapshot();
      await a.addServer(f.id);
      await waitFor(async () => (await f.getServerState()).counters.snapshotsInstalled > 0, 10_000, 'f installing');
      const installed = (await f.getServerState()).snapshotIndex;
      expect(installed).toBeGreaterThan(0);
      slow.release?.();
      const r = await pending;
      expect(f.isRunning).toBe(true);
      expect(r.snapshotIndex).toBe(installed);
      expect((await f.getServerState()).snapshotIndex).toBe(installed);
      expect(await f.query('any')).toBe(30);
    } finally {
      await c.cleanup();
    }
  });

  it('report a machine whose snapshot fails to the caller, and keep serving', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'node-tcp-snap-'));
    const m = new SlowSnapshotMachine();
    m.snapshot = () => Promise.reject(new Error('disk full in the machine'));
    const a = createServer({
      address: '127.0.0.1:0',
      dataDir: dir,
      logger: silentLogger,
      storageSync: false,
      machine: m,
      ...FAST,
    });
    try {
      await a.start();
      await a.createCluster();
      await a.apply({ n: 1 });
      await expect(a.takeSnapshot()).rejects.toThrow(/disk full in the machine/);
      expect(await a.apply({ n: 2 })).toBe(2);
      expect(a.isRunning).toBe(true);
    } finally {
      await a.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
