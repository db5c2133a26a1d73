// Start-up order: the port must accept only once the server can serve. Opening storage is made slow here (a mock
// of @raft/storage-jsonl's openStorage that waits first), which is what a real disk does for 22-180 ms.

import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from '@raft/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createServer, type RaftServer, silentLogger } from '../src/index.js';
import { FAST, KvMachine } from './helpers.js';

const slow = vi.hoisted(() => ({ ms: 0 }));
vi.mock('@raft/storage-jsonl', async (importOriginal) => {
  const m = await importOriginal<typeof import('@raft/storage-jsonl')>();
  return {
    ...m,
    openStorage: async (...args: Parameters<typeof m.openStorage>) => {
      // Not the testkit's sleep: this factory is hoisted above the file's imports.
      await new Promise((r) => setTimeout(r, slow.ms));
      return m.openStorage(...args);
    },
  };
});

let dir = '';
let server: RaftServer | undefined;
afterEach(async () => {
  await server?.kill();
  server = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Attempt = { kind: 'refused' } | { kind: 'answered'; line: string } | { kind: 'closed without an answer' };

/** Connect once and send CreateCluster: refused, answered, or accepted and then closed without an answer. */
function attempt(port: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let connected = false;
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ kind: 'closed without an answer' });
    }, 5000);
    const done = (a: Attempt) => {
      clearTimeout(timer);
      s.destroy();
      resolve(a);
    };
    s.on('connect', () => {
      connected = true;
      s.write('{"jsonrpc":"2.0","id":1,"method":"CreateCluster"}\n');
    });
    s.on('data', (d) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) done({ kind: 'answered', line: buf.slice(0, i) });
    });
    s.on('error', () => undefined);
    s.on('close', () => done(connected ? { kind: 'closed without an answer' } : { kind: 'refused' }));
  });
}

describe('start-up', () => {
  for (const portZero of [false, true]) {
    it(`accepts connections only once it can serve them (${portZero ? 'port 0' : 'a fixed port'})`, async () => {
      dir = await mkdtemp(join(tmpdir(), 'node-tcp-startup-'));
      const port = await freePort();
      if (portZero) {
        // Learn the port a port-0 server records in its data directory, then start it again with port 0.
        slow.ms = 0;
        const first = createServer({
          address: `127.0.0.1:${port}`,
          dataDir: dir,
          machine: new KvMachine(),
          storageSync: false,
          logger: silentLogger,
          ...FAST,
        });
        await first.start();
        await first.stop();
      }
      slow.ms = 300;
      server = createServer({
        address: portZero ? '127.0.0.1:0' : `127.0.0.1:${port}`,
        dataDir: dir,
        machine: new KvMachine(),
        storageSync: false,
        logger: silentLogger,
        ...FAST,
      });
      const started = server.start();
      let a: Attempt = { kind: 'refused' };
      const end = Date.now() + 5000;
      // Bounded: at most 5 s and 1000 attempts, 5 ms apart while the port refuses.
      for (let i = 0; i < 1000 && a.kind === 'refused' && Date.now() < end; i++) {
        a = await attempt(port);
        if (a.kind === 'refused') await sleep(5);
      }
      await started;
      expect(server.id).toBe(`127.0.0.1:${port}`);
      expect(a.kind).toBe('answered');
      expect(JSON.parse((a as { line: string }).line)).toEqual({
        jsonrpc: '2.0',
        id: 1,
        result: { members: [`127.0.0.1:${port}`] },
      });
    });
  }
});
