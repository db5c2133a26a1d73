// Issue 15: safe by default. A server reachable from other hosts refuses to start without a secret (or an explicit
// `insecure`), and says why; the loopback demo needs neither. No test here binds a non-loopback address: the
// refusal comes before the port is opened.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createServer,
  ErrorCode,
  exposureProblem,
  isLoopbackHost,
  openClientPortWarning,
  RpcError,
} from '../src/index.js';
import { KvMachine } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'raft-exposure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('isLoopbackHost', () => {
  it('knows loopback from everything else', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.org', '127.0.0.256', '128.0.0.1']) {
      expect(isLoopbackHost(h)).toBe(false);
    }
  });
});

describe('exposureProblem', () => {
  it('refuses an exposed address or listen address without a secret, unless insecure', () => {
    expect(exposureProblem({ address: '127.0.0.1:4000' })).toBeNull();
    expect(exposureProblem({ address: '10.0.0.1:4000' })).toMatch(/10\.0\.0\.1:4000 can be reached from other hosts/);
    expect(exposureProblem({ address: '127.0.0.1:4000', listen: '0.0.0.0:4000' })).toMatch(/0\.0\.0\.0:4000/);
    expect(exposureProblem({ address: '10.0.0.1:4000', secret: 's' })).toBeNull();
    expect(exposureProblem({ address: '10.0.0.1:4000', secret: '' })).not.toBeNull();
    expect(exposureProblem({ address: '10.0.0.1:4000', insecure: true })).toBeNull();
    expect(exposureProblem({ address: '10.0.0.1:4000', tls: true })).toBeNull();
  });

  it('warns about a client port other hosts can reach without a credentials file', () => {
    expect(openClientPortWarning({ address: '127.0.0.1:4000' })).toBeNull();
    expect(openClientPortWarning({ address: '10.0.0.1:4000' })).toMatch(/ANY client .*--credentials-file/);
    expect(openClientPortWarning({ address: '127.0.0.1:4000', listen: '0.0.0.0:4000' })).toMatch(/0\.0\.0\.0:4000/);
    expect(
      openClientPortWarning({ address: '10.0.0.1:4000', credentialsFile: '/etc/raft/credentials.json' }),
    ).toBeNull();
  });

  it('start() refuses before opening anything, with the reason', async () => {
    const server = createServer({
      address: '127.0.0.1:0',
      listen: '0.0.0.0:0',
      dataDir: join(dir, 'a'),
      machine: new KvMachine(),
    });
    const err = await server.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(ErrorCode.INVALID_PARAMS);
    expect((err as RpcError).message).toMatch(/refusing to start: 0\.0\.0\.0:0 can be reached/);
    expect(server.isRunning).toBe(false);
  });
});
