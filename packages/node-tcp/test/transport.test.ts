import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Encoder, ExtensionCodec } from '@msgpack/msgpack';
import type { Entry, Message } from '@raft/core';
import { type Command, silentLogger } from '@raft/runtime';
import { sleep } from '@raft/testkit';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError } from '../src/frame.js';
import { packEntries } from '../src/packed-entries.js';
import { type PeerLink, PeerTransport, packed } from '../src/transport.js';
import { checkForwardReply, checkForwardRequest, checkMessage, type WireItem } from '../src/wire.js';

type AE = Extract<Message<Command>, { type: 'AppendEntries' }>;

/** Records what the transport writes; `writableLength` is whatever the test says the kernel has not taken yet. */
class FakeSocket extends EventEmitter {
  writableLength = 0;
  readonly frames: Buffer[] = [];
  write(b: Buffer): boolean {
    this.frames.push(b);
    return true;
  }
  destroy(): void {}
}

const PEER = '127.0.0.1:2';

function setup(): { t: PeerTransport; sock: FakeSocket; link: PeerLink; items: () => WireItem[][] } {
  const counters = {
    messagesSent: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    peerConnectionsRejected: 0,
  };
  const t = new PeerTransport({
    id: '127.0.0.1:1',
    clusterName: 'raft',
    secret: undefined,
    maxFrameBytes: 64 * 1024 * 1024,
    maxBufferBytes: 256 * 1024 * 1024,
    backoffMinMs: 50,
    backoffMaxMs: 1000,
    handshakeTimeoutMs: 2000,
    commitNotifyDelayMs: 5,
    lowWaterBytes: 4 * 1024 * 1024,
    softFrameBytes: 1024 * 1024,
    logger: silentLogger,
    counters,
    onMessages: () => undefined,
    onForward: () => undefined,
    onReplies: () => undefined,
    onUnsent: () => undefined,
    onLost: () => undefined,
  });
  // A link that already finished its handshake, on a socket we control.
  const link = (t as unknown as { outLink(to: string): PeerLink }).outLink(PEER);
  const sock = new FakeSocket();
  link.state = 'ready';
  link.socket = sock as unknown as Socket;
  const dec = new FrameDecoder(64 * 1024 * 1024);
  let seen = 0;
  const items = () => {
    const out: WireItem[][] = [];
    for (const f of sock.frames.slice(seen)) for (const p of dec.push(f)) out.push(dec.decode(p) as WireItem[]);
    seen = sock.frames.length;
    return out;
  };
  return { t, sock, link, items };
}

function entry(index: number, bytes: number): Entry<Command> {
  return { term: 1, index, type: 'command', command: { input: JSON.stringify('x'.repeat(bytes)) } };
}

function ae(prev: number, entries: Entry<Command>[], commit: number, seq: number): AE {
  return {
    type: 'AppendEntries',
    term: 1,
    from: '127.0.0.1:1',
    to: PEER,
    prevLogIndex: prev,
    prevLogTerm: prev === 0 ? 0 : 1,
    entries,
    leaderCommit: commit,
    seq,
  };
}

describe('PeerTransport', () => {
  it('holds a commit-only AppendEntries until a later one supersedes it, or sends it after the delay', async () => {
    const { t, items } = setup();
    t.send(ae(0, [entry(1, 10)], 0, 7));
    t.flush();
    expect(items()).toHaveLength(1);
    // Same term and heartbeat round, no entries: it only announces commit 1. Held.
    t.send(ae(1, [], 1, 7));
    t.flush();
    expect(items()).toHaveLength(0);
    // The next AppendEntries carries commit 1 too: the held one is dropped, for good.
    t.send(ae(1, [entry(2, 10)], 1, 7));
    t.flush();
    const f = items();
    expect(f).toHaveLength(1);
    expect(f[0].map((it) => (it[1] as AE).entries.length)).toEqual([1]);
    await sleep(30);
    expect(items()).toHaveLength(0);
    // Nothing follows: it leaves after the delay.
    t.send(ae(2, [], 2, 7));
    t.flush();
    expect(items()).toHaveLength(0);
    await sleep(30);
    const late = items();
    expect(late).toHaveLength(1);
    expect((late[0][0][1] as AE).leaderCommit).toBe(2);
    // A new heartbeat round (higher seq) is never held: reads and leases count its answers.
    t.send(ae(2, [], 2, 8));
    t.flush();
    expect(items()).toHaveLength(1);
    t.close();
  });

  it('queues large AppendEntries while the socket is backed up, cuts them into ~1 MiB frames, lets heartbeats overtake', () => {
    const { t, sock, items } = setup();
    sock.writableLength = 5 * 1024 * 1024; // above the 4 MiB low-water mark
    const entries = Array.from({ length: 40 }, (_, i) => entry(i + 1, 64 * 1024));
    t.send(ae(0, entries, 0, 3));
    t.flush();
    expect(sock.frames).toHaveLength(0);
    // A heartbeat of a new round goes out at once, ahead of the queued entries.
    t.send(ae(0, [], 0, 4));
    t.flush();
    const hb = items();
    expect(hb).toHaveLength(1);
    expect((hb[0][0][1] as AE).entries).toHaveLength(0);
    // The socket drains: the queued entries leave in order, as valid consecutive AppendEntries of about 1 MiB.
    sock.writableLength = 0;
    sock.emit('drain');
    const sizes = sock.frames.slice(1).map((b) => b.length);
    const got = items().flat();
    expect(sizes.length).toBeGreaterThan(1);
    for (const s of sizes) expect(s).toBeLessThan(1.2 * 1024 * 1024);
    let next = 1;
    for (const it of got) {
      const m = it[1] as AE;
      expect(m.prevLogIndex).toBe(next - 1);
      for (const e of m.entries) expect(e.index).toBe(next++);
    }
    expect(next).toBe(41);
    t.close();
  });

  it('resumes a backed-up queue on a new socket after a reconnection', () => {
    const { t, sock, link } = setup();
    sock.writableLength = 5 * 1024 * 1024;
    t.send(ae(0, [entry(1, 64 * 1024)], 0, 3));
    t.flush();
    expect(sock.frames).toHaveLength(0);
    // The connection drops (what the close handler does) and a new one is ready, backed up too at first.
    (t as unknown as { takePending(l: PeerLink): WireItem[] }).takePending(link);
    const sock2 = new FakeSocket();
    link.socket = sock2 as unknown as Socket;
    sock2.writableLength = 5 * 1024 * 1024;
    t.send(ae(0, [entry(1, 64 * 1024)], 0, 4));
    t.flush();
    expect(sock2.frames).toHaveLength(0);
    sock2.writableLength = 0;
    sock2.emit('drain');
    expect(sock2.frames).toHaveLength(1);
    // The old socket's late drain writes nothing anywhere.
    sock.writableLength = 0;
    sock.emit('drain');
    expect(sock.frames).toHaveLength(0);
    t.close();
  });
});

describe('packed entries (peer protocol 2)', () => {
  const mixed: Entry<Command>[] = [
    { term: 2, index: 5, type: 'command', command: { input: '{"op":"put","key":"a","value":1}' } },
    { term: 2, index: 6, type: 'command', command: { input: '"x"', clientId: 'c1', seq: 7 } },
    { term: 2, index: 7, type: 'command', command: { input: '1', clientId: 'c2' } },
    { term: 3, index: 8, type: 'noop' },
    { term: 3, index: 9, type: 'config', config: { voters: ['a:1', 'b:2'], learners: ['c:3'] } },
  ];

  function roundTrip(m: AE): unknown {
    const f = encodeFrame([[0, { ...m, entries: packEntries(m.entries) }]], 1 << 20) as Buffer;
    const d = new FrameDecoder(1 << 20);
    const [payload] = d.push(f);
    return (d.decode(payload) as [number, unknown][])[0][1];
  }

  it('decodes to the same message, every entry kind included, and passes the message check', () => {
    const m = ae(4, mixed, 4, 1);
    const back = roundTrip(m);
    expect(back).toEqual(m);
    expect(checkMessage(back, PEER)).toEqual(m);
  });

  it('encodes the same entries once for the next follower, and again for other entries', () => {
    const a = packEntries(mixed);
    expect(packEntries(mixed.slice())).toBe(a);
    expect(packEntries(mixed.slice(1))).not.toBe(a);
  });

  it('refuses garbled packed entries: a broken layout is a bad payload, bad values a malformed message', () => {
    // Hand-made frames with extension type 1, as a buggy or hostile peer could send them.
    const frame = (data: Uint8Array): Buffer => {
      const marker = { packed: true };
      const ext = new ExtensionCodec();
      ext.register({ type: 1, encode: (x) => (x === marker ? data : null), decode: () => null });
      const payload = new Encoder({ extensionCodec: ext }).encode([[0, { ...ae(4, [], 4, 1), entries: marker }]]);
      const out = Buffer.alloc(4 + payload.length);
      out.writeUInt32BE(payload.length, 0);
      out.set(payload, 4);
      return out;
    };
    const good = Buffer.from(packEntries(mixed.slice(0, 2)).bytes);
    const unknownKind = Buffer.from(good);
    unknownKind[4] = 9;
    const hugeCount = Buffer.from(good);
    hugeCount.writeUInt32LE(0xffffffff, 0);
    const d = new FrameDecoder(1 << 20);
    for (const bad of [
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.of(0)]),
      unknownKind,
      hugeCount,
    ]) {
      const [p] = d.push(frame(bad));
      expect(() => d.decode(p)).toThrow(FrameError);
    }
    // A well-formed layout whose values are wrong: the first index is 0 (it must be prevLogIndex + 1), a term is negative.
    const badIndex = Buffer.from(good);
    badIndex.writeDoubleLE(0, 5);
    const badTerm = Buffer.from(good);
    badTerm.writeDoubleLE(-1, 13);
    for (const wrong of [badIndex, badTerm]) {
      const [p] = d.push(frame(wrong));
      const msg = (d.decode(p) as [number, unknown][])[0][1];
      expect(typeof checkMessage(msg, PEER)).toBe('string');
    }
    const [ok] = d.push(frame(good));
    expect(checkMessage((d.decode(ok) as [number, unknown][])[0][1], PEER)).toEqual(ae(4, mixed.slice(0, 2), 4, 1));
  });

  it('forwarded commands and their answers keep their JSON texts exactly through the frame codec', () => {
    const texts = ['{"Put":["k",1]}', '"é日本😀\\u0000"', '', 'x'.repeat(70_000)];
    for (const text of texts) {
      const items: WireItem[] = [
        [1, [7, { t: 'command', input: text, clientId: 'c', seq: 3 }, 1000, 1]],
        [1, [8, { t: 'addServer', addr: '127.0.0.1:9' }, 1000, 0]],
        [2, [7, 1, text]],
        [2, [9, 0, -32000, 'no leader', { leader: null }]],
      ];
      const f = encodeFrame(packed(items), 1 << 20) as Buffer;
      const d = new FrameDecoder(1 << 20);
      const back = d.decode(d.push(f)[0]) as [number, unknown][];
      expect(checkForwardRequest(back[0][1])).toEqual(items[0][1]);
      expect(checkForwardRequest(back[1][1])).toEqual(items[1][1]);
      expect(checkForwardReply(back[2][1])).toEqual(items[2][1]);
      expect(checkForwardReply(back[3][1])).toEqual(items[3][1]);
    }
  });
});
