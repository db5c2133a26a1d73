#!/usr/bin/env node
// Bundles the browser page (src/main.ts and everything it imports, @raft/core and @raft/runtime included) into
// dist/web with esbuild.
// Why a separate step from tsup: the page is one self-contained browser bundle (no CDN, no web fonts, no request
// leaves the page's origin), while tsup builds the Node-side server. Usage: node build-web.mjs [--dev]
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist', 'web');
const dev = process.argv.includes('--dev');

mkdirSync(out, { recursive: true });
const started = Date.now();
await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  bundle: true,
  // A classic script (not a module) so the page also works opened straight from disk (file:// forbids modules).
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  outfile: join(out, 'app.js'),
  sourcemap: true,
  minify: !dev,
  // Workspace packages are bundled from their TypeScript sources, as the tests use them.
  alias: {
    '@raft/core': join(here, '..', '..', 'packages', 'core', 'src', 'index.ts'),
    '@raft/sim': join(here, '..', '..', 'packages', 'sim', 'src', 'index.ts'),
    '@raft/runtime': join(here, '..', '..', 'packages', 'runtime', 'src', 'index.ts'),
  },
  tsconfig: join(here, 'tsconfig.json'),
  logLevel: 'warning',
  legalComments: 'none',
});
for (const f of ['index.html', 'style.css']) copyFileSync(join(here, 'src', 'web', f), join(out, f));
console.log(`[dashboard] web bundle written to ${out} in ${Date.now() - started} ms`);
