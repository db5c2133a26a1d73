/** The etcd gRPC transport: hand-written protobuf and gRPC framing, and the transport against an in-process h2c server. */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResponse,
  EtcdGrpcTransport,
  encodePutFrame,
  encodeRangeFrame,
  encodeRangeResponseFrame,
  makeTransport,
  ProtobufError,
  runLoad,
  unframe,
} from '../src/index.js';
import { type FakeEtcdGrpc, fakeEtcdGrpc, type GrpcCall, type GrpcVerdict } from './fakes.js';

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
