/** The etcd gRPC transport: hand-written protobuf and gRPC framing, and the transport against an in-process h2c server. */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResponse,
  type EtcdGrpcOptions,
  EtcdGrpcTransport,
  encodePutFrame,
  encodeRangeFrame,
  encodeRangeResponseFrame,
  HpackDecoder,
  huffmanEncode,
  makeTransport,
  type Op,
  ProtobufError,
  runLoad,
  unframe,
} from '../src/index.js';
import {
  type FakeEtcdGrpc,
  fakeEtcdGrpc,
  type GrpcCall,
  type GrpcVerdict,
  headerBlocks,
  type RecordingProxy,
  recordingProxy as startRecordingProxy,
} from './fakes.js';

const hex = (b: Buffer) => b.toString('hex');
const message = (frame: Buffer): Buffer => {
  const m = unframe(frame);
  if (typeof m === 'string') throw new Error(m);
  return m;
};

/** Runs a fast-check property with a known seed (LOADGEN_SEED replays one); a failure names the seed and the replay. */
function property<T>(name: string, arb: fc.Arbitrary<T>, check: (value: T) => void): void {
  const seed = process.env.LOADGEN_SEED
    ? Number(process.env.LOADGEN_SEED)
    : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
  try {
    fc.assert(fc.property(arb, check), { seed, numRuns: 300 });
  } catch (e) {
    const replay = `LOADGEN_SEED=${seed} pnpm --filter @raft/loadgen exec vitest run test/grpc.test.ts -t ${JSON.stringify(name)}`;
    throw new Error(`property failed with seed ${seed}\nreplay: ${replay}\n${(e as Error).message}`);
  }
}

describe('etcd protobuf and gRPC framing', () => {
  it('encodes PutRequest and RangeRequest to the exact bytes protoc would', () => {
    // 0x0a = field 1 (key), length-delimited; 0x12 = field 2 (value); 0x38 01 = field 7 (serializable) = true.
    expect(hex(encodePutFrame('foo', 'bar'))).toBe('000000000a' + '0a03666f6f' + '1203626172');
    expect(hex(encodeRangeFrame('foo', false))).toBe('0000000005' + '0a03666f6f');
    expect(hex(encodeRangeFrame('foo', true))).toBe('0000000007' + '0a03666f6f' + '3801');
    // A 200-byte value needs a two-byte varint length (200 = 0xc8 0x01): message 3 + 3 + 200 = 206 = 0xce bytes.
    const long = encodePutFrame('k', 'v'.repeat(200));
    expect(hex(long.subarray(0, 12))).toBe('00000000ce' + '0a016b' + '12c801' + '76');
    expect(long.length).toBe(5 + 206);
    // Non-ASCII text is sent as UTF-8.
    expect(hex(encodePutFrame('é', Buffer.from([0, 255])))).toBe('0000000008' + '0a02c3a9' + '120200ff');
  });

  it('decodes a RangeResponse captured from etcd 3.4.23, skipping the header and the other KeyValue fields', () => {
    // Range("key", serializable) after Put("key", "value") on a single etcd 3.4.23 member: header { cluster_id,
    // member_id, revision 1266, raft_term 2 }, kvs [{ key, create_revision, mod_revision, version 1, value }], count 1.
    const captured = Buffer.from(
      '00000000340a1a08e09ea8f4ecf4e2a16c10fe8ac58fb6f8fbe3ba0118f209200212140a036b657910f20918f20920012a0576616c75652001',
      'hex',
    );
    const r = decodeRangeResponse(message(captured));
    expect(r.count).toBe(1);
    expect(r.kvs.map((kv) => [kv.key.toString(), kv.value.toString()])).toEqual([['key', 'value']]);
    // etcd's PutResponse is just a header; as a RangeResponse it has no kvs and count 0.
    const put = Buffer.from('000000001c0a1a08e09ea8f4ecf4e2a16c10fe8ac58fb6f8fbe3ba0118f2092002', 'hex');
    expect(decodeRangeResponse(message(put))).toEqual({ kvs: [], count: 0 });
  });

  it('writes RangeResponse bytes by hand: field 2 KeyValue { key = 1, value = 5 }, field 4 count', () => {
    expect(hex(encodeRangeResponseFrame({ kvs: [{ key: 'a', value: 'b' }], count: 1 }))).toBe(
      '000000000a' + '1206' + '0a0161' + '2a0162' + '2001',
    );
    expect(hex(encodeRangeResponseFrame({ kvs: [], count: 0 }))).toBe('0000000000');
  });

  it('round-trips keys and values of any bytes and length through encode and decode', () => {
    const bytes = fc.uint8Array({ maxLength: 70_000 }).map((a) => Buffer.from(a));
    property(
      'round-trips',
      fc.record({ key: bytes, value: bytes, serializable: fc.boolean(), count: fc.nat() }),
      ({ key, value, serializable, count }) => {
        const put = decodePutRequest(message(encodePutFrame(key, value)));
        expect(put.key.equals(key) && put.value.equals(value)).toBe(true);
        const range = decodeRangeRequest(message(encodeRangeFrame(key, serializable)));
        expect(range.key.equals(key)).toBe(true);
        expect(range.serializable).toBe(serializable);
        const res = decodeRangeResponse(message(encodeRangeResponseFrame({ kvs: [{ key, value }], count })));
        expect(res.count).toBe(count);
        expect(res.kvs.length).toBe(1);
        expect(res.kvs[0].key.equals(key) && res.kvs[0].value.equals(value)).toBe(true);
      },
    );
  });

  it('rejects malformed protobuf and malformed gRPC bodies with a reason', () => {
    const bad: [string, string][] = [
      ['0a05616263', 'length 5 runs past'], // field 1 claims 5 bytes, 3 follow
      ['08ff', 'truncated varint'],
      ['0b', 'unsupported wire type 3'], // a start-group tag
      ['0001', 'field number 0'],
      ['ffffffffffffffffffff01', 'longer than 10 bytes'],
    ];
    for (const [h, why] of bad) {
      expect(() => decodeRangeResponse(Buffer.from(h, 'hex')), h).toThrow(ProtobufError);
      expect(() => decodeRangeResponse(Buffer.from(h, 'hex')), h).toThrow(why);
    }
    expect(unframe(Buffer.from('0000', 'hex'))).toMatch(/shorter than a message prefix/);
    expect(unframe(Buffer.from('0100000000', 'hex'))).toMatch(/compressed/);
    expect(unframe(Buffer.from('000000000361', 'hex'))).toMatch(/says 3 bytes, body carries 1/);
    expect(unframe(Buffer.from('0000000001610a', 'hex'))).toMatch(/says 1 bytes, body carries 2/);
  });
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function recordingProxy(port: number): Promise<RecordingProxy> {
  const p = await startRecordingProxy(port);
  cleanups.push(() => p.close());
  return p;
}
async function server(verdict?: (call: GrpcCall, index: number) => GrpcVerdict): Promise<FakeEtcdGrpc> {
  const s = await fakeEtcdGrpc({ verdict });
  cleanups.push(() => s.close());
  return s;
}

describe('etcd gRPC transport', () => {
  it('sends framed Put and Range calls with gRPC headers, spread over a bounded set of connections', async () => {
    const a = await server();
    const b = await server();
    const report = await runLoad({
      target: 'etcd-grpc',
      servers: [`:${a.port}`, `:${b.port}`],
      workload: 'mix',
      count: 600,
      warmup: 40,
      concurrency: 40,
      grpcConnections: 6,
      seed: 5,
      progress: 'off',
    });
    expect(report).toMatchObject({ target: 'etcd-grpc', completed: 600, ok: 600, errors: 0 });
    expect(report.clientCpuMicrosPerOp).toBeGreaterThan(0);
    expect(a.calls.length + b.calls.length).toBe(640);
    // 6 connections, 3 per server; every connection carried calls.
    expect([a.sessions(), b.sessions()]).toEqual([3, 3]);
    expect(new Set(a.calls.map((c) => c.session))).toEqual(new Set([0, 1, 2]));
    // Slots alternate between the servers, so each gets half of the first round.
    expect(Math.abs(a.calls.length - b.calls.length)).toBeLessThan(60);
    for (const c of [...a.calls, ...b.calls]) {
      expect(c.headers[':method']).toBe('POST');
      expect(c.headers['content-type']).toBe('application/grpc');
      expect(c.headers.te).toBe('trailers');
      expect(['/etcdserverpb.KV/Put', '/etcdserverpb.KV/Range']).toContain(c.path);
      const m = message(c.body);
      if (c.path.endsWith('/Put')) {
        const put = decodePutRequest(m);
        expect(put.key.toString()).toMatch(/^[a-zA-Z]{3}$/);
        expect(put.value.toString()).toMatch(/^\d+$/);
      } else {
        expect(decodeRangeRequest(m)).toMatchObject({ serializable: false });
      }
    }
    expect(a.calls.some((c) => c.path.endsWith('/Put')) && a.calls.some((c) => c.path.endsWith('/Range'))).toBe(true);
  });

  it('sends local reads as serializable ranges and string values byte for byte', async () => {
    const s = await server();
    const local = await runLoad({
      target: 'etcd-grpc',
      servers: [`:${s.port}`],
      workload: 'local',
      count: 50,
      concurrency: 5,
      progress: 'off',
    });
    expect(local.errors).toBe(0);
    expect(s.calls.every((c) => decodeRangeRequest(message(c.body)).serializable)).toBe(true);
    s.calls.length = 0;
    await runLoad({
      target: 'etcd-grpc',
      servers: [`:${s.port}`],
      workload: 'command',
      count: 10,
      concurrency: 2,
      valueSize: 65536,
      progress: 'off',
    });
    expect(s.calls.map((c) => decodePutRequest(message(c.body)).value.length)).toEqual(Array(10).fill(65536));
  });

  it('counts grpc-status errors (trailers and trailers-only), non-200 answers and badly framed answers', async () => {
    const s = await server((_call, i) =>
      i % 10 === 1
        ? { kind: 'status', code: 8, message: 'etcdserver: too many requests', trailersOnly: false }
        : i % 10 === 2
          ? { kind: 'status', code: 14, message: 'etcdserver: leader changed', trailersOnly: true }
          : i % 10 === 3
            ? { kind: 'http', status: 503 }
            : i % 10 === 4
              ? { kind: 'body', body: Buffer.from('000000000a0a01', 'hex') } // grpc-status 0, truncated message
              : { kind: 'ok' },
    );
    const report = await runLoad({
      target: 'etcd-grpc',
      servers: [`:${s.port}`],
      workload: 'command',
      count: 100,
      concurrency: 1,
      progress: 'off',
    });
    expect(report).toMatchObject({ completed: 100, ok: 60, errors: 40 });
    expect(report.errorKinds).toEqual({
      'grpc-status N: etcdserver: too many requests': 10,
      'grpc-status N: etcdserver: leader changed': 10,
      'http N without grpc-status': 10,
      'gRPC message prefix says N bytes, body carries N': 10,
    });
  });

  it('fails the requests in flight when a connection drops mid-stream, then reconnects; nothing hangs', async () => {
    let dropped = false;
    // The first 8 calls are held unanswered; once all 8 arrived the server drops every connection.
    const s: FakeEtcdGrpc = await server((_call, i) => {
      if (i < 8) {
        if (i === 7) {
          dropped = true;
          setTimeout(() => s.dropConnections(), 20);
        }
        return { kind: 'hold' };
      }
      return { kind: 'ok' };
    });
    const t0 = performance.now();
    const report = await runLoad({
      target: 'etcd-grpc',
      servers: [`:${s.port}`],
      workload: 'command',
      count: 100,
      concurrency: 8,
      // One connection: with two, requests issued right after the first one dropped could go to the second one
      // before it noticed its own drop, and fail too.
      grpcConnections: 1,
      requestTimeoutMs: 20_000,
      progress: 'off',
    });
    expect(dropped).toBe(true);
    expect(performance.now() - t0).toBeLessThan(10_000); // far below the request timeout: failed, not timed out
    expect(report).toMatchObject({ completed: 100, errors: 8, ok: 92 });
    const kinds = Object.keys(report.errorKinds);
    expect(kinds).toHaveLength(1);
    expect(kinds[0]).toMatch(/^connection lost before grpc-status \(/);
    expect(s.sessions()).toBe(2); // the later requests went over one new connection
  });

  it('rejects with CONNECT when no server listens, and `etcd` is an alias of etcd-grpc', async () => {
    const s = await server();
    const port = s.port;
    await s.close();
    cleanups.length = 0;
    await expect(
      runLoad({ target: 'etcd-grpc', servers: [`:${port}`], workload: 'command', count: 1, concurrency: 1 }),
    ).rejects.toMatchObject({ code: 'CONNECT' });
    const t = makeTransport({ target: 'etcd', servers: [':2379'], workload: 'command', count: 1, concurrency: 1 });
    expect(t).toBeInstanceOf(EtcdGrpcTransport);
    expect(t.name).toBe('etcd-grpc');
    const gw = makeTransport({
      target: 'etcd-gateway',
      servers: [':2379'],
      workload: 'command',
      count: 1,
      concurrency: 1,
    });
    expect(gw.name).toBe('etcd-gateway');
  });

  it('bounds the connections: at most C, rounded up to a multiple of the servers', () => {
    const servers = [
      { host: '127.0.0.1', port: 1 },
      { host: '127.0.0.1', port: 2 },
      { host: '127.0.0.1', port: 3 },
    ];
    expect(new EtcdGrpcTransport({ servers, slots: 1000 }).connectionCount).toBe(102);
    expect(new EtcdGrpcTransport({ servers, slots: 1000, connections: 3 }).connectionCount).toBe(3);
    expect(new EtcdGrpcTransport({ servers, slots: 64 }).connectionCount).toBe(66);
    expect(new EtcdGrpcTransport({ servers, slots: 1 }).connectionCount).toBe(3);
    expect(() => new EtcdGrpcTransport({ servers, slots: 10, connections: 0 })).toThrow(/positive integer/);
  });
});

/** One call through `t` from `slot`, resolved with what its completion got. */
function call(t: EtcdGrpcTransport, slot: number, op: Op): Promise<string | null> {
  return new Promise((resolve) => t.send(slot, 0, op, resolve));
}

/** Polls `check` every 10 ms for at most `ms`. */
async function until(check: () => boolean, ms = 5000): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited >= ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A transport to `servers`, closed after the test. */
async function transport(ports: number[], options: Partial<EtcdGrpcOptions> = {}): Promise<EtcdGrpcTransport> {
  const t = new EtcdGrpcTransport({
    servers: ports.map((port) => ({ host: '127.0.0.1', port })),
    slots: 1,
    connections: 1,
    ...options,
  });
  cleanups.push(async () => t.close());
  await t.open();
  return t;
}

/** A string of `n` characters that differs at every position mod 251, so misplaced chunks show. */
const pattern = (n: number, salt: number): string =>
  Buffer.from(Array.from({ length: n }, (_, i) => 97 + (((i + salt) % 251) % 26))).toString('latin1');

describe('etcd gRPC transport: HTTP/2 by hand against node:http2', () => {
  it('sends 64 KiB and 1 MiB bodies within the server flow-control windows, intact', async () => {
    // A 1000-byte initial stream window and 16 KiB frames: every body needs many DATA frames and WINDOW_UPDATEs.
    for (const settings of [{}, { initialWindowSize: 1000 }, { initialWindowSize: 1 << 20, maxFrameSize: 65_536 }]) {
      const s = await fakeEtcdGrpc({ settings });
      cleanups.push(() => s.close());
      const t = await transport([s.port], { slots: 4 });
      const sizes = [65_536, 1 << 20, 10, 65_536 * 3 + 7];
      const results = await Promise.all(
        sizes.map((n, i) => call(t, i, { type: 'put', key: `k${i}`, value: pattern(n, i) })),
      );
      expect(results, JSON.stringify(settings)).toEqual([null, null, null, null]);
      const got = new Map(s.calls.map((c) => [decodePutRequest(message(c.body)).key.toString(), c.body]));
      sizes.forEach((n, i) => {
        const value = decodePutRequest(message(got.get(`k${i}`) as Buffer)).value;
        expect(value.length).toBe(n);
        expect(value.equals(Buffer.from(pattern(n, i), 'latin1'))).toBe(true);
      });
      // All four streams on one connection: the connection window was shared and topped up.
      expect(s.sessions()).toBe(1);
    }
  });

  it('receives a 1 MiB response across many DATA frames and socket reads', async () => {
    const big = encodeRangeResponseFrame({ kvs: [{ key: 'k', value: pattern(1 << 20, 3) }], count: 1 });
    const s = await server(() => ({ kind: 'body', body: big }));
    const t = await transport([s.port]);
    for (let i = 0; i < 3; i++)
      expect(await call(t, 0, { type: 'get', key: 'k', consistency: 'linearizable' })).toBe(null);
    // A body one byte short of its prefix's length is still caught after reassembly.
    const short = await server(() => ({ kind: 'body', body: big.subarray(0, big.length - 1) }));
    const t2 = await transport([short.port]);
    expect(await call(t2, 0, { type: 'get', key: 'k', consistency: 'linearizable' })).toMatch(
      /says 1048\d+ bytes, body carries/,
    );
  });

  it('decodes Huffman-coded and dynamic-table-indexed headers and trailers, with eviction', async () => {
    // nghttp2 (behind node:http2) indexes fields into its dynamic table and Huffman-codes strings when shorter.
    // Large random extra headers push entries out of the 4096-octet table, so later blocks refer to fresh ones.
    let n = 0;
    const s = await server((_c, i) =>
      i % 3 === 2
        ? { kind: 'status', code: 9, message: `failed precondition: ${'abcdefgh'[i % 8]}~!`, trailersOnly: i % 2 === 0 }
        : { kind: 'ok', headers: { [`x-pad-${i % 7}`]: pattern(200 + ((i * 397) % 1500), n++) } },
    );
    const proxy = await recordingProxy(s.port);
    const report = await runLoad({
      target: 'etcd-grpc',
      servers: [`:${proxy.port}`],
      workload: 'command',
      count: 300,
      concurrency: 4,
      grpcConnections: 1,
      progress: 'off',
    });
    expect(report).toMatchObject({ completed: 300, errors: 100 });
    expect(Object.keys(report.errorKinds).sort()).toEqual(
      [...'abcdefgh'].map((c) => `grpc-status N: failed precondition: ${c}~!`).sort(),
    );
    // What the server sent really was compressed: check the raw HEADERS blocks the proxy saw.
    const blocks = headerBlocks(proxy.fromServer());
    const huffmanGrpc = huffmanEncode(Buffer.from('application/grpc')).toString('hex');
    expect(blocks.some((b) => b.toString('hex').includes(huffmanGrpc))).toBe(true);
    const d = new HpackDecoder();
    let indexedDynamic = 0;
    for (const b of blocks) {
      const before = d.entries.length;
      d.decode(b);
      // A block of 2 octets carrying :status 200 and content-type can only refer to the dynamic table.
      if (b.length <= 3 && before > 0) indexedDynamic++;
    }
    expect(indexedDynamic).toBeGreaterThan(50);
  });

  it('answers the server PING with an ACK and keeps serving', async () => {
    const s = await server();
    const t = await transport([s.port]);
    expect(await call(t, 0, { type: 'put', key: 'a', value: 1 })).toBe(null);
    const rtts = await Promise.race([
      s.ping(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no PING ACK within 5 s')), 5000)),
    ]);
    expect(rtts).toHaveLength(1);
    expect(await call(t, 0, { type: 'put', key: 'a', value: 2 })).toBe(null);
    expect(s.sessions()).toBe(1);
  });

  it('fails the streams a GOAWAY refuses, finishes the others, and moves new requests to a new connection', async () => {
    const s: FakeEtcdGrpc = await server((_c, i) => (i < 8 ? { kind: 'hold' } : { kind: 'ok' }));
    const proxy = await recordingProxy(s.port);
    const t = await transport([proxy.port], { slots: 8 });
    const first = Array.from({ length: 8 }, (_, i) => call(t, i, { type: 'put', key: 'k', value: i }));
    await until(() => s.held() === 8);
    // The server will process streams 1..7 (the first four) and refuses the rest.
    s.goaway(0, 7);
    s.release((c) => c.streamId <= 7);
    const results = await Promise.all(first);
    expect(results.slice(0, 4)).toEqual([null, null, null, null]);
    for (const r of results.slice(4)) expect(r).toBe('stream refused by GOAWAY NO_ERROR (0)');
    // New requests go over a second connection; the first one is closed once its streams are done.
    expect(await call(t, 0, { type: 'put', key: 'k', value: 9 })).toBe(null);
    expect(s.sessions()).toBe(2);
    await until(() => proxy.liveClients() === 1);
  });

  it('fails a stream the server resets with RST_STREAM, naming the code; the connection lives on', async () => {
    const s = await server((_c, i) => (i === 1 ? { kind: 'reset', code: 7 } : { kind: 'ok' }));
    const t = await transport([s.port]);
    expect(await call(t, 0, { type: 'put', key: 'a', value: 1 })).toBe(null);
    expect(await call(t, 0, { type: 'put', key: 'a', value: 2 })).toBe(
      'stream closed before grpc-status (RST_STREAM REFUSED_STREAM (7))',
    );
    expect(await call(t, 0, { type: 'put', key: 'a', value: 3 })).toBe(null);
    expect(s.sessions()).toBe(1);
  });

  it('opens a new connection when the stream ids run out', async () => {
    const s = await server();
    // Ids 2^31-5, 2^31-3, 2^31-1: three streams, then the connection is used up.
    const proxy = await recordingProxy(s.port);
    const t = await transport([proxy.port], { firstStreamId: 2 ** 31 - 5 });
    for (let i = 0; i < 7; i++) expect(await call(t, 0, { type: 'put', key: 'a', value: i })).toBe(null);
    expect(s.calls.map((c) => [c.session, c.streamId])).toEqual([
      [0, 2 ** 31 - 5],
      [0, 2 ** 31 - 3],
      [0, 2 ** 31 - 1],
      [1, 2 ** 31 - 5],
      [1, 2 ** 31 - 3],
      [1, 2 ** 31 - 1],
      [2, 2 ** 31 - 5],
    ]);
    // The used-up connections were closed.
    await until(() => proxy.liveClients() === 1);
    expect(
      () => new EtcdGrpcTransport({ servers: [{ host: '127.0.0.1', port: 1 }], slots: 1, firstStreamId: 2 }),
    ).toThrow(/odd/);
  });

  it("waits for the server's SETTINGS_MAX_CONCURRENT_STREAMS instead of exceeding it", async () => {
    let open = 0;
    let most = 0;
    const s = await fakeEtcdGrpc({
      settings: { maxConcurrentStreams: 2 },
      verdict: (c) => {
        open++;
        most = Math.max(most, open);
        setTimeout(() => {
          open--;
          s.release((held) => held === c);
        }, 5);
        return { kind: 'hold' };
      },
    });
    cleanups.push(() => s.close());
    const t = await transport([s.port], { slots: 8 });
    // Let the server's SETTINGS arrive before the burst.
    expect(await call(t, 0, { type: 'put', key: 'a', value: 0 })).toBe(null);
    open = 0;
    most = 0;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => call(t, i, { type: 'put', key: 'b', value: i })),
    );
    expect(results).toEqual(Array(8).fill(null));
    expect(most).toBe(2);
  });
});
