import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DashboardError, startDashboardServer } from '../src/server.js';

const dir = mkdtempSync(join(tmpdir(), 'dashboard-server-'));
writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
writeFileSync(join(dir, 'app.js'), 'console.log(1)');
writeFileSync(join(dir, 'secret.txt'), 'not a web asset');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('startDashboardServer', () => {
  it('serves the page, its assets and the default nodes, and nothing else', async () => {
    const d = await startDashboardServer({ webDir: dir, nodes: ['127.0.0.1:7001', '127.0.0.1:7002'] });
    try {
      expect(d.url).toBe(`http://127.0.0.1:${d.port}/?nodes=127.0.0.1%3A7001,127.0.0.1%3A7002`);
      expect(d.playgroundUrl).toContain('mode=playground');
      const index = await fetch(d.url);
      expect(index.status).toBe(200);
      expect(index.headers.get('content-type')).toContain('text/html');
      expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(await index.text()).toContain('<title>t</title>');
      const js = await fetch(`http://127.0.0.1:${d.port}/app.js`);
      expect(js.headers.get('content-type')).toContain('javascript');
      const config = (await (await fetch(`http://127.0.0.1:${d.port}/config.json`)).json()) as { nodes: string[] };
      expect(config.nodes).toEqual(['127.0.0.1:7001', '127.0.0.1:7002']);
      // Files that are not web assets, traversal attempts and other methods are refused.
      expect((await fetch(`http://127.0.0.1:${d.port}/secret.txt`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${d.port}/../package.json`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${d.port}/%2e%2e/package.json`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${d.port}/`, { method: 'POST' })).status).toBe(405);
    } finally {
      await d.close();
    }
  });

  it('puts a token only in the URL fragment (never served), and tls=1 in the query', async () => {
    const d = await startDashboardServer({ webDir: dir, nodes: ['127.0.0.1:7001'], token: 'tok/en', tls: true });
    try {
      expect(d.url).toBe(`http://127.0.0.1:${d.port}/?nodes=127.0.0.1%3A7001&tls=1#token=tok%2Fen`);
      const config = await (await fetch(`http://127.0.0.1:${d.port}/config.json`)).text();
      expect(config).not.toContain('tok');
    } finally {
      await d.close();
    }
  });

  it('fails with NOT_BUILT when the page was not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'dashboard-empty-'));
    try {
      const err = await startDashboardServer({ webDir: empty }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DashboardError);
      expect((err as DashboardError).code).toBe('NOT_BUILT');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('fails with LISTEN_FAILED when the port is taken', async () => {
    const a = await startDashboardServer({ webDir: dir });
    try {
      const err = await startDashboardServer({ webDir: dir, port: a.port }).catch((e: unknown) => e);
      expect((err as DashboardError).code).toBe('LISTEN_FAILED');
    } finally {
      await a.close();
    }
  });
});
