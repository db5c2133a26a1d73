import { type Entry, type HardState, type Message, type NodeId, RaftNode } from '@raft/core';
import { Driver } from './driver.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `done` every 10 ms until it holds; throws after `timeoutMs`. */
async function until(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Three nodes in one process, each with its own Driver: an in-memory "disk" whose writes take 2 ms and complete in
 * order, and a "network" that delivers every message 1 ms later. Proposes `commands` on the leader and resolves
 * with what each node applied once all of them have applied every command.
 */
export async function runThreeNodes(commands: readonly string[], timeoutMs = 10_000): Promise<Map<NodeId, string[]>> {
  const ids: NodeId[] = ['a', 'b', 'c'];
  const applied = new Map<NodeId, string[]>();
  const drivers = new Map<NodeId, Driver<string>>();
  for (const id of ids) {
    const log: string[] = [];
    applied.set(id, log);
    const disk: { hardState: HardState; entries: Entry<string>[] } = {
      hardState: { term: 0, votedFor: null },
      entries: [],
    };
    let writes = Promise.resolve();
    const write = (change: () => void): Promise<void> => {
      writes = writes.then(async () => {
        await sleep(2); // an fsync
        change();
      });
      return writes;
    };
    const node = RaftNode.start<string>(id);
    node.createCluster(ids); // every initial voter makes the same call
    const driver = new Driver<string>(node, {
      saveHardState: (hardState) => write(() => (disk.hardState = hardState)),
      appendEntries: (entries) =>
        write(() => {
          const from = entries[0]?.index ?? Number.POSITIVE_INFINITY;
          disk.entries = disk.entries.filter((e) => e.index < from).concat(entries);
        }),
      send: (message: Message<string>) => setTimeout(() => drivers.get(message.to)?.receive(message), 1),
      apply: (command) => log.push(command),
    });
    drivers.set(id, driver);
    driver.kick(); // the first kick carries out the initial setTimer action: without it nothing ever happens
  }
  try {
    const leader = () => [...drivers.values()].find((d) => d.node.role === 'leader');
    await until(() => leader() !== undefined, 'a leader', timeoutMs);
    const driver = leader();
    if (driver === undefined) throw new Error('the leader stepped down');
    for (const command of commands) {
      const proposed = driver.node.propose(command);
      if (!proposed.ok) throw proposed.error; // e.g. NOT_LEADER if leadership moved meanwhile
    }
    driver.kick(); // one kick for the whole batch: one disk write, one AppendEntries per follower
    await until(
      () => [...applied.values()].every((l) => l.length >= commands.length),
      'every node to apply',
      timeoutMs,
    );
    return applied;
  } finally {
    for (const d of drivers.values()) d.stop();
  }
}
