/**
 * The demo that `npm start` runs: a five-node Raft cluster in the deterministic simulator, told as a story.
 * Election, replicated writes, a leader crash and a new election, a network partition (the majority side keeps
 * working, the minority cannot), healing, and a final account of the safety properties the checker verified on
 * every action. Virtual time, seeded randomness: the same story every time, in well under a second.
 *
 * Not part of the package's exports (it prints to the console); it uses no `node:` modules either.
 */
import type { NodeId } from '@raft/core';
import { Simulation } from './simulation.js';
import type { KvCommand, KvStateMachine } from './state-machine.js';

const SEED = 2024;
const sim = new Simulation<KvCommand>({
  seed: SEED,
  nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
  network: { minLatencyMs: 1, maxLatencyMs: 10, dropRate: 0.01 },
  timing: { fsyncMinMs: 1, fsyncMaxMs: 4 },
  traceLimit: 0,
});

let commandId = 0;
const say = (text: string) => console.log(`${String(sim.now).padStart(6)} ms  ${text}`);
const title = (text: string) => console.log(`\n== ${text}`);
const value = (id: NodeId, key: string) => (sim.node(id).sm as KvStateMachine).get(key);

/**
 * Waits for a leader that holds a quorum and has committed its no-op (so it knows the commit index). Not
 * `sim.leader()`: that may be a deposed leader that has not heard of the newer term yet.
 */
function leaderOrFail(maxMs = 5_000): NodeId {
  const leader = sim.runUntilStableLeader(maxMs);
  if (leader === null) throw new Error('no leader emerged');
  return leader.id;
}

function write(key: string, v: number): void {
  // propose() without a node goes to sim.quorumLeader().
  const r = sim.propose({ id: ++commandId, key, value: v });
  if (r.ok) say(`client: set ${key} = ${v}  (leader ${sim.quorumLeader()?.id} appends it at index ${r.value.index})`);
  else say(`client: set ${key} = ${v} refused: ${r.error.code}`);
}

// Report leadership changes and faults as they happen.
let lastLeaderTerm = 0;
sim.onTrace((e) => {
  if (e.kind === 'state' && typeof e.detail === 'string' && e.detail.startsWith('leader')) {
    const term = sim.node(e.node as NodeId).raft?.currentTerm ?? 0;
    if (term > lastLeaderTerm) {
      lastLeaderTerm = term;
      say(`${e.node} wins the election for term ${term}`);
    }
  }
});

title('Five servers boot; nobody leads yet. Election timeouts are random, so one server campaigns first.');
let leader = leaderOrFail();
say(`${leader} leads; its no-op entry committed, so it knows the commit index`);

title('Clients write through the leader; an entry commits once a majority has it on disk.');
for (let i = 1; i <= 5; i++) write(`k${i % 3}`, i * 10);
sim.runFor(100);
say(
  `every server applied the writes: ${sim
    .ids()
    .map((id) => `${id}:k1=${value(id, 'k1')}`)
    .join(' ')}`,
);

title(`The leader ${leader} crashes.`);
sim.crash(leader);
say(`${leader} is down; the others stop hearing heartbeats and, after an election timeout, elect a new leader`);
const crashed = leader;
leader = leaderOrFail();
say(`${leader} leads now; committed entries survive (k1 = ${value(leader, 'k1')})`);
write('k1', 111);
sim.runFor(100);

title(`${crashed} restarts from its disk and catches up.`);
sim.restart(crashed);
sim.runFor(300);
say(`${crashed} has k1 = ${value(crashed, 'k1')}, same as everybody`);

title('A partition splits the cluster into a majority and a minority.');
const minority = [leader, sim.ids().find((id) => id !== leader) as NodeId];
const majority = sim.ids().filter((id) => !minority.includes(id));
sim.partition([minority, majority]);
say(
  `partition: [${minority.join(', ')}] | [${majority.join(', ')}] (the old leader ${leader} is on the minority side)`,
);
const oldLeader = leader;
// Right after the cut the old leader still counts as holding its quorum (it heard from one within an election
// timeout); wait for the majority's new leader.
sim.runUntil(() => majority.includes(sim.quorumLeader()?.id ?? ''), 5_000);
leader = leaderOrFail();
say(`the majority elects ${leader}; ${oldLeader} steps down once it hears from no quorum (CheckQuorum)`);
write('k2', 222);
sim.runFor(100);
const readId = sim.read(minority[1], 'k2');
sim.runFor(200);
const minorityRead = sim.reads.get(readId);
say(
  `a linearizable read on the minority side ${minorityRead?.error ? `fails (${minorityRead.error})` : 'is not answered'}: it cannot prove it sees the latest write`,
);
say(`the majority side committed k2 = ${value(leader, 'k2')}; the minority still has k2 = ${value(minority[1], 'k2')}`);

title('The partition heals.');
sim.heal();
sim.runFor(500);
say(
  `everyone converges: ${sim
    .ids()
    .map((id) => `${id}:k2=${value(id, 'k2')}`)
    .join(' ')}`,
);
const readAfter = sim.read(minority[1], 'k2');
sim.runFor(100);
say(
  `a read on ${minority[1]} now returns k2 = ${String(sim.reads.get(readAfter)?.value)} (read index ${sim.reads.get(readAfter)?.index})`,
);

title('Final check.');
sim.audit();
const checker = sim.checker;
if (checker === null) throw new Error('the checker is disabled');
const s = checker.stats;
console.log(
  [
    `  ${checker.committedLength} entries committed, ${s.elections} elections, ${s.applied} applies checked on ${sim.ids().length} servers,`,
    `  ${s.reads} linearizable reads checked, ${sim.stats.delivered} messages delivered, ${sim.stats.dropped} dropped.`,
    '  Checked on every action, none violated:',
    '    election safety (at most one leader per term), leader append-only, log matching, leader completeness,',
    '    state machine safety, every applied entry was proposed, linearizable reads, one config change at a time,',
    '    snapshots never lose committed state.',
    `  Seed ${SEED}: run it again and every line above comes out the same.`,
  ].join('\n'),
);
