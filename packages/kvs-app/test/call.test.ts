import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../src/args.js';
import { CallError, callLines, expectedResponses, parseAddr, requestLine } from '../src/call.js';

describe('parseAddr', () => {
  it('expands :port to 127.0.0.1 and keeps host:port', () => {
    expect(parseAddr(':4000')).toEqual({ host: '127.0.0.1', port: 4000, addr: '127.0.0.1:4000' });
    expect(parseAddr('localhost:1').addr).toBe('localhost:1');
  });
  it('rejects what is not host:port', () => {
    for (const bad of ['4000', 'host:', ':0', ':70000', 'a:b']) expect(() => parseAddr(bad)).toThrow(/host:port/);
  });
  it('parses as the server does: an IPv6 host in brackets, no bare colons in a host', () => {
    expect(parseAddr('[::1]:4000')).toEqual({ host: '::1', port: 4000, addr: '[::1]:4000' });
    for (const bad of ['a:b:4000', '::1:4000', '[::1]4000']) expect(() => parseAddr(bad)).toThrow(/host:port/);
  });
});

describe('requestLine / expectedResponses', () => {
  it('builds jlot-style requests', () => {
    expect(requestLine('CreateCluster')).toBe('{"jsonrpc":"2.0","id":0,"method":"CreateCluster"}');
    expect(JSON.parse(requestLine('AddServer', { addr: 'x:1' }, 7))).toEqual({
      jsonrpc: '2.0',
      id: 7,
      method: 'AddServer',
      params: { addr: 'x:1' },
    });
  });
  it('counts one answer per request or batch and none for notifications', () => {
    expect(expectedResponses('{"jsonrpc":"2.0","id":1,"method":"X"}')).toBe(1);
    expect(expectedResponses('{"jsonrpc":"2.0","method":"X"}')).toBe(0);
    expect(expectedResponses('[{"jsonrpc":"2.0","method":"X"},{"jsonrpc":"2.0","id":2,"method":"Y"}]')).toBe(1);
    expect(expectedResponses('[{"jsonrpc":"2.0","method":"X"}]')).toBe(0);
    expect(expectedResponses('[]')).toBe(1);
    expect(expectedResponses('not json')).toBe(1);
    expect(expectedResponses('   ')).toBe(0);
  });
});

describe('parseArgs', () => {
  const spec = { data: 'string', exit: 'boolean' } as const;
  it('parses positionals, valued and boolean flags', () => {
    expect(parseArgs(['a', '--data', 'd', '--exit', 'b'], spec)).toEqual({
      positionals: ['a', 'b'],
      flags: { data: 'd', exit: true },
    });
    expect(parseArgs(['--data=x', '-h'], spec).flags).toEqual({ data: 'x', help: true });
  });
  it('reports unknown flags and missing values as usage errors', () => {
    expect(() => parseArgs(['--nope'], spec)).toThrow(UsageError);
    expect(() => parseArgs(['--data'], spec)).toThrow(/needs a value/);
    expect(() => parseArgs(['--exit=1'], spec)).toThrow(/takes no value/);
  });
});

describe('callLines', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  /** A fake line server: answers each request line with its id echoed, after `delayMs`. */
  function fakeServer(delayMs: number, answer = true): Promise<string> {
    return new Promise((resolve) => {
      server = createServer((sock) => {
        let buf = '';
        sock.setEncoding('utf8');
        sock.on('data', (d: string) => {
          buf += d;
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const req = JSON.parse(line) as { id?: number };
            if (answer && req.id !== undefined) {
              setTimeout(() => sock.write(`{"jsonrpc":"2.0","id":${req.id},"result":${req.id}}\n`), delayMs);
            }
            nl = buf.indexOf('\n');
          }
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const a = server?.address();
        resolve(`127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`);
      });
    });
  }

  it('pipelines every line and waits for every expected answer', async () => {
    const addr = await fakeServer(5);
    const lines = Array.from({ length: 50 }, (_, i) => requestLine('Echo', undefined, i));
    lines.push('{"jsonrpc":"2.0","method":"Notify"}');
    const got: string[] = [];
    const r = await callLines(addr, lines, (l) => got.push(l));
    expect(r.responses).toBe(50);
    expect(got.map((l) => (JSON.parse(l) as { id: number }).id).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it('fails with code connect when nothing listens', async () => {
    const addr = await fakeServer(0);
    await new Promise<void>((r) => server?.close(() => r()));
    server = undefined;
    await expect(callLines(addr, [requestLine('X')], () => {})).rejects.toMatchObject({ code: 'connect' });
  });

  it('fails with code timeout when the server never answers', async () => {
    const addr = await fakeServer(0, false);
    const e = await callLines(addr, [requestLine('X')], () => {}, 200).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CallError);
    expect((e as CallError).code).toBe('timeout');
  });
});
