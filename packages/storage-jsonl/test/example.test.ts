/**
 * The runtime wiring quoted in docs/storage.md, run for real: a three-node cluster on JSON Lines storage takes
 * snapshots, compacts, and a node that was down catches up through a chunked snapshot transfer, then everything
 * survives a restart from disk.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Message } from '@raft/core';
import { waitFor } from '@raft/testkit';
import { describe, expect, it } from 'vitest';
import { DurableNode, type StateMachine } from '../examples/raft-storage.js';
import { tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

class ListMachine implements StateMachine {
  items: string[] = [];
  apply(command: Uint8Array): void {
    this.items.push(Buffer.from(command).toString('utf8'));
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(Buffer.from(data).toString('utf8'));
  }
}

/** Polls `cond` every 5 ms (the cluster's messages go out on 1 ms timers), for at most `ms` (real timers, loaded machine). */
const until = (cond: () => boolean, what: string, ms = 30_000) => waitFor(cond, ms, what, { intervalMs: 5 });

describe('docs/storage.md runtime example', () => {
  it('is quoted in docs/storage.md exactly', () => {
    const code = readFileSync(join(here, '../examples/raft-storage.ts'), 'utf8');
    const doc = readFileSync(join(here, '../../../docs/storage.md'), 'utf8');
    expect(doc).toContain(code.trim());
  });

  it('runs a cluster: snapshots, compaction, chunked snapshot catch-up and restart from disk', {
    timeout: 180_000,
  }, async () => {
    const ids = ['a', 'b', 'c'];
    const dirs = new Map<string, string>();
    for (const id of ids) dirs.set(id, await tempDir());
    const nodes = new Map<string, DurableNode>();
    const machines = new Map<string, ListMachine>();
    const send = (m: Message<Uint8Array>) => setTimeout(() => nodes.get(m.to)?.receive(m), 1);
    const start = async (id: string) => {
      const sm = new ListMachine();
      machines.set(id, sm);
      const d = await DurableNode.open(id, dirs.get(id)!, sm, send);
      nodes.set(id, d);
      return d;
    };
    try {
      for (const id of ids) (await start(id)).node.createCluster(ids);
      for (const d of nodes.values()) d.kick();
      const leader = () => [...nodes.values()].find((d) => d.node.role === 'leader');
      await until(() => leader() !== undefined, 'a leader');
      const propose = async (from: number, to: number) => {
        for (let i = from; i <= to; i++) {
          await until(() => leader() !== undefined, 'a leader');
          const l = leader()!;
          const r = l.node.propose(new TextEncoder().encode(`cmd-${i}`));
          if (!r.ok) {
            i--;
            await new Promise((res) => setTimeout(res, 5));
            continue;
          }
          l.kick();
          if (i % 20 === 0)
            await until(() => l.node.commitIndex >= r.value.index || l.node.role !== 'leader', 'commit');
        }
      };
      const expected = (n: number) => Array.from({ length: n }, (_, k) => `cmd-${k + 1}`);
      await propose(1, 40);
      await until(() => ids.every((id) => machines.get(id)!.items.length === 40), 'everyone applies 40');

      // Node c goes down; the others go on and compact their logs past what c has.
      await nodes.get('c')!.close();
      nodes.delete('c');
      await propose(41, 120);
      await until(() => ['a', 'b'].every((id) => machines.get(id)!.items.length === 120), 'a and b apply 120');
      for (const id of ['a', 'b']) {
        const meta = await nodes.get(id)!.takeSnapshot();
        expect(meta.index).toBeGreaterThanOrEqual(120);
        expect(nodes.get(id)!.storage.durableSnapshot?.meta).toEqual(meta);
      }

      // c restarts from its disk (40 entries) and can only catch up by receiving a snapshot in chunks.
      const c = await start('c');
      expect(c.node.lastLogIndex).toBeGreaterThanOrEqual(40);
      await propose(121, 130);
      await until(() => machines.get('c')!.items.length === 130, 'c catches up', 45_000);
      expect(machines.get('c')!.items).toEqual(expected(130));
      expect(c.storage.durableSnapshot!.meta.index).toBeGreaterThanOrEqual(120);

      // Everyone restarts from disk and still agrees.
      for (const id of ids) await nodes.get(id)!.close();
      nodes.clear();
      for (const id of ids) await start(id);
      await propose(131, 135);
      await until(
        () => ids.every((id) => machines.get(id)!.items.length === 135),
        'everyone applies 135 after restart',
      );
      for (const id of ids) expect(machines.get(id)!.items).toEqual(expected(135));
    } finally {
      for (const d of nodes.values()) await d.close();
    }
  });
});
