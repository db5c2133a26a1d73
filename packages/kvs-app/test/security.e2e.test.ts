/**
 * Issue 15 through the CLI: `raft-kvs serve` with TLS and a credentials file made with `raft-kvs token`; `raft-kvs
 * call` must use TLS (--tls-ca) and a token (--token-file or $RAFT_TOKEN), and may only do what the token's role
 * allows. Certificates come from openssl at test time (no key is checked in).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, waitFor } from '@raft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type TestPki } from '../../node-tcp/test/certs.js';
import { runCli, type ServeProcess, startServe } from './cli-process.js';

const eventually = <T>(check: () => Promise<T>, timeoutMs = 20_000) =>
  waitFor(check, timeoutMs, 'condition', { intervalMs: 100, retryErrors: true });

let pki: TestPki;
let server: ServeProcess;
let addr: string;
const files: Record<string, string> = {};

async function token(name: string, role: string): Promise<object> {
  files[name] = join(pki.dir, `${name}.token`);
  const r = await runCli(['token', name, role, '--out', files[name]]);
  expect(r.code).toBe(0);
  const entry = JSON.parse(r.stdout) as { sha256: string };
  // The token is in the file only, never printed.
  expect(r.stdout).not.toContain(readFileSync(files[name], 'utf8').trim());
  return entry;
}

beforeAll(async () => {
  pki = makePki();
  const node = pki.issue('127.0.0.1', ['IP:127.0.0.1']);
  for (const [k, v] of Object.entries({ ca: pki.ca, cert: node.cert, key: node.key })) {
    files[k] = join(pki.dir, `${k}.pem`);
    writeFileSync(files[k], v);
  }
  const [admin, reader] = await Promise.all([token('admin', 'admin'), token('reader', 'read')]);
  files.credentials = join(pki.dir, 'credentials.json');
  writeFileSync(files.credentials, JSON.stringify({ tokens: [admin, reader] }));
  addr = `127.0.0.1:${(await freePorts(1))[0]}`;
  server = await startServe(addr, [
    '--data',
    join(pki.dir, 'data'),
    ...['--tls-ca', files.ca, '--tls-cert', files.cert, '--tls-key', files.key],
    ...['--credentials-file', files.credentials],
  ]);
}, 60_000);
afterAll(async () => {
  await server?.stop('SIGKILL');
  pki?.cleanup();
});

const tlsFlags = () => ['--tls-ca', files.ca];
const errorCode = (stdout: string) => (JSON.parse(stdout) as { error?: { code: number } }).error?.code;

describe('raft-kvs with TLS and tokens', () => {
  it('refuses plain text, and an anonymous TLS client (UNAUTHENTICATED)', async () => {
    const plain = await runCli(['call', addr, 'GetServerState']);
    expect(plain.code).toBe(1);
    expect(errorCode(plain.stdout)).toBe(-32014);
    expect(plain.stdout).toMatch(/TLS/);
    const anon = await runCli(['call', addr, 'Apply', '{"kind":"Command","input":{"Put":["k",1]}}', ...tlsFlags()]);
    expect(anon.code).toBe(1);
    expect(errorCode(anon.stdout)).toBe(-32014);
  });

  it('an admin token creates the cluster and writes; a read token reads but cannot write (FORBIDDEN)', async () => {
    const admin = ['--token-file', files.admin, ...tlsFlags()];
    expect((await runCli(['call', addr, 'CreateCluster', ...admin])).code).toBe(0);
    await eventually(
      async () =>
        (await runCli(['call', addr, 'Apply', '{"kind":"Command","input":{"Put":["k",1]}}', ...admin])).code === 0,
    );
    const env = { RAFT_TOKEN: readFileSync(files.reader, 'utf8').trim() };
    const read = await runCli(['call', addr, 'Apply', '{"kind":"Query","input":{"Get":"k"}}', ...tlsFlags()], { env });
    expect(read.code).toBe(0);
    expect(JSON.parse(read.stdout).result).toBe(1);
    const write = await runCli(['call', addr, 'Apply', '{"kind":"Command","input":{"Put":["k",2]}}', ...tlsFlags()], {
      env,
    });
    expect(write.code).toBe(1);
    expect(errorCode(write.stdout)).toBe(-32015);
  });

  it('refuses a wrong token, and a token on the command line', async () => {
    const wrong = join(pki.dir, 'wrong.token');
    writeFileSync(wrong, 'not-a-token\n');
    const r = await runCli(['call', addr, 'GetServerState', '--token-file', wrong, ...tlsFlags()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused the token/);
    const argv = await runCli(['call', addr, 'GetServerState', '--token', 'x', ...tlsFlags()]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/--token-file PATH or the RAFT_TOKEN/);
  });

  it('SIGHUP re-reads the credentials file', async () => {
    const later = (await token('later', 'read')) as object;
    const doc = JSON.parse(readFileSync(files.credentials, 'utf8')) as { tokens: object[] };
    writeFileSync(files.credentials, JSON.stringify({ tokens: [...doc.tokens, later] }));
    server.child.kill('SIGHUP');
    await eventually(async () => server.output().includes('SIGHUP: reloaded') || undefined, 10_000);
    const r = await runCli(['call', addr, 'GetServerState', '--token-file', files.later, ...tlsFlags()]);
    expect(r.code).toBe(0);
  });
});
