import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkLine, encodeLine, entryBody, LineBuffer, toLogRecord } from '../src/format.js';
import { crc32 } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('format', () => {
  it('crc32 matches the standard check value, in pieces and on long inputs', () => {
    const check = Buffer.from('123456789');
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32(check, 4, 9, crc32(check, 0, 4))).toBe(0xcbf43926);
    // Long inputs take the native path: it must agree with the table loop run in short pieces.
    const big = Buffer.alloc(5000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 131) & 0xff;
    let pieces = 0;
    for (let at = 0; at < big.length; at += 100) pieces = crc32(big, at, Math.min(big.length, at + 100), pieces);
    expect(crc32(big)).toBe(pieces);
    expect(crc32(big, 10, 4000, crc32(big, 0, 10))).toBe(crc32(big, 0, 4000));
  });

  it('the example lines in docs/storage.md are real, valid records', () => {
    const doc = readFileSync(join(here, '../../../docs/storage.md'), 'utf8');
    const lines = doc.split('\n').filter((l) => l.startsWith('{"crc":'));
    expect(lines.length).toBeGreaterThanOrEqual(5);
    for (const line of lines) {
      const b = Buffer.from(line);
      const checked = checkLine(b, 0, b.length);
      expect(typeof checked, line).toBe('object');
      expect(typeof toLogRecord(checked as { [k: string]: unknown }), line).toBe('object');
    }
  });

  it('detects any single changed byte of a line', () => {
    const line = encodeLine('{"rec":"hardState","term":12,"votedFor":"ü-node"}');
    const body = line.subarray(0, line.length - 1);
    expect(typeof checkLine(body, 0, body.length)).toBe('object');
    for (let i = 0; i < body.length; i++) {
      for (const x of [0x01, 0x20, 0x80]) {
        const copy = Buffer.from(body);
        copy[i] ^= x;
        expect(typeof checkLine(copy, 0, copy.length), `byte ${i} ^ ${x}`).toBe('string');
      }
    }
  });

  it('the direct encoder of byte commands writes exactly the line the generic encoder writes', () => {
    // Every length up to 400 covers the in-place base64 loop (all three remainders) and the native one above it;
    // the numbers cover each digit count's edges up to the largest safe integer.
    const numbers = [0, 1, 9, 10, 99, 100, 12345, 2 ** 31, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER];
    const backing = new Uint8Array(420);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 151 + 3) & 0xff;
    const direct = new LineBuffer(64);
    const generic = new LineBuffer(64);
    for (let len = 0; len <= 400; len++) {
      // A view at an odd offset into a larger buffer, as commands sliced out of network frames are.
      const bytes = backing.subarray(len % 7, (len % 7) + len);
      const index = numbers[len % numbers.length] || 1;
      const term = numbers[(len * 3) % numbers.length];
      direct.appendCommandBytes(index, term, bytes);
      const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
      generic.appendRecord(entryBody(index, term, 'command', `{"$bytes":"${b64}"}`));
      expect(direct.length, `length ${len}`).toBe(generic.length);
    }
    expect(Buffer.compare(direct.bytes(), generic.bytes())).toBe(0);
    const first = direct.bytes();
    const nl = first.indexOf(0x0a);
    expect(typeof checkLine(first, 0, nl)).toBe('object');
  });

  it('the direct encoder of JSON commands writes exactly the line the generic encoder writes', () => {
    // ASCII, escapes, multi-byte UTF-8 and surrogate pairs, at the digit-count edges of index and term.
    const numbers = [0, 1, 9, 10, 99, 100, 12345, 2 ** 31, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER];
    const texts = [
      '{}',
      '{"input":"{\\"Put\\":[\\"k\\",1]}"}',
      '"é\u2028日本"',
      '"😀😀"',
      JSON.stringify({ input: 'x'.repeat(300) }),
    ];
    const direct = new LineBuffer(16);
    const generic = new LineBuffer(16);
    for (let i = 0; i < 50; i++) {
      const index = numbers[i % numbers.length] || 1;
      const term = numbers[(i * 3) % numbers.length];
      const json = texts[i % texts.length];
      direct.appendCommandJson(index, term, json);
      generic.appendRecord(entryBody(index, term, 'command', json));
      expect(direct.length, `line ${i}`).toBe(generic.length);
    }
    expect(Buffer.compare(direct.bytes(), generic.bytes())).toBe(0);
    const first = direct.bytes();
    expect(typeof checkLine(first, 0, first.indexOf(0x0a))).toBe('object');
  });
});
