/**
 * Shared setup of the dashboard's browser tests: make sure Debian's chromium is installed (running the project's
 * install script when it is not: CI runs as root on Debian), build the page, serve it, and watch every request
 * the page makes so a test can assert that nothing leaves 127.0.0.1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type DashboardServer, startDashboardServer } from '../src/server.js';

const here = dirname(fileURLToPath(import.meta.url));
export const appDir = join(here, '..');
export const artifactsDir = join(appDir, 'test-artifacts');
const CHROMIUM = '/usr/bin/chromium';

/** Installs chromium if missing (never skips: a missing browser is installed or the test fails). */
export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const script = join(appDir, '..', '..', 'scripts', 'install-chromium.sh');
  console.log(`[dashboard e2e] ${CHROMIUM} is missing; running ${script}`);
  const r = spawnSync('bash', [script], { stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(CHROMIUM)) {
    throw new Error(`chromium is required for the dashboard e2e tests and ${script} failed (exit ${r.status})`);
  }
}

/**
 * Builds the page into dist/web. Always rebuilt (esbuild takes well under a second) so a test never runs an old
 * bundle left in dist by an earlier build.
 */
export function buildPage(): void {
  const r = spawnSync(process.execPath, [join(appDir, 'build-web.mjs')], { cwd: appDir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the page failed:\n${r.stdout}\n${r.stderr}`);
}

/** Everything a browser test needs; `close` releases it all. */
export interface E2E {
  browser: Browser;
  server: DashboardServer;
  close(): Promise<void>;
}

/** Starts the static server and a headless chromium (global-setup.ts installed chromium and built the page). */
export async function startE2E(nodes: string[] = []): Promise<E2E> {
  ensureChromium(); // a no-op after global setup; kept so a file run on its own still never skips
  mkdirSync(artifactsDir, { recursive: true });
  const server = await startDashboardServer({ nodes });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container has no user namespaces for chromium's sandbox; the page is our own local bundle.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  return {
    browser,
    server,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/** What {@link watchPage} records. */
export interface Seen {
  urls: string[];
  errors: string[];
  /** Console errors for failed WebSocket connections (a down node), with `Date.now()` when each was logged. */
  wsFailures: { at: number; text: string }[];
}

/** Records every request and page error of `page` (to assert no external request and no script error). */
export function watchPage(page: Page): Seen {
  const out: Seen = { urls: [], errors: [], wsFailures: [] };
  page.on('request', (r) => out.urls.push(r.url()));
  page.on('websocket', (ws) => out.urls.push(ws.url()));
  page.on('pageerror', (e) => out.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // A refused WebSocket to a killed node is expected in the live test (and counted there); anything else is a bug.
    if (/WebSocket connection to .* failed/.test(m.text())) out.wsFailures.push({ at: Date.now(), text: m.text() });
    else out.errors.push(`console: ${m.text()}`);
  });
  return out;
}

/** The URLs that went somewhere else than this machine. */
export function externalRequests(urls: string[]): string[] {
  return urls.filter((u) => !/^(https?|wss?):\/\/127\.0\.0\.1[:/]/.test(u) && !u.startsWith('data:'));
}

/**
 * Runs `fn`; if it throws, saves a screenshot `<name>-failure.png` and adds the page's text and errors to the
 * error message, so a CI failure can be diagnosed from the artifacts alone.
 */
export async function withFailureArtifacts(
  page: Page,
  name: string,
  seen: { errors: string[] },
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const shot = join(artifactsDir, `${name}-failure.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    const text = await page
      // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, one line per block, is what a person reading a CI failure needs
      .evaluate(() => document.body.innerText)
      .catch((x: unknown) => `(no page text: ${String(x)})`);
    const err = e as Error;
    err.message = `${err.message}\n--- screenshot: ${shot}\n--- page errors: ${JSON.stringify(seen.errors)}\n--- page text:\n${text.slice(0, 4000)}`;
    throw err;
  }
}
