/** Reading JSON Lines: blank lines, CRLF line ends, and the line numbers of errors. */
import { describe, expect, it } from 'vitest';
import { parseHistory } from '../src/history.js';
import { HistoryFormatError } from '../src/types.js';

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
