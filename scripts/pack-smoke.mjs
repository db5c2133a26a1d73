#!/usr/bin/env node
// Packaging smoke test: installs the publishable packages the way a user would, from outside the workspace.
//
// 1. `pnpm pack` every publishable package (packages/*, not private) into a temp directory. pnpm, not npm: pnpm
//    rewrites `workspace:*` dependencies to the real versions; `npm pack` leaves them, and npm then refuses the
//    tarball (EUNSUPPORTEDPROTOCOL). Every tarball must carry README.md, LICENSE and no `workspace:` specifier.
// 2. `npm install` the tarballs into a fresh project in the temp directory (third-party dependencies, TypeScript and
//    @types/node come from the npm registry).
// 3. ESM `import` and CJS `require` of each package.
// 4. `tsc --noEmit` of consumer files (ESM and CJS) and of every example the docs quote under the strictest user
//    settings: strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes, skipLibCheck false, NodeNext.
// 5. The installed bins answer --help (status 0) and refuse an unknown flag (status 2); the installed `raft-kvs`
//    runs a 3-node cluster on 127.0.0.1: CreateCluster, AddServer x2, Put, Get through another node; then the
//    servers it started (by PID) are stopped.
//
// Needs built packages (`pnpm build`; `pnpm test:pack` builds first). Every wait is bounded; the whole run is
// cut off after SMOKE_DEADLINE_MS. Set RAFT_PACK_KEEP=1 to keep the temp directory.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// The workspace's private test kit, built with the rest (`pnpm build`); only this script uses it, not the packed packages.
import { freePorts } from '../packages/testkit/dist/index.js';
import { CHECKED } from './check-doc-blocks.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SMOKE_DEADLINE_MS = 180_000;
const TYPESCRIPT = readJson(join(ROOT, 'package.json')).devDependencies.typescript;
const TYPES_NODE = readJson(join(ROOT, 'package.json')).devDependencies['@types/node'];
// The docs' property-test example imports these, as a user's test project would.
const VITEST = readJson(join(ROOT, 'package.json')).devDependencies.vitest;
const FAST_CHECK = readJson(join(ROOT, 'package.json')).devDependencies['fast-check'];

/** Every check printed, in order, so a CI log says what was proven. */
const say = (line) => console.log(`[pack-smoke] ${line}`);
const started = Date.now();
/** Child processes this script started and has not seen exit; stopped by PID on the way out. */
const children = new Set();
const work = mkdtempSync(join(tmpdir(), 'raft-pack-smoke-'));

class SmokeFailure extends Error {
  constructor(message) {
    super(message);
    this.name = 'SmokeFailure';
    this.code = 'SMOKE_FAILED';
  }
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

function check(condition, message) {
  if (!condition) throw new SmokeFailure(message);
}

/** Runs a command to completion (bounded by `timeoutMs`) and returns its output; fails on a non-zero status. */
function run(cmd, args, { cwd, timeoutMs = 60_000, expectStatus = 0 } = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  const shown = `${cmd} ${args.join(' ')}`;
  if (r.error) throw new SmokeFailure(`${shown}: ${r.error.message}`);
  if (r.status !== expectStatus) {
    throw new SmokeFailure(
      `${shown} (in ${cwd}) exited with ${r.status ?? r.signal}, expected ${expectStatus}\n${r.stdout}\n${r.stderr}`,
    );
  }
  return r;
}

function publishablePackages() {
  const out = [];
  for (const d of readdirSync(join(ROOT, 'packages')).sort()) {
    const dir = join(ROOT, 'packages', d);
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = readJson(join(dir, 'package.json'));
    if (!pkg.private) out.push({ dir, pkg });
  }
  return out;
}

/** Starts `raft-kvs serve` and resolves once it prints "serving on" (at most 30 s). */
function startServer(bin, addr, dataDir) {
  const child = spawn(bin, ['serve', addr, '--data', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new SmokeFailure(`raft-kvs serve ${addr}: no "serving on" in 30 s: ${out}`)),
      30_000,
    );
    const onData = (d) => {
      out += String(d);
      if (out.includes('serving on')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => {
      out += String(d);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new SmokeFailure(`raft-kvs serve ${addr} exited with ${code ?? signal}: ${out}`));
    });
  });
}

/** SIGTERM each child this script started (by PID), SIGKILL after 10 s; resolves when all have exited. */
async function stopChildren() {
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

const CONSUMER_ESM = `// Type-checked under the strictest settings against the installed packages' declarations.
import { type Action, RaftNode } from '@raft/core';
import { Simulation } from '@raft/sim';
import { openStorage } from '@raft/storage-jsonl';
import { type ApplyContext, createServer, type Machine, RpcClient } from '@raft/node-tcp';
import { RaftRuntime } from '@raft/runtime';
import { createKvsMachine } from '@raft/kvs-app';
import { checkHistory, type HistoryEvent } from '@raft/linearizability';

// A state typed with interfaces, as users write it: the Machine must accept it.
interface Account {
  owner: string;
  balance: number;
}
interface State {
  accounts: Account[];
}
type Input = { Deposit: { owner: string; amount: number } } | { Balance: string };

export class Bank implements Machine<Input, number> {
  state: State = { accounts: [] };
  apply(input: Input, _ctx: ApplyContext): number {
    if ('Balance' in input) return this.state.accounts.find((a) => a.owner === input.Balance)?.balance ?? 0;
    const account = this.state.accounts.find((a) => a.owner === input.Deposit.owner);
    if (account) account.balance += input.Deposit.amount;
    else this.state.accounts.push({ owner: input.Deposit.owner, balance: input.Deposit.amount });
    return input.Deposit.amount;
  }
  snapshot(): State {
    return structuredClone(this.state);
  }
  restore(snapshot: State): void {
    this.state = snapshot;
  }
}

const node = RaftNode.start<string>('n1');
node.createCluster();
const actions: Action<string>[] = node.takeActions();
const first = actions[0];
if (first !== undefined) console.log(first.type, node.role, node.commitIndex);

const sim = new Simulation({ seed: 1, nodes: 3 });
sim.runUntil(() => sim.leader() !== null, 5_000);

const events: HistoryEvent[] = [];
console.log(checkHistory(events).verdict, typeof openStorage, typeof createServer, typeof RpcClient);
console.log(typeof RaftRuntime, typeof createKvsMachine);
`;

const CONSUMER_CJS = `// The CommonJS side: resolved through the "require" condition and its .d.cts declarations.
import { RaftNode } from '@raft/core';
import { RpcClient } from '@raft/node-tcp';

const node = RaftNode.start<number>('n1');
node.createCluster();
export const summary: string = \`\${node.id} \${typeof RpcClient}\`;
`;

async function main() {
  const packages = publishablePackages();
  say(`work directory ${work}`);
  say(`publishable packages: ${packages.map((p) => p.pkg.name).join(', ')}`);
  for (const { dir, pkg } of packages) {
    check(existsSync(join(dir, 'dist')), `${pkg.name} has no dist/: run "pnpm build" first (or "pnpm test:pack")`);
  }

  // 1. Pack with pnpm.
  const tarDir = join(work, 'tarballs');
  mkdirSync(tarDir);
  const tarballs = [];
  for (const { dir, pkg } of packages) {
    const before = new Set(readdirSync(tarDir));
    run('pnpm', ['pack', '--pack-destination', tarDir], { cwd: dir });
    const made = readdirSync(tarDir).filter((f) => !before.has(f));
    check(made.length === 1, `pnpm pack of ${pkg.name} made ${made.length} files`);
    const file = join(tarDir, made[0]);
    const listing = run('tar', ['-tzf', file]).stdout.split('\n');
    for (const needed of ['package/README.md', 'package/LICENSE', 'package/package.json']) {
      check(listing.includes(needed), `${made[0]} lacks ${needed}`);
    }
    for (const bin of Object.values(pkg.bin ?? {})) {
      const inTar = `package/${bin.replace(/^\.\//, '')}`;
      check(listing.includes(inTar), `${made[0]} lacks its bin ${inTar}`);
    }
    const packed = JSON.parse(run('tar', ['-xzOf', file, 'package/package.json']).stdout);
    const specs = { ...packed.dependencies, ...packed.peerDependencies, ...packed.optionalDependencies };
    for (const [name, spec] of Object.entries(specs)) {
      check(!String(spec).startsWith('workspace:'), `${made[0]}: dependency ${name} is still "${spec}"`);
    }
    say(`packed ${made[0]} (${listing.filter(Boolean).length} files; README, LICENSE, no workspace: specifiers)`);
    tarballs.push({ name: pkg.name, file, pkg });
  }

  // 2. A fresh project outside the workspace, installed with npm.
  const app = join(work, 'consumer');
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'raft-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
  );
  const installArgs = [
    'install',
    '--no-audit',
    '--no-fund',
    '--loglevel=error',
    ...tarballs.map((t) => t.file),
    `typescript@${TYPESCRIPT}`,
    `@types/node@${TYPES_NODE}`,
    `vitest@${VITEST}`,
    `fast-check@${FAST_CHECK}`,
  ];
  run('npm', installArgs, { cwd: app, timeoutMs: 120_000 });
  for (const t of tarballs) {
    const installed = readJson(join(app, 'node_modules', ...t.name.split('/'), 'package.json'));
    check(installed.version === t.pkg.version, `${t.name}: installed ${installed.version}, packed ${t.pkg.version}`);
  }
  say(`npm install of ${tarballs.length} tarballs into a fresh project: ok`);

  // 3. ESM import and CJS require of each package.
  for (const t of tarballs) {
    const esm = run(
      'node',
      ['--input-type=module', '-e', `const m = await import('${t.name}'); console.log(Object.keys(m).length);`],
      { cwd: app },
    );
    check(Number(esm.stdout.trim()) > 0, `import('${t.name}') has no exports`);
    const cjs = run('node', ['-e', `console.log(Object.keys(require('${t.name}')).length)`], { cwd: app });
    check(Number(cjs.stdout.trim()) > 0, `require('${t.name}') has no exports`);
    say(`${t.name}: ESM import (${esm.stdout.trim()} exports) and CJS require (${cjs.stdout.trim()} exports) ok`);
  }

  // 4. Strict type check of consumer code and of every example the docs quote (scripts/check-doc-blocks.mjs), each
  //    copied into examples/<package>/ so relative imports between examples still resolve.
  writeFileSync(join(app, 'consumer.ts'), CONSUMER_ESM);
  writeFileSync(join(app, 'consumer-cjs.cts'), CONSUMER_CJS);
  const coreTar = tarballs.find((t) => t.name === '@raft/core');
  const coreListing = run('tar', ['-tzf', coreTar.file]).stdout.split('\n');
  for (const f of ['examples/driver.ts', 'examples/cluster.ts']) {
    check(coreListing.includes(`package/${f}`), `@raft/core does not ship ${f}`);
  }
  const examples = Object.keys(CHECKED).map((file) => {
    const [, pkgDir, ...rest] = file.split('/');
    const target = join('examples', pkgDir, ...rest.slice(1));
    mkdirSync(join(app, dirname(target)), { recursive: true });
    writeFileSync(join(app, target), readFileSync(join(ROOT, file)));
    return target;
  });
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2022'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      skipLibCheck: false,
      types: ['node'],
      noEmit: true,
    },
    include: ['consumer.ts', 'consumer-cjs.cts', ...examples],
  };
  writeFileSync(join(app, 'tsconfig.json'), `${JSON.stringify(tsconfig, null, 2)}\n`);
  run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: app, timeoutMs: 120_000 });
  say(
    `tsc --noEmit (strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes, skipLibCheck false, NodeNext): ` +
      `consumer.ts, consumer-cjs.cts, ${examples.join(', ')} ok`,
  );

  // 5. The installed bins.
  const binDir = join(app, 'node_modules', '.bin');
  for (const t of tarballs) {
    for (const name of Object.keys(t.pkg.bin ?? {})) {
      const help = run(join(binDir, name), ['--help'], { cwd: app });
      check(help.stdout.includes(`usage: ${name}`), `${name} --help printed no usage: ${help.stdout}`);
      const bad = run(join(binDir, name), ['--no-such-flag'], { cwd: app, expectStatus: 2 });
      check(bad.stderr.length > 0, `${name} --no-such-flag printed nothing on stderr`);
      say(`${name}: --help exits 0 with usage, --no-such-flag exits 2`);
    }
  }
  const kvs = join(binDir, 'raft-kvs');
  const addrs = (await freePorts(3)).map((p) => `127.0.0.1:${p}`);
  for (const addr of addrs) {
    await startServer(kvs, addr, join(work, 'data', addr.replace(':', '-')));
    say(`raft-kvs serve ${addr}: serving`);
  }
  const call = (addr, ...args) => {
    const r = run(kvs, ['call', addr, ...args, '--timeout-ms', '20000'], { cwd: app, timeoutMs: 30_000 });
    return JSON.parse(r.stdout.trim());
  };
  const [a, b, c] = addrs;
  check(call(a, 'CreateCluster').result?.members?.length === 1, 'CreateCluster did not answer one member');
  check(call(a, 'AddServer', JSON.stringify({ addr: b })).result?.members?.length === 2, 'AddServer #1 failed');
  check(call(a, 'AddServer', JSON.stringify({ addr: c })).result?.members?.length === 3, 'AddServer #2 failed');
  say(`CreateCluster on ${a}, AddServer ${b} and ${c}: 3 members`);
  call(b, 'Apply', JSON.stringify({ kind: 'Command', input: { Put: ['smoke', 42] } }));
  const got = call(c, 'Apply', JSON.stringify({ kind: 'Query', input: { Get: 'smoke' } }));
  check(got.result === 42, `Get through ${c} answered ${JSON.stringify(got)}, expected 42`);
  say(`Put through ${b}, linearizable Get through ${c}: 42`);
  await stopChildren();
  say('stopped the 3 servers this test started');
}

const deadline = setTimeout(() => {
  console.error(`[pack-smoke] FAILED: not done within ${SMOKE_DEADLINE_MS / 1000} s`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
}, SMOKE_DEADLINE_MS);

let failed = false;
try {
  await main();
  say(`PASSED in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  failed = true;
  console.error(`[pack-smoke] FAILED: ${e instanceof SmokeFailure ? e.message : (e?.stack ?? e)}`);
} finally {
  await stopChildren();
  clearTimeout(deadline);
  if (process.env.RAFT_PACK_KEEP === '1' || failed) say(`kept ${work} for inspection`);
  else rmSync(work, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
