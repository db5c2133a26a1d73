/**
 * A real 3-node cluster for the live-view e2e test: @raft/node-tcp servers started in this process on 127.0.0.1,
 * with a bounded trickle of commands so the page's commits-per-second chart has data.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Machine, type RaftServer, type ServerOptions, silentLogger } from '@raft/node-tcp';

/** The smallest useful machine: a counter, so commands have something to change. */
class Counter implements Machine {
  n = 0;
  apply(): number {
    return ++this.n;
  }
  snapshot(): number {
    return this.n;
  }
  restore(s: unknown): void {
    this.n = Number(s);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** What the live test needs from a cluster. */
export interface TestCluster {
  /** `host:port` of every node (each serves JSON-RPC over WebSocket on that port). */
  readonly addresses: string[];
  /** A started server that is in no cluster yet (for AddServer). */
  readonly spare: string;
  /** Crash-like stop of one node. */
  kill(address: string): Promise<void>;
  /** Starts a killed node again, on the same address and data directory. */
  restart(address: string): Promise<void>;
  /** Stops everything and deletes temporary data. */
  close(): Promise<void>;
}

/** Starts three real nodes (CreateCluster on the first, AddServer for the other two) and one spare server. */
export async function startCluster(): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'dashboard-live-'));
  const servers: RaftServer[] = [];
  const options: ServerOptions[] = [];
  let loadRunning = true;
  let load: Promise<void> = Promise.resolve();
  try {
    for (let i = 0; i < 4; i++) {
      const address = `127.0.0.1:${await freePort()}`;
      options.push({
        address,
        dataDir: join(dir, address.replace(/\W/g, '_')),
        machine: new Counter(),
        storageSync: false,
        logger: silentLogger,
        // Generous timings: the machine running the tests is shared and may be loaded.
        heartbeatMs: 50,
        electionTimeoutMs: 500,
        requestTimeoutMs: 10_000,
      });
      servers.push(createServer(options[i]));
    }
    await Promise.all(servers.map((s) => s.start()));
    await servers[0].createCluster();
    await servers[0].addServer(servers[1].id);
    await servers[0].addServer(servers[2].id);
  } catch (e) {
    await Promise.all(servers.map((s) => s.kill().catch(() => {})));
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const members = () => servers.slice(0, 3); // a restarted node is a new object in `servers`
  load = (async () => {
    for (let i = 0; i < 5000 && loadRunning; i++) {
      const live = members().filter((s) => s.isRunning);
      try {
        await live[i % live.length]?.apply({ inc: i }, { timeoutMs: 2000 });
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // no leader for a moment (the test kills it)
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    addresses: members().map((s) => s.id),
    spare: servers[3].id,
    kill: async (address) => {
      await servers.find((s) => s.id === address)?.kill();
    },
    restart: async (address) => {
      const i = servers.findIndex((s) => s.id === address);
      if (i < 0 || servers[i].isRunning) throw new Error(`${address} is not a killed node of this cluster`);
      servers[i] = createServer(options[i]);
      await servers[i].start();
    },
    close: async () => {
      loadRunning = false;
      await load;
      await Promise.all(servers.map((s) => s.kill().catch(() => {})));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
