// JSON-RPC load over TLS with a client token (issue 15): each connection verifies the server's certificate against
// --tls-ca and authenticates before its first request. The server here is a small TLS JSON-RPC responder; the
// certificates are made by openssl at test time.
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makePki, type TestPki } from '../../../packages/node-tcp/test/certs.js';
import { runLoad } from '../src/index.js';

let pki: TestPki;
let server: Server;
let port = 0;
/** Per connection: the methods in the order they arrived. */
const seen: string[][] = [];

beforeAll(async () => {
  pki = makePki();
  const pair = pki.issue('127.0.0.1', ['IP:127.0.0.1']);
  server = createServer({ ...pair }, (s) => {
    const methods: string[] = [];
    seen.push(methods);
    let authed = false;
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let out = '';
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const req = JSON.parse(buf.slice(0, nl)) as { id: unknown; method: string; params: { token?: string } };
        buf = buf.slice(nl + 1);
        methods.push(req.method);
        if (req.method === 'Authenticate') authed = req.params.token === 'good-token';
        const body = authed ? '"result":null' : '"error":{"code":-32014,"message":"unauthenticated"}';
        out += `{"jsonrpc":"2.0","id":${JSON.stringify(req.id)},${body}}\n`;
      }
      s.write(out);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  pki?.cleanup();
});

it('runs over TLS and authenticates each connection before its first request', async () => {
  const report = await runLoad({
    target: 'jsonrpc',
    servers: [`127.0.0.1:${port}`],
    workload: 'command',
    count: 200,
    concurrency: 10,
    connectionsPerServer: 2,
    progress: 'off',
    tlsCa: pki.ca,
    token: 'good-token',
  });
  expect(report).toMatchObject({ completed: 200, ok: 200, errors: 0 });
  expect(seen.length).toBe(2);
  for (const m of seen) expect(m[0]).toBe('Authenticate');
});

it('a wrong token makes every request fail with UNAUTHENTICATED; an untrusted server is not connected to', async () => {
  const bad = await runLoad({
    target: 'jsonrpc',
    servers: [`127.0.0.1:${port}`],
    workload: 'command',
    count: 20,
    concurrency: 2,
    progress: 'off',
    tlsCa: pki.ca,
    token: 'bad-token',
  });
  expect(bad.errors).toBe(20);
  expect(JSON.stringify(bad)).toContain('unauthenticated');
  const other = makePki('other');
  try {
    await expect(
      runLoad({
        target: 'jsonrpc',
        servers: [`127.0.0.1:${port}`],
        workload: 'command',
        count: 1,
        concurrency: 1,
        progress: 'off',
        tlsCa: other.ca,
      }),
    ).rejects.toMatchObject({ code: 'CONNECT' });
  } finally {
    other.cleanup();
  }
});
