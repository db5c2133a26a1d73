/**
 * Test 3: a child process appending with fsync is killed with SIGKILL at random moments, repeatedly. Every write the
 * child saw acknowledged before the kill must be present after reopening, and the log must be consistent.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Prng } from '@raft/sim';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../src/index.js';
import { payload, tempDir, testSeed } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..');

/**
 * The child runs as plain JavaScript: the package sources and the child script are transpiled once (TypeScript's
 * transpileModule, types erased, nothing bundled) into a temporary directory. Starting a child under tsx costs
 * about half a second of CPU (several seconds on a loaded machine), paid 15 times; plain node starts in ~50 ms.
 */
let jsRoot = '';
let CHILD = '';
beforeAll(async () => {
  jsRoot = await mkdtemp(join(tmpdir(), 'raft-storage-crash-js-'));
  const files = [
    ...fs.readdirSync(join(pkg, 'src')).map((f) => join(pkg, 'src', f)),
    join(here, 'helpers-pure.ts'),
    join(here, 'fixtures', 'crash-child.ts'),
  ];
  for (const file of files) {
    const out = join(jsRoot, relative(pkg, file)).replace(/\.ts$/, '.js');
    const { outputText } = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: file,
    });
    fs.mkdirSync(dirname(out), { recursive: true });
    fs.writeFileSync(out, outputText);
  }
  fs.writeFileSync(join(jsRoot, 'package.json'), '{"type":"module"}\n');
  // The child's one runtime import outside this package is @raft/sim's Prng: a stand-in @raft/sim whose entry is
  // that one file (self-contained, no imports) resolves it without the simulator and its dependencies.
  const sim = join(jsRoot, 'node_modules', '@raft', 'sim');
  fs.mkdirSync(sim, { recursive: true });
  fs.writeFileSync(join(sim, 'package.json'), '{"type":"module","exports":"./prng.js"}\n');
  const prngSource = join(pkg, '..', 'sim', 'src', 'prng.ts');
  fs.writeFileSync(
    join(sim, 'prng.js'),
    ts.transpileModule(fs.readFileSync(prngSource, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: prngSource,
    }).outputText,
  );
  CHILD = join(jsRoot, 'test', 'fixtures', 'crash-child.js');
});
afterAll(async () => {
  if (jsRoot) await rm(jsRoot, { recursive: true, force: true });
});
const ROUNDS = Number(process.env.RAFT_STORAGE_CRASH_ROUNDS ?? 15);

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
});

interface RoundResult {
  readonly lines: string[];
  readonly stderr: string;
}

/** Run the child until it has printed `open` and then for `runMs` more, then SIGKILL it and wait for its exit. */
function runChild(dir: string, round: number, seed: number, runMs: number): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(round), String(seed)], {
      cwd: jsRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let err = '';
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    // Bounded: a child that never gets going (a broken loader, a hung disk) fails the test instead of hanging it.
    const startTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`round ${round}: child did not start within 40 s; stderr: ${err}`));
    }, 40_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      if (killTimer === undefined && out.includes('open ')) {
        clearTimeout(startTimer);
        killTimer = setTimeout(() => child.kill('SIGKILL'), runMs);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(startTimer);
      clearTimeout(killTimer);
      children.delete(child);
      if (signal !== 'SIGKILL') {
        reject(new Error(`round ${round}: child exited by itself (code ${code}, signal ${signal}); stderr: ${err}`));
        return;
      }
      // Only complete lines count: the kill can cut the last one.
      const lines = out.split('\n');
      lines.pop();
      resolve({ lines, stderr: err });
    });
  });
}

describe('crash: SIGKILL during appends with fsync', () => {
  it(`every acknowledged write survives ${ROUNDS} kills at random moments`, { timeout: 240_000 }, async () => {
    const seed = testSeed();
    console.log(
      `crash test seed ${seed} (replay: RAFT_STORAGE_SEED=${seed} pnpm --filter @raft/storage-jsonl exec vitest run test/crash.test.ts)`,
    );
    const rnd = new Prng(seed);
    const dir = await tempDir();
    const acked = new Map<number, number>(); // index -> term, for every entry acknowledged in any round
    let ackedHsTerm = 0;
    let ackedSnapshot = 0;
    let totalAcks = 0;
    let tornRounds = 0;
    let snapshots = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const runMs = 20 + Math.floor(rnd.next() * 250);
      const { lines } = await runChild(dir, round, Math.floor(rnd.next() * 2 ** 31), runMs);
      const what = `seed ${seed} round ${round} (killed ${runMs} ms after open)`;
      for (const line of lines) {
        const [kind, a, b, c] = line.split(' ');
        if (kind === 'ack') {
          totalAcks++;
          for (let i = Number(a); i <= Number(b); i++) acked.set(i, Number(c));
        } else if (kind === 'hs') ackedHsTerm = Math.max(ackedHsTerm, Number(a));
        else if (kind === 'snap') {
          snapshots++;
          ackedSnapshot = Math.max(ackedSnapshot, Number(a));
        }
      }

      const s = await openStorage<Uint8Array>(dir);
      try {
        if (s.recovery.tornBytes > 0) tornRounds++;
        const snap = s.state.snapshot;
        const base = snap?.index ?? 0;
        expect(base, `${what}: snapshot`).toBeGreaterThanOrEqual(ackedSnapshot);
        expect(s.state.hardState.term, `${what}: term`).toBeGreaterThanOrEqual(ackedHsTerm);
        if (snap) {
          const data = await s.readSnapshot();
          expect(Array.from(data!.data), `${what}: snapshot data`).toEqual(Array.from(payload(base, 0, 64)));
          if (acked.has(base)) expect(snap.term, `${what}: snapshot term`).toBe(acked.get(base));
        }
        // The log is consistent: contiguous after the snapshot, terms never decrease, every payload intact.
        let prevTerm = snap?.term ?? 0;
        s.state.entries.forEach((e, k) => {
          expect(e.index, `${what}: contiguous`).toBe(base + 1 + k);
          expect(e.term, `${what}: terms`).toBeGreaterThanOrEqual(prevTerm);
          prevTerm = e.term;
          expect(e.type === 'command' && Array.from(e.command), `${what}: payload of ${e.index}`).toEqual(
            Array.from(payload(e.index, e.term)),
          );
        });
        // Every acknowledged entry is there (or covered by the snapshot), with the term it was written in.
        for (const [index, term] of acked) {
          if (index <= base) continue;
          const e = s.state.entries[index - base - 1];
          expect(e?.term, `${what}: acknowledged entry ${index} (term ${term}) lost`).toBe(term);
        }
      } finally {
        await s.close();
      }
    }
    console.log(
      `crash test: ${ROUNDS} rounds, ${totalAcks} acknowledged appends, ${acked.size} entries, ${snapshots} snapshots, torn tails in ${tornRounds} rounds`,
    );
    expect(totalAcks).toBeGreaterThan(ROUNDS);
  });
});
