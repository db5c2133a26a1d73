import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Driver } from '../examples/driver.js';
import { type Entry, type HardState, type Message, RaftNode } from '../src/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the driver loop from docs/core.md', () => {
  it('is quoted in docs/core.md exactly', () => {
    const code = readFileSync(join(__dirname, '../examples/driver.ts'), 'utf8');
    const doc = readFileSync(join(__dirname, '../../../docs/core.md'), 'utf8');
    expect(doc).toContain(code.trim());
  });

  it('runs a real-timer 3-node cluster with slow background fsyncs and commits every proposal everywhere', async () => {
    const ids = ['a', 'b', 'c'];
    const applied = new Map<string, string[]>(ids.map((id) => [id, []]));
    const drivers = new Map<string, Driver<string>>();
    for (const id of ids) {
      const disk: { hs: HardState; log: Entry<string>[] } = { hs: { term: 0, votedFor: null }, log: [] };
      let writes = Promise.resolve();
      const write = (f: () => void) => {
        writes = writes.then(async () => {
          await sleep(2); // an fsync
          f();
        });
        return writes;
      };
      const node = RaftNode.start<string>(id);
      node.createCluster(ids);
      const driver = new Driver<string>(node, {
        saveHardState: (hs) => write(() => (disk.hs = hs)),
        appendEntries: (entries) =>
          write(() => {
            disk.log = disk.log.filter((e) => e.index < entries[0].index).concat(entries);
          }),
        send: (m: Message<string>) => setTimeout(() => drivers.get(m.to)?.receive(m), 1),
        apply: (cmd) => applied.get(id)!.push(cmd),
      });
      drivers.set(id, driver);
      driver.kick();
    }
    const deadline = Date.now() + 10_000;
    let leader: RaftNode<string> | undefined;
    while (!leader && Date.now() < deadline) {
      await sleep(20);
      leader = [...drivers.values()].map((d) => d.node).find((n) => n.role === 'leader');
    }
    expect(leader).toBeDefined();
    for (let i = 0; i < 100; i++) leader!.propose(`cmd${i}`);
    drivers.get(leader!.id)!.kick();
    while (Date.now() < deadline && ids.some((id) => applied.get(id)!.length < 100)) await sleep(20);
    for (const d of drivers.values()) d.stop();
    const expected = Array.from({ length: 100 }, (_, i) => `cmd${i}`);
    for (const id of ids) expect(applied.get(id)).toEqual(expected);
  });
});
