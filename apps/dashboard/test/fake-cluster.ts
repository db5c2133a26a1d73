/**
 * TEST-ONLY stand-in for a 3-node cluster: WebSocket JSON-RPC servers on 127.0.0.1 that answer `GetServerState`
 * (the ServerState shape of packages/node-tcp/API.md) and `TakeSnapshot` from one shared, scripted model. Used by
 * the live-view e2e test while real @raft/node-tcp nodes are not available to it; it mimics the API, not Raft.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

interface FakeNode {
  address: string;
  wss: WebSocketServer;
  alive: boolean;
  snapshotIndex: number;
}

/** A scripted cluster: the first live node leads; killing the leader elects the next one after `electionMs`. */
export class FakeCluster {
  readonly nodes: FakeNode[] = [];
  term = 1;
  commitIndex = 1;
  private leaderIdx = 0;
  private electing = false;
  private ticker: ReturnType<typeof setInterval> | undefined;

  private constructor(private readonly electionMs: number) {}

  /** Starts `n` fake nodes on free ports. */
  static async start(n = 3, electionMs = 500): Promise<FakeCluster> {
    const c = new FakeCluster(electionMs);
    for (let i = 0; i < n; i++) {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await new Promise<void>((r) => wss.once('listening', () => r()));
      const node: FakeNode = {
        address: `127.0.0.1:${(wss.address() as AddressInfo).port}`,
        wss,
        alive: true,
        snapshotIndex: 0,
      };
      wss.on('connection', (ws) => {
        ws.on('message', (data) => {
          const req = JSON.parse(String(data)) as { id: number; method: string };
          let body: Record<string, unknown>;
          if (req.method === 'GetServerState') body = { result: c.state(node) };
          else if (req.method === 'TakeSnapshot') {
            node.snapshotIndex = c.commitIndex;
            body = { result: { snapshotIndex: node.snapshotIndex } };
          } else body = { error: { code: -32601, message: `method not found: ${req.method}` } };
          ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, ...body }));
        });
      });
      c.nodes.push(node);
    }
    // Commits flow while there is a leader, so the commits-per-second chart has data.
    c.ticker = setInterval(() => {
      if (!c.electing) c.commitIndex += 5;
    }, 100);
    return c;
  }

  /** The current leader's address, or null during an election. */
  get leader(): string | null {
    return this.electing ? null : this.nodes[this.leaderIdx].address;
  }

  /** Crash-like stop of a node: its sockets are destroyed; a new leader is "elected" if it led. */
  async kill(address: string): Promise<void> {
    const i = this.nodes.findIndex((n) => n.address === address);
    const node = this.nodes[i];
    node.alive = false;
    for (const ws of node.wss.clients) ws.terminate();
    await new Promise<void>((r) => node.wss.close(() => r()));
    if (i === this.leaderIdx) {
      this.electing = true;
      setTimeout(() => {
        this.leaderIdx = this.nodes.findIndex((n) => n.alive);
        this.term++;
        this.commitIndex++;
        this.electing = false;
      }, this.electionMs);
    }
  }

  private state(node: FakeNode): Record<string, unknown> {
    const isLeader = !this.electing && this.nodes[this.leaderIdx] === node;
    const voters = this.nodes.map((n) => n.address);
    const followers: Record<string, unknown> = {};
    if (isLeader) {
      for (const n of this.nodes) {
        if (n === node) continue;
        const match = n.alive ? this.commitIndex : 0;
        followers[n.address] = {
          matchIndex: match,
          nextIndex: match + 1,
          lag: this.commitIndex - match,
          state: n.alive ? 'replicate' : 'probe',
          inflight: 0,
        };
      }
    }
    return {
      id: node.address,
      clusterName: 'raft',
      role: isLeader ? 'leader' : this.electing ? 'candidate' : 'follower',
      membership: 'voter',
      term: this.term,
      votedFor: this.leader,
      leader: this.leader,
      members: voters,
      voters,
      learners: [],
      commitIndex: this.commitIndex,
      appliedIndex: this.commitIndex,
      firstLogIndex: node.snapshotIndex + 1,
      lastLogIndex: this.commitIndex,
      lastLogTerm: this.term,
      persistedIndex: this.commitIndex,
      snapshotIndex: node.snapshotIndex,
      snapshotTerm: node.snapshotIndex > 0 ? 1 : 0,
      ...(isLeader ? { followers } : {}),
      sessions: 0,
      counters: { commandsApplied: this.commitIndex },
      uptimeMs: 1000,
    };
  }

  /** Stops every node. */
  async close(): Promise<void> {
    clearInterval(this.ticker);
    for (const n of this.nodes) {
      if (!n.alive) continue;
      n.alive = false;
      for (const ws of n.wss.clients) ws.terminate();
      await new Promise<void>((r) => n.wss.close(() => r()));
    }
  }
}
