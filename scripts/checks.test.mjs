// Tests of the repository checks in scripts/ (run by `npm test` through `node --test scripts/`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CHECKED, checkText } from './check-doc-blocks.mjs';
import { checkPackages } from './check-packages.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const fence = '```';

describe('check-doc-blocks', () => {
  it('refuses an unmarked block and an unclosed one, with file and line', () => {
    const text = `# t\n\n${fence}ts\nconst x = 1;\n${fence}\n\n${fence}sh\nnpm test\n`;
    const { problems } = checkText('docs/x.md', text);
    assert.equal(problems.length, 2);
    assert.match(problems[0], /^docs\/x\.md:3: unmarked code block/);
    assert.match(problems[1], /^docs\/x\.md:7: the block is never closed/);
  });

  it('accepts fragments and the console blocks of the README walk-through, and nothing else of README', () => {
    const walk = `<!-- readme-test:start -->\n${fence}console\n$ echo hi\nhi\n${fence}\n<!-- readme-test:end -->\n`;
    assert.deepEqual(checkText('docs/x.md', `${fence}json fragment\n{}\n${fence}\n`).problems, []);
    assert.deepEqual(checkText('README.md', walk).problems, []);
    assert.equal(checkText('docs/x.md', walk).problems.length, 1, 'the walk-through exemption is README.md only');
    assert.equal(checkText('README.md', `${fence}console\n$ x\n${fence}\n${walk}`).problems.length, 1);
  });

  it('requires a file= block to quote a registered checked file exactly, and --fix rewrites it', () => {
    const [file] = Object.keys(CHECKED);
    const stale = `${fence}ts file=${file}\n// an old copy\n${fence}\n`;
    const { problems } = checkText('docs/x.md', stale);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /differs from/);
    const { fixed } = checkText('docs/x.md', stale, ROOT, true);
    assert.deepEqual(checkText('docs/x.md', fixed).problems, []);
    const unknown = checkText('docs/x.md', `${fence}ts file=scripts/nope.ts\nx\n${fence}\n`).problems;
    assert.match(unknown[0], /is not a checked file/);
  });
});

describe('check-packages', () => {
  const root = mkdtempSync(join(tmpdir(), 'check-packages-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('passes the repository and refuses a bin that points at dist, and a package without README or LICENSE', () => {
    assert.deepEqual(checkPackages(ROOT), []);
    mkdirSync(join(root, 'apps'));
    mkdirSync(join(root, 'packages', 'lin'), { recursive: true });
    const pkg = { name: '@x/lin', version: '1.0.0', license: 'MIT', files: ['dist'], bin: { lin: './dist/cli.js' } };
    writeFileSync(join(root, 'packages', 'lin', 'package.json'), JSON.stringify(pkg));
    const problems = checkPackages(root);
    assert.ok(
      problems.some((p) => /bin lin points at \.\/dist\/cli\.js/.test(p)),
      problems.join('\n'),
    );
    assert.ok(problems.some((p) => /no README\.md/.test(p)));
    assert.ok(problems.some((p) => /no LICENSE/.test(p)));
  });

  it('holds a private package under packages/ (like @raft/testkit) to none of the publishing rules', () => {
    const priv = mkdtempSync(join(tmpdir(), 'check-packages-private-'));
    try {
      mkdirSync(join(priv, 'apps'));
      mkdirSync(join(priv, 'packages', 'kit'), { recursive: true });
      const pkg = { name: '@x/kit', version: '0.0.0', private: true, files: ['dist'] };
      writeFileSync(join(priv, 'packages', 'kit', 'package.json'), JSON.stringify(pkg));
      assert.deepEqual(checkPackages(priv), []);
      // The same package, not private, is refused: the test above is about `private`, not an empty package.
      writeFileSync(join(priv, 'packages', 'kit', 'package.json'), JSON.stringify({ ...pkg, private: false }));
      assert.ok(checkPackages(priv).some((p) => /packages\/kit: publishable but has no README\.md/.test(p)));
    } finally {
      rmSync(priv, { recursive: true, force: true });
    }
  });
});
