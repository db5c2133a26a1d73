import { type ApplyContext, createServer, type Machine } from '@raft/node-tcp';

type CounterInput = { Add: number } | 'Get';
/** The snapshot: any type (an interface too) whose values JSON round-trips. */
interface CounterState {
  n: number;
}

/** A replicated counter: `{"Add": n}` commands add, `"Get"` reads. */
export class Counter implements Machine<CounterInput, number, CounterState> {
  n = 0;
  apply(input: CounterInput, ctx: ApplyContext): number {
    if (input !== 'Get' && ctx.kind === 'Command') this.n += input.Add;
    return this.n;
  }
  validate(input: unknown): string | undefined {
    if (input === 'Get' || typeof (input as { Add?: unknown } | null)?.Add === 'number') return undefined;
    return 'expected {"Add": n} or "Get"';
  }
  snapshot(): CounterState {
    return { n: this.n }; // or a Uint8Array
  }
  restore(snapshot: Uint8Array | CounterState): void {
    if (!(snapshot instanceof Uint8Array)) this.n = snapshot.n;
  }
}

/** Two servers (`a`, then `b` joins); returns what each call resolved with. Data goes under `dataDir`. */
export async function runCounter(a: string, b: string, dataDir: string): Promise<unknown[]> {
  const server = createServer({ address: a, dataDir: `${dataDir}/a`, machine: new Counter() });
  const other = createServer({ address: b, dataDir: `${dataDir}/b`, machine: new Counter() });
  const roles: string[] = [];
  server.on('stateChanged', ({ role, term, leader }) => roles.push(`${role} t${term} ${leader}`));
  await server.start();
  await other.start();
  try {
    return [
      await server.createCluster(), // { members: [a] }
      await server.apply({ Add: 2 }), // 2: through the log, applied on every member
      await server.query('Get'), // 2: linearizable (ReadIndex)
      await server.localQuery('Get'), // 2: this server's state, no guarantee
      await server.addServer(b), // { members: [a, b] }: another running server joins
      await other.apply({ Add: 3 }), // 5: a follower forwards commands to the leader
      await other.query('Get'), // 5
      roles,
    ];
  } finally {
    await other.stop();
    await server.stop();
  }
}
