#!/usr/bin/env node
// Runs a root script after making sure the workspace's dependencies are installed.
// Why: README promises two commands that work on a fresh clone with only Node and npm,
// so `npm start` / `npm test` must install pnpm's workspace themselves on first use.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PNPM_VERSION = '9.15.9';
const script = process.argv[2];
const rest = process.argv.slice(3);
if (!script) {
  console.error('usage: node scripts/with-deps.mjs <script> [args...]');
  process.exit(2);
}

function hasPnpm() {
  const r = spawnSync('pnpm', ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' });
  return r.status === 0 && r.stdout.trim().startsWith('9.');
}
const pnpm = hasPnpm() ? ['pnpm'] : ['npx', '--yes', `pnpm@${PNPM_VERSION}`];

function run(args) {
  const r = spawnSync(pnpm[0], [...pnpm.slice(1), ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const marker = join(root, 'node_modules', '.modules.yaml');
const lock = join(root, 'pnpm-lock.yaml');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
if (stale) {
  console.error(`[setup] installing workspace dependencies with pnpm ${PNPM_VERSION} (first run only)...`);
  run(['install', '--frozen-lockfile', '--reporter=silent']);
}
run(['run', script, ...rest]);
