// Runs every transcript in test/testdata (see interaction.ts for the format and the commands). With
// RAFT_TESTDATA_REWRITE=1 the expected outputs are rewritten from what the core does now instead of compared.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTranscript } from './interaction.js';

const dir = join(__dirname, 'testdata');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();
const rewrite = process.env.RAFT_TESTDATA_REWRITE === '1';

describe('interaction transcripts', () => {
  it('finds the transcripts', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
  });

  it.each(files)('%s', (file) => {
    const path = join(dir, file);
    const text = readFileSync(path, 'utf8');
    const { cases, rendered, error } = runTranscript(text);
    if (rewrite && error === undefined) {
      writeFileSync(path, rendered);
      return;
    }
    for (const c of cases) {
      // The first mismatch is the interesting one: later cases usually differ only because of it.
      expect(c.actual, `testdata/${file}:${c.line} "${c.command}" (rewrite: RAFT_TESTDATA_REWRITE=1)`).toBe(c.expected);
    }
    if (error) throw error;
    expect(rendered).toBe(text);
  });

  it('docs/core.md quotes a transcript exactly', () => {
    const doc = readFileSync(join(__dirname, '../../../docs/core.md'), 'utf8');
    const m = /<!-- transcript: (\S+) -->\n```text fragment\n([\s\S]*?)```/.exec(doc);
    expect(m, 'docs/core.md has a "<!-- transcript: FILE -->" block').not.toBeNull();
    expect(readFileSync(join(dir, m![1]), 'utf8')).toContain(m![2]);
  });
});
