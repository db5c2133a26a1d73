/**
 * The fault-injecting TCP proxy network.
 *
 * Design ("one proxy per node, sender learned from the handshake"): node i advertises its proxy's address as its
 * id (`raft-kvs serve 127.0.0.1:P_i --listen 127.0.0.1:L_i`), so every peer dials P_i and all peer traffic to node
 * i passes through proxy i, which forwards to L_i. The proxy learns which node dialed it from node-tcp's peer
 * handshake: after the `RAFT` magic and version byte, the dialer's hello frame (4-byte length + MessagePack)
 * carries its id in field `i`. Clients of the tester dial the nodes' real listen addresses, so partitions cut
 * only node-to-node traffic, as in Jepsen.
 *
 * A blocked direction `from -> to` is enforced per connection: when a rule starts blocking a connection in either
 * direction the connection is reset (both sockets destroyed), like a partition breaking TCP; bytes of connections
 * made while blocked are held (not dropped, which would corrupt the frame stream) until the rule lifts or the
 * node's handshake timeout gives up on them. One-way rules block one direction only.
 *
 * @packageDocumentation
 */

import { connect, createServer, type Server, type Socket } from 'node:net';
import { FrameDecoder, PEER_MAGIC, splitAddress } from '@raft/node-tcp';

/** Bytes a held direction may accumulate before its connection is reset. */
const MAX_HELD_BYTES = 32 * 1024 * 1024;

interface Conn {
  readonly to: string;
  from: string | null;
  readonly client: Socket;
  readonly upstream: Socket;
  /** Held bytes, per direction: client->upstream is from->to; upstream->client is to->from. */
  heldUp: Buffer[];
  heldDown: Buffer[];
  heldBytes: number;
  /** Handshake sniffing state (client->upstream bytes). */
  sniff: Buffer | null;
  decoder: FrameDecoder | null;
}

/** A set of proxies (one per node) sharing the rules of which node may talk to which. */
export class ProxyNetwork {
  private readonly servers = new Map<string, Server>();
  private readonly conns = new Set<Conn>();
  private blocked = new Set<string>();
  /** Connections seen, identified as peer connections, and reset by rules: for the run summary. */
  readonly stats = { connections: 0, resets: 0, identified: 0 };

  /**
   * Starts a proxy on 127.0.0.1 (a free port) that forwards to `upstream` ("host:port"). Returns the proxy's
   * address, which is the node's id.
   *
   * @throws TypeError when `upstream` is not an address a server could have (`splitAddress` from @raft/node-tcp).
   */
  async addProxy(upstream: string): Promise<string> {
    const target = splitAddress(upstream);
    if (target === null) throw new TypeError(`upstream must be "host:port", got ${JSON.stringify(upstream)}`);
    const server = createServer((client) => this.accept(client, id, target));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('proxy has no TCP address');
    const id = `127.0.0.1:${addr.port}`;
    this.servers.set(id, server);
    return id;
  }

  /** Whether messages from node `from` to node `to` are currently blocked. */
  isBlocked(from: string, to: string): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  /**
   * Replaces the rules with `pairs` (each `[from, to]` blocks that direction). Connections that become blocked in
   * either direction are reset; held bytes of directions that became open are delivered.
   */
  setBlocked(pairs: Iterable<readonly [string, string]>): void {
    const old = this.blocked;
    this.blocked = new Set([...pairs].map(([a, b]) => `${a}>${b}`));
    for (const c of [...this.conns]) {
      if (c.from === null) continue;
      const upKey = `${c.from}>${c.to}`;
      const downKey = `${c.to}>${c.from}`;
      const newly = (!old.has(upKey) && this.blocked.has(upKey)) || (!old.has(downKey) && this.blocked.has(downKey));
      if (newly) {
        this.stats.resets++;
        this.destroy(c);
      } else {
        this.flush(c);
      }
    }
  }

  /** Lifts every rule. */
  healAll(): void {
    this.setBlocked([]);
  }

  /** Closes every proxy and connection. */
  async close(): Promise<void> {
    for (const c of [...this.conns]) this.destroy(c);
    await Promise.all([...this.servers.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.servers.clear();
  }

  private accept(client: Socket, to: string, upstream: { host: string; port: number }): void {
    const up = connect(upstream);
    client.setNoDelay(true);
    up.setNoDelay(true);
    const c: Conn = {
      to,
      from: null,
      client,
      upstream: up,
      heldUp: [],
      heldDown: [],
      heldBytes: 0,
      sniff: Buffer.alloc(0),
      decoder: null,
    };
    this.conns.add(c);
    this.stats.connections++;
    client.on('data', (chunk: Buffer) => {
      if (c.from === null && c.sniff !== null) this.sniffHello(c, chunk);
      if (c.from !== null && this.isBlocked(c.from, c.to)) this.hold(c, 'up', chunk);
      else up.write(chunk);
    });
    up.on('data', (chunk: Buffer) => {
      if (c.from !== null && this.isBlocked(c.to, c.from)) this.hold(c, 'down', chunk);
      else client.write(chunk);
    });
    const end = () => this.destroy(c);
    client.on('error', end);
    up.on('error', end);
    client.on('close', end);
    up.on('close', end);
  }

  /** Reads the dialer's id from its hello frame; gives up (treats the connection as a client's) on other bytes. */
  private sniffHello(c: Conn, chunk: Buffer): void {
    try {
      if (c.decoder === null) {
        c.sniff = Buffer.concat([c.sniff ?? Buffer.alloc(0), chunk]);
        const need = PEER_MAGIC.length + 1;
        if (c.sniff.length < need) return;
        if (!c.sniff.subarray(0, PEER_MAGIC.length).equals(PEER_MAGIC)) {
          c.sniff = null; // not a peer connection
          return;
        }
        c.decoder = new FrameDecoder(1024 * 1024);
        const rest = c.sniff.subarray(need);
        c.sniff = Buffer.alloc(0);
        if (rest.length > 0) this.feed(c, rest);
        return;
      }
      this.feed(c, chunk);
    } catch {
      c.sniff = null;
      c.decoder = null;
    }
  }

  private feed(c: Conn, bytes: Buffer): void {
    for (const payload of c.decoder!.push(bytes)) {
      const v = c.decoder!.decode(payload) as { i?: unknown };
      if (typeof v?.i === 'string') {
        c.from = v.i;
        c.sniff = null;
        c.decoder = null;
        this.stats.identified++;
        return;
      }
    }
  }

  private hold(c: Conn, dir: 'up' | 'down', chunk: Buffer): void {
    (dir === 'up' ? c.heldUp : c.heldDown).push(chunk);
    c.heldBytes += chunk.length;
    if (c.heldBytes > MAX_HELD_BYTES) this.destroy(c);
  }

  private flush(c: Conn): void {
    if (c.from === null) return;
    if (!this.isBlocked(c.from, c.to) && c.heldUp.length > 0) {
      for (const b of c.heldUp) c.upstream.write(b);
      c.heldUp = [];
    }
    if (!this.isBlocked(c.to, c.from) && c.heldDown.length > 0) {
      for (const b of c.heldDown) c.client.write(b);
      c.heldDown = [];
    }
    c.heldBytes = [...c.heldUp, ...c.heldDown].reduce((n, b) => n + b.length, 0);
  }

  private destroy(c: Conn): void {
    if (!this.conns.delete(c)) return;
    c.client.destroy();
    c.upstream.destroy();
  }
}
