import { describe, expect, it } from 'vitest';
import {
  encodeApply,
  encodeEtcd,
  errorKind,
  formatTable,
  LoadgenError,
  parseEndpoint,
  parseResponse,
  percentile,
  summarize,
  Workload,
} from '../src/index.js';

describe('percentiles', () => {
  it('uses the nearest rank', () => {
    const sorted = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(500);
    expect(percentile(sorted, 0.9)).toBe(900);
    expect(percentile(sorted, 0.99)).toBe(990);
    expect(percentile(sorted, 0.999)).toBe(999);
    expect(percentile(sorted, 1)).toBe(1000);
    expect(percentile(new Float64Array(0), 0.5)).toBe(0);
    expect(percentile(Float64Array.of(7), 0.999)).toBe(7);
  });

  it('summarises unsorted samples', () => {
    const s = summarize(Float64Array.of(5, 1, 4, 2, 3));
    expect(s).toMatchObject({ min: 1, max: 5, p50: 3, mean: 3, p99: 5 });
  });
});

describe('workload', () => {
  it('is deterministic per seed and shaped like raftpico benchmark requests', () => {
    const a = new Workload({ kind: 'command', seed: 42 });
    const b = new Workload({ kind: 'command', seed: 42 });
    for (let i = 0; i < 100; i++) {
      const op = a.next();
      expect(op).toEqual(b.next());
      if (op.type !== 'put') throw new Error('command must put');
      expect(op.key).toMatch(/^[a-zA-Z]{3}$/);
      expect(Number.isInteger(op.value) && (op.value as number) >= 0 && (op.value as number) < 2 ** 32).toBe(true);
    }
    expect(new Workload({ kind: 'command', seed: 43 }).next()).not.toEqual(
      new Workload({ kind: 'command', seed: 42 }).next(),
    );
  });

  it('makes values of exactly valueSize bytes', () => {
    for (const size of [1, 5, 1024, 65536]) {
      const op = new Workload({ kind: 'command', seed: 1, valueSize: size }).next();
      expect(op.type === 'put' && typeof op.value === 'string' && Buffer.byteLength(op.value)).toBe(size);
    }
  });

  it('mixes puts and linearizable gets about half and half; local reads are local', () => {
    const w = new Workload({ kind: 'mix', seed: 7 });
    let puts = 0;
    for (let i = 0; i < 10_000; i++) if (w.next().type === 'put') puts++;
    expect(puts).toBeGreaterThan(4700);
    expect(puts).toBeLessThan(5300);
    expect(new Workload({ kind: 'query', seed: 1 }).next()).toMatchObject({ type: 'get', consistency: 'linearizable' });
    expect(new Workload({ kind: 'local', seed: 1 }).next()).toMatchObject({ type: 'get', consistency: 'local' });
  });

  it('rejects bad options with a coded error', () => {
    expect(() => new Workload({ kind: 'nope' as 'mix', seed: 1 })).toThrow(LoadgenError);
    expect(() => new Workload({ kind: 'mix', seed: 1, valueSize: -1 })).toThrow(/valueSize/);
  });
});

describe('encoders', () => {
  it('encodes Apply requests in the tuple form, one line each', () => {
    const put = encodeApply(3, { type: 'put', key: 'abc', value: 12 });
    expect(put.endsWith('\n')).toBe(true);
    expect(JSON.parse(put)).toEqual({
      jsonrpc: '2.0',
      id: 3,
      method: 'Apply',
      params: { kind: 'Command', input: { Put: ['abc', 12] } },
    });
    expect(JSON.parse(encodeApply(4, { type: 'get', key: 'x"y', consistency: 'linearizable' })).params).toEqual({
      kind: 'Query',
      input: { Get: 'x"y' },
    });
    expect(JSON.parse(encodeApply(5, { type: 'get', key: 'abc', consistency: 'local' })).params.kind).toBe(
      'LocalQuery',
    );
  });

  it('encodes etcd gateway bodies with base64 keys and values', () => {
    const put = encodeEtcd({ type: 'put', key: 'abc', value: 12 });
    expect(put.path).toBe('/v3/kv/put');
    expect(JSON.parse(put.body)).toEqual({ key: 'YWJj', value: 'MTI=' });
    expect(JSON.parse(encodeEtcd({ type: 'get', key: 'abc', consistency: 'linearizable' }).body)).toEqual({
      key: 'YWJj',
    });
    const local = encodeEtcd({ type: 'get', key: 'abc', consistency: 'local' });
    expect(local.path).toBe('/v3/kv/range');
    expect(JSON.parse(local.body)).toEqual({ key: 'YWJj', serializable: true });
  });
});

describe('HTTP response parser', () => {
  it('parses Content-Length responses, waiting for the whole body', () => {
    const full = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhelloHTTP/1.1');
    const r = parseResponse(full);
    expect(r).not.toBeNull();
    if (r === null || r === 'bad') throw new Error('expected a response');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello');
    expect(r.length).toBe(full.length - 'HTTP/1.1'.length);
    expect(parseResponse(full.subarray(0, full.length - 'HTTP/1.1'.length - 1))).toBeNull();
  });

  it('parses chunked responses and Connection: close', () => {
    const raw =
      'HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n';
    const r = parseResponse(Buffer.from(raw));
    if (r === null || r === 'bad') throw new Error('expected a response');
    expect(r).toMatchObject({ status: 503, close: true, length: raw.length });
    expect(r.body.toString()).toBe('abcde');
    expect(parseResponse(Buffer.from(raw.slice(0, -2)))).toBeNull();
    expect(parseResponse(Buffer.from('SMTP nope\r\n\r\n'))).toBe('bad');
  });
});

describe('helpers', () => {
  it('parses jlot-style endpoints', () => {
    expect(parseEndpoint(':4000')).toEqual({ host: '127.0.0.1', port: 4000 });
    expect(parseEndpoint('localhost:12')).toEqual({ host: 'localhost', port: 12 });
    expect(parseEndpoint('http://127.0.0.1:2379')).toEqual({ host: '127.0.0.1', port: 2379 });
    expect(() => parseEndpoint('host:x')).toThrow(LoadgenError);
    expect(() => parseEndpoint(':70000')).toThrow(/bad server address/);
    expect(parseEndpoint('4000')).toEqual({ host: '127.0.0.1', port: 4000 });
    expect(parseEndpoint('[::1]:2379')).toEqual({ host: '::1', port: 2379 });
    // As the servers parse their ids: a host never holds a bare colon (IPv6 goes in brackets), port 0 is no server.
    for (const bad of ['a:b:4000', '::1:4000', ':0', '']) expect(() => parseEndpoint(bad)).toThrow(LoadgenError);
  });

  it('groups error kinds regardless of numbers and prints them under the table', () => {
    expect(errorKind('rpc error -32000: NotLeader (request 12)')).toBe(
      errorKind('rpc error -32000: NotLeader (request 9)'),
    );
    const table = formatTable([
      {
        target: 'jsonrpc',
        workload: 'command',
        servers: [':1'],
        count: 10,
        concurrency: 2,
        valueSize: 0,
        seed: 1,
        completed: 10,
        ok: 8,
        errors: 2,
        errorKinds: { timeout: 2 },
        elapsedSec: 1,
        throughput: 8,
        latencyMs: { min: 1, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1 },
        clientCpuSec: 0.1,
        clientCpuMicrosPerOp: 12500,
        truncated: false,
      },
    ]);
    expect(table).toContain('2 x timeout');
    expect(table.split('\n')[0]).toMatch(/p99\.9 ms\s+max ms\s+client µs\/op\s+errors$/);
    expect(table.split('\n')[2]).toMatch(/\s12500\.0\s+2$/);
    expect(table.split('\n')[2]).toMatch(/^jsonrpc\s+command\s+2\s+10\s+8\s/);
  });
});
