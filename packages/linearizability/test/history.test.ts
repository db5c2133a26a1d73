/** Reading JSON Lines: blank lines, CRLF line ends, the line numbers of errors, and reading straight into operations. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateHistory, prng } from '../src/generate.js';
import {
  formatHistory,
  operationsToEvents,
  pairOperations,
  parseHistory,
  readHistoryFile,
  readOperationsFile,
} from '../src/history.js';
import { HistoryFormatError } from '../src/types.js';

const dir = mkdtempSync(join(tmpdir(), 'lincheck-history-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const inv = '{"process":1,"type":"invoke","f":"get","key":"k","time":1}';
const ok = '{"process":1,"type":"ok","f":"get","key":"k","value":null,"time":2}';

describe('parseHistory', () => {
  it('skips blank and whitespace-only lines, accepts CRLF and a missing final newline', () => {
    const events = parseHistory(`\n${inv}\r\n  \r\n\t\n${ok}`);
    expect(events.map((e) => [e.type, e.time])).toEqual([
      ['invoke', 1],
      ['ok', 2],
    ]);
    expect(parseHistory('')).toEqual([]);
    expect(parseHistory('\n\n')).toEqual([]);
  });

  it('names the 1-based line of a malformed line, counting blank lines', () => {
    const bad = (text: string): HistoryFormatError => {
      try {
        parseHistory(text);
      } catch (e) {
        if (e instanceof HistoryFormatError) return e;
      }
      throw new Error('no HistoryFormatError');
    };
    expect(bad(`${inv}\n\n{"process":1,`).line).toBe(3);
    expect(bad(`${inv}\n\n{"process":1,`).message).toMatch(/^history line 3: not JSON/);
    expect(bad(`\r\n${inv}\r\n[1]\r\n`).line).toBe(3);
    expect(bad(`${inv}\n{"process":1,"type":"nope","f":"get","key":"k","time":3}`).code).toBe('HISTORY_FORMAT');
  });
});

describe('readOperationsFile', () => {
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('gives the operations pairOperations gives for readHistoryFile, for ASCII and non-ASCII files', () => {
    const rand = prng(11);
    const ops = generateHistory(rand, {
      processes: 6,
      keys: 3,
      ops: 300,
      infoRate: 0.1,
      failRate: 0.05,
      values: 'unique',
      recordPrev: true,
    });
    const ascii = formatHistory(operationsToEvents(ops));
    // Non-ASCII values and keys take the UTF-8 decoding path; a blank line keeps event and line numbers apart.
    const unicode = `\n${ascii.replaceAll('"v1', '"vé€😀1').replaceAll('"k1"', '"ключ"')}`;
    for (const [name, text] of [
      ['ascii.jsonl', ascii],
      ['unicode.jsonl', unicode],
    ] as const) {
      const path = file(name, text);
      const direct = readOperationsFile(path);
      const viaEvents = pairOperations(readHistoryFile(path));
      // Line numbers differ by design (file lines against event positions); everything else is equal.
      const strip = (o: object) => ({ ...o, invokeLine: 0, completeLine: 0 });
      expect(direct.map(strip)).toEqual(viaEvents.map(strip));
      expect(direct.length).toBe(ops.length);
    }
    expect(readOperationsFile(file('u.jsonl', unicode)).some((o) => o.key === 'ключ')).toBe(true);
  });

  it('reads a file in chunks of whole lines: the same events and line numbers as the whole text', () => {
    // Many 64 KiB chunks, with a line longer than a chunk (the buffer grows), multi-byte characters on both sides
    // of chunk ends, CRLF and blank lines: whatever the chunk boundaries, the events and every line number must be
    // what parsing the whole text gives.
    const lines: string[] = [];
    for (let i = 0; i < 12_000; i++) {
      const value = i === 7_000 ? 'é'.repeat(1_200_000) : `v${i}-€😀`.repeat(1 + (i % 9));
      lines.push(JSON.stringify({ process: i, type: 'invoke', f: 'put', key: `ключ${i % 7}`, value, time: i }));
      if (i % 1_000 === 0) lines.push('');
    }
    const body = lines.map((l, i) => (i % 3 === 0 ? `${l}\r` : l)).join('\n');
    for (const [name, t] of [
      ['chunks.jsonl', `${body}\n`],
      ['chunks-no-final-newline.jsonl', body],
    ] as const) {
      const path = file(name, t);
      expect(readHistoryFile(path)).toEqual(parseHistory(t));
      // The line number of an error after everything else: every chunk's lines were counted.
      const bad = file(`bad-${name}`, `${t}${t.endsWith('\n') ? '' : '\n'}\n{"process":`);
      const expected = t.split('\n').length + (t.endsWith('\n') ? 1 : 2);
      expect(() => readHistoryFile(bad)).toThrow(new RegExp(`^history line ${expected}: not JSON`));
    }
  });

  it('reports the file line of a pairing error and of a malformed line, whichever comes first', () => {
    const inv = '{"process":1,"type":"invoke","f":"get","key":"k","time":1}';
    const orphan = '{"process":2,"type":"ok","f":"get","key":"k","value":null,"time":2}';
    const err = (text: string): HistoryFormatError => {
      try {
        readOperationsFile(file('bad.jsonl', text));
      } catch (e) {
        if (e instanceof HistoryFormatError) return e;
      }
      throw new Error('no HistoryFormatError');
    };
    expect(err(`${inv}\n\n${orphan}\nnot json\n`).message).toBe(
      'history line 3: process 2 completed an operation it never invoked',
    );
    expect(err(`${inv}\nnot json\n${orphan}\n`).line).toBe(2);
    expect(readOperationsFile(file('open.jsonl', `${inv}\n`))[0].status).toBe('info');
  });
});
