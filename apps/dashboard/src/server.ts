/**
 * A tiny static file server for the dashboard's bundled page (dist/web), bound to 127.0.0.1.
 *
 * It serves only the files the build wrote (no directory listing, no path from the request reaches the file
 * system) plus `/config.json`, which tells the page which nodes to watch when the URL has no `?nodes=`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Why the dashboard server could not start. */
export class DashboardError extends Error {
  constructor(
    readonly code: 'NOT_BUILT' | 'LISTEN_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'DashboardError';
  }
}

/** Options of {@link startDashboardServer}. */
export interface DashboardServerOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /** Node addresses (`host:port`) the live view connects to by default. */
  nodes?: readonly string[];
  /** Directory holding the built page. Default: the `dist/web` the build wrote next to this module. */
  webDir?: string;
  /**
   * A client token for the nodes: it goes into the live view's URL fragment (`#token=...`), which the browser keeps
   * to itself, and never into anything this server serves. Default: none.
   */
  token?: string;
  /** The nodes have TLS: the live view uses `wss://` (`?tls=1`). Default false. */
  tls?: boolean;
}

/** A running dashboard server. */
export interface DashboardServer {
  /** The live view's URL, with the nodes in its query (`http://127.0.0.1:PORT/?nodes=a,b,c`). */
  readonly url: string;
  /** The playground's URL on the same server. */
  readonly playgroundUrl: string;
  /** The port actually bound. */
  readonly port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

// Every request the page makes stays on this origin, except the WebSockets to the nodes it watches.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; font-src 'none'; object-src 'none'; base-uri 'none'";

/** The directory of the built page: `dist/web` beside the bundled module, or beside `src` when run from source. */
export function defaultWebDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // From dist/index.js the page is in dist/web; from src/server.ts (tests, tsx) it is in ../dist/web. src/web holds
  // only the page's sources, so the test is for the bundle itself.
  const candidates = [join(here, 'web'), join(here, '..', 'dist', 'web')];
  return candidates.find((d) => existsSync(join(d, 'app.js'))) ?? candidates[candidates.length - 1];
}

/**
 * Serves the dashboard on 127.0.0.1 and resolves once it listens.
 *
 * @throws {@link DashboardError} `NOT_BUILT` when the page was not built (`pnpm --filter @raft/dashboard build`),
 *   `LISTEN_FAILED` when the port cannot be bound.
 */
export async function startDashboardServer(options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const webDir = options.webDir ?? defaultWebDir();
  if (!existsSync(join(webDir, 'app.js'))) {
    throw new DashboardError(
      'NOT_BUILT',
      `the dashboard page is not built (no ${join(webDir, 'app.js')}); run: pnpm --filter @raft/dashboard build`,
    );
  }
  const nodes = [...(options.nodes ?? [])];
  // Read the (small) bundle once: the set of servable names is fixed at start, so no request path reaches the disk.
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(webDir)) {
    if (TYPES[extname(name)] !== undefined) files.set(`/${name}`, readFileSync(join(webDir, name)));
  }
  files.set('/config.json', Buffer.from(JSON.stringify({ nodes })));

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const name = path === '/' ? '/index.html' : path;
    const body = files.get(name);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || body === undefined) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(name)],
      'content-length': body.length,
      'cache-control': 'no-store',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new DashboardError('LISTEN_FAILED', `cannot listen on ${host}:${options.port ?? 0}: ${e.message}`)),
    );
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  const q: string[] = [];
  if (nodes.length > 0) q.push(`nodes=${nodes.map(encodeURIComponent).join(',')}`);
  if (options.tls === true) q.push('tls=1');
  const query = q.length > 0 ? `?${q.join('&')}` : '';
  const fragment = options.token === undefined ? '' : `#token=${encodeURIComponent(options.token)}`;
  return {
    url: `${base}${query}${fragment}`,
    playgroundUrl: `${base}?mode=playground&seed=1&nodes=5`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
