#!/usr/bin/env node
// Every fenced code block in the docs (README.md, docs/*.md, packages/*/README.md and API.md, apps/*/README.md) is
// either checked or marked as a fragment, so no example can rot unnoticed:
//
// - ```ts file=<path>: a checked file, quoted whole. The block must equal the file, and the file must be listed
//   in CHECKED below with the test that runs it (that test must name the file). The packaging smoke test
//   (scripts/pack-smoke.mjs) also type-checks every such file against the packed packages under the strictest
//   user settings. `node scripts/check-doc-blocks.mjs --fix` rewrites these blocks from their files.
// - the console blocks of README.md between <!-- readme-test:start --> and <!-- readme-test:end -->: every command
//   is run, and its output compared, by packages/kvs-app/test/readme.test.ts.
// - ```<lang> fragment: an illustration, an excerpt or a signature summary, not checked. The info string's first
//   word still names the language, so renderers highlight it as usual.
//
// Any other block fails the check, with its file and line.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Checked example files (relative to the repository root) and the test that runs each one. */
export const CHECKED = {
  'packages/core/examples/driver.ts': 'packages/core/test/driver-example.test.ts',
  'packages/core/examples/cluster.ts': 'packages/core/test/driver-example.test.ts',
  'packages/storage-jsonl/examples/raft-storage.ts': 'packages/storage-jsonl/test/example.test.ts',
  'packages/node-tcp/examples/counter.ts': 'packages/node-tcp/test/counter-example.test.ts',
  'packages/sim/examples/majority-partition.test.ts': 'packages/sim/examples/majority-partition.test.ts',
  'packages/sim/examples/own-machine.test.ts': 'packages/sim/examples/own-machine.test.ts',
};

/** The Markdown files whose blocks are checked. */
export function docFiles(root = ROOT) {
  const files = ['README.md'];
  for (const f of readdirSync(join(root, 'docs'))) if (f.endsWith('.md')) files.push(`docs/${f}`);
  for (const group of ['packages', 'apps']) {
    for (const d of readdirSync(join(root, group))) {
      for (const f of ['README.md', 'API.md']) {
        if (existsSync(join(root, group, d, f))) files.push(`${group}/${d}/${f}`);
      }
    }
  }
  return files.sort();
}

/** The fenced blocks of a Markdown text: opening line number (1-based), info string, body, and body's line range. */
export function blocks(text) {
  const lines = text.split('\n');
  const out = [];
  let open = null;
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(```+)(.*)$/.exec(lines[i]);
    if (!m) continue;
    if (open === null) open = { line: i + 1, fence: m[2], info: m[3].trim(), start: i + 1 };
    else if (m[2].length >= open.fence.length && m[3].trim() === '') {
      out.push({ ...open, end: i, body: lines.slice(open.start, i).join('\n') });
      open = null;
    }
  }
  if (open !== null) out.push({ ...open, end: lines.length, body: null });
  return out;
}

/** Problems found in one Markdown file, and (with `fix`) the text with every file= block rewritten. */
export function checkText(path, text, root = ROOT, fix = false) {
  const problems = [];
  const readmeStart = path === 'README.md' ? text.indexOf('<!-- readme-test:start -->') : -1;
  const readmeEnd = path === 'README.md' ? text.indexOf('<!-- readme-test:end -->') : -1;
  const lineOf = (offset) => text.slice(0, offset).split('\n').length;
  const replacements = [];
  for (const b of blocks(text)) {
    const where = `${path}:${b.line}`;
    if (b.body === null) {
      problems.push(`${where}: the block is never closed`);
      continue;
    }
    const words = b.info.split(/\s+/).filter(Boolean);
    const file = words.find((w) => w.startsWith('file='))?.slice('file='.length);
    if (words.includes('fragment')) continue;
    if (file !== undefined) {
      if (!(file in CHECKED)) {
        problems.push(`${where}: ${file} is not a checked file (add it to CHECKED in scripts/check-doc-blocks.mjs)`);
        continue;
      }
      const test = CHECKED[file];
      const base = file.split('/').at(-1).replace(/\.ts$/, '');
      // A checked file may be a test itself (it then runs itself); otherwise its test must name it.
      if (test !== file && (!existsSync(join(root, test)) || !readFileSync(join(root, test), 'utf8').includes(base))) {
        problems.push(`${where}: ${test}, which should run ${file}, does not mention ${base}`);
      }
      if (!existsSync(join(root, file))) {
        problems.push(`${where}: ${file} does not exist`);
        continue;
      }
      const code = readFileSync(join(root, file), 'utf8').trimEnd();
      if (b.body.trimEnd() !== code) {
        if (fix) replacements.push({ start: b.start, end: b.end, code });
        else problems.push(`${where}: the block differs from ${file} (run: node scripts/check-doc-blocks.mjs --fix)`);
      }
      continue;
    }
    const inReadmeTest = readmeStart >= 0 && b.line > lineOf(readmeStart) && b.line < lineOf(readmeEnd);
    if (inReadmeTest && words[0] === 'console') continue;
    problems.push(
      `${where}: unmarked code block \`\`\`${b.info}: mark it \`\`\`${words[0] ?? 'text'} fragment, or make it a checked ` +
        'file quoted with file=<path> (see scripts/check-doc-blocks.mjs)',
    );
  }
  let fixed = text;
  if (replacements.length > 0) {
    const lines = text.split('\n');
    for (const r of replacements.reverse()) lines.splice(r.start, r.end - r.start, ...r.code.split('\n'));
    fixed = lines.join('\n');
  }
  return { problems, fixed };
}

function main() {
  const fix = process.argv.includes('--fix');
  const problems = [];
  let count = 0;
  for (const path of docFiles()) {
    const text = readFileSync(join(ROOT, path), 'utf8');
    count += blocks(text).length;
    const r = checkText(path, text, ROOT, fix);
    problems.push(...r.problems);
    if (fix && r.fixed !== text) {
      writeFileSync(join(ROOT, path), r.fixed);
      console.log(`rewrote the checked blocks of ${path}`);
    }
  }
  if (problems.length > 0) {
    console.error(`check-doc-blocks: ${problems.length} problem(s):\n${problems.join('\n')}`);
    process.exit(1);
  }
  console.log(
    `check-doc-blocks: ${count} code blocks in ${docFiles().length} files are checked or marked as fragments`,
  );
}

if (relative(process.argv[1] ?? '', fileURLToPath(import.meta.url)) === '') main();
