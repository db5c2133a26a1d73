/** HPACK: the decoder against RFC 7541 Appendix C's test vectors, the Huffman code, the static-table encoder. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeHeaderBlock,
  type HeaderField,
  HpackDecoder,
  HpackError,
  huffmanCode,
  huffmanDecode,
  huffmanEncode,
} from '../src/index.js';

const bytes = (hex: string): Buffer => Buffer.from(hex.replace(/\s+/g, ''), 'hex');

/** Decodes `blocks` in order on one decoder, checking each block's fields and the table after it (newest first). */
function run(
  decoder: HpackDecoder,
  steps: { block: string; fields: HeaderField[]; table: HeaderField[]; size: number }[],
): void {
  for (const [i, step] of steps.entries()) {
    expect(decoder.decode(bytes(step.block)), `block ${i + 1}`).toEqual(step.fields);
    expect(decoder.entries, `table after block ${i + 1}`).toEqual(step.table);
    expect(decoder.tableSize, `table size after block ${i + 1}`).toBe(step.size);
  }
}

// RFC 7541 C.3 and C.4: the same three requests, without and with Huffman coding.
const request1: HeaderField[] = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/'],
  [':authority', 'www.example.com'],
];
const request2: HeaderField[] = [...request1, ['cache-control', 'no-cache']];
const request3: HeaderField[] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/index.html'],
  [':authority', 'www.example.com'],
  ['custom-key', 'custom-value'],
];
const requestTables = {
  t1: [[':authority', 'www.example.com']] as HeaderField[],
  t2: [
    ['cache-control', 'no-cache'],
    [':authority', 'www.example.com'],
  ] as HeaderField[],
  t3: [
    ['custom-key', 'custom-value'],
    ['cache-control', 'no-cache'],
    [':authority', 'www.example.com'],
  ] as HeaderField[],
};

// RFC 7541 C.5 and C.6: three responses with SETTINGS_HEADER_TABLE_SIZE 256, so entries get evicted.
const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const date2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const location = 'https://www.example.com';
const cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const response1: HeaderField[] = [
  [':status', '302'],
  ['cache-control', 'private'],
  ['date', date1],
  ['location', location],
];
const response2: HeaderField[] = [[':status', '307'], ...response1.slice(1)];
const response3: HeaderField[] = [
  [':status', '200'],
  ['cache-control', 'private'],
  ['date', date2],
  ['location', location],
  ['content-encoding', 'gzip'],
  ['set-cookie', cookie],
];
const responseTables = {
  t1: [
    ['location', location],
    ['date', date1],
    ['cache-control', 'private'],
    [':status', '302'],
  ] as HeaderField[],
  // :status 302 evicted to make room for :status 307.
  t2: [
    [':status', '307'],
    ['location', location],
    ['date', date1],
    ['cache-control', 'private'],
  ] as HeaderField[],
  t3: [
    ['set-cookie', cookie],
    ['content-encoding', 'gzip'],
    ['date', date2],
  ] as HeaderField[],
};

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.2: one literal with indexing, without indexing, never indexed, and one indexed field', () => {
    run(new HpackDecoder(), [
      {
        block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
        fields: [['custom-key', 'custom-header']],
        table: [['custom-key', 'custom-header']],
        size: 55,
      },
    ]);
    run(new HpackDecoder(), [
      { block: '040c 2f73 616d 706c 652f 7061 7468', fields: [[':path', '/sample/path']], table: [], size: 0 },
    ]);
    run(new HpackDecoder(), [
      { block: '1008 7061 7373 776f 7264 0673 6563 7265 74', fields: [['password', 'secret']], table: [], size: 0 },
    ]);
    run(new HpackDecoder(), [{ block: '82', fields: [[':method', 'GET']], table: [], size: 0 }]);
  });

  it('C.3: requests without Huffman coding, sharing a dynamic table', () => {
    run(new HpackDecoder(), [
      {
        block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        fields: request1,
        table: requestTables.t1,
        size: 57,
      },
      { block: '8286 84be 5808 6e6f 2d63 6163 6865', fields: request2, table: requestTables.t2, size: 110 },
      {
        block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
        fields: request3,
        table: requestTables.t3,
        size: 164,
      },
    ]);
  });

  it('C.4: the same requests with Huffman coding', () => {
    run(new HpackDecoder(), [
      { block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', fields: request1, table: requestTables.t1, size: 57 },
      { block: '8286 84be 5886 a8eb 1064 9cbf', fields: request2, table: requestTables.t2, size: 110 },
      {
        block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
        fields: request3,
        table: requestTables.t3,
        size: 164,
      },
    ]);
  });

  it('C.5: responses without Huffman coding, a 256-octet table, eviction', () => {
    run(new HpackDecoder(256), [
      {
        block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
        fields: response1,
        table: responseTables.t1,
        size: 222,
      },
      { block: '4803 3330 37c1 c0bf', fields: response2, table: responseTables.t2, size: 222 },
      {
        block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
        fields: response3,
        table: responseTables.t3,
        size: 215,
      },
    ]);
  });

  it('C.6: the same responses with Huffman coding', () => {
    run(new HpackDecoder(256), [
      {
        block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
        fields: response1,
        table: responseTables.t1,
        size: 222,
      },
      { block: '4883 640e ffc1 c0bf', fields: response2, table: responseTables.t2, size: 222 },
      {
        block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
        fields: response3,
        table: responseTables.t3,
        size: 215,
      },
    ]);
  });
});

describe('HPACK decoder: table size updates and errors', () => {
  it('applies a size update at the start of a block, evicting what no longer fits; 0 empties the table', () => {
    const d = new HpackDecoder();
    d.decode(bytes('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')); // 55 octets
    d.decode(bytes('4004 6b65 7931 0176')); // "key1: v" = 4 + 1 + 32 = 37 octets
    expect(d.tableSize).toBe(92);
    // 0x3f 0x1a = size update to 31 + 26 = 57: the older, 55-octet entry goes.
    expect(d.decode(bytes('3f1a 82'))).toEqual([[':method', 'GET']]);
    expect(d.entries).toEqual([['key1', 'v']]);
    expect(d.decode(bytes('20'))).toEqual([]);
    expect(d.tableSize).toBe(0);
    expect(() => d.decode(bytes('be'))).toThrow(/beyond the dynamic table/);
  });

  it('rejects malformed blocks with HpackError', () => {
    const bad: [string, RegExp][] = [
      ['80', /index 0/],
      ['ff00', /beyond the dynamic table/], // index 127
      ['82 3f1a', /size update after a header field/],
      ['3fe21f', /exceeds the advertised 4096/], // size update to 4065 + 31 = ... > 4096
      ['ffffffffffff0f', /integer too large/],
      ['ff', /truncated integer/],
      ['0003 6162', /runs past the header block/],
      ['0081 ff', /padding of 8 bits|not the EOS prefix/], // one all-ones octet: an EOS prefix 8 bits long
      ['0081 00', /not the EOS prefix/], // '0' (00000) then 000 padding
      ['0084 ffff ffff', /EOS/], // 30 ones = EOS
    ];
    for (const [hex, why] of bad) {
      expect(() => new HpackDecoder().decode(bytes(hex)), hex).toThrow(HpackError);
      expect(() => new HpackDecoder().decode(bytes(hex)), hex).toThrow(why);
    }
  });
});

describe('Huffman code (RFC 7541 Appendix B)', () => {
  it('derives the codes of Appendix B from the code lengths', () => {
    // [symbol, code, bits] from the RFC's table, across the lengths.
    const rows: [number, number, number][] = [
      [0, 0x1ff8, 13],
      [1, 0x7fffd8, 23],
      [9, 0xffffea, 24],
      [10, 0x3ffffffc, 30],
      [32, 0x14, 6],
      [48, 0x0, 5],
      [92, 0x7fff0, 19],
      [116, 0x9, 5],
      [127, 0xffffffc, 28],
      [128, 0xfffe6, 20],
      [200, 0x3ffffe2, 26],
      [255, 0x3ffffee, 26],
      [256, 0x3fffffff, 30],
    ];
    for (const [sym, code, bits] of rows) expect(huffmanCode(sym), `symbol ${sym}`).toEqual([code, bits]);
  });

  it('round-trips any octets', () => {
    const seed = process.env.LOADGEN_SEED ? Number(process.env.LOADGEN_SEED) : (Date.now() ^ 0x5eed) | 0;
    try {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (a) => {
          const data = Buffer.from(a);
          const enc = huffmanEncode(data);
          expect(huffmanDecode(enc, 0, enc.length)).toBe(data.toString('latin1'));
        }),
        { seed, numRuns: 300 },
      );
    } catch (e) {
      const replay = `LOADGEN_SEED=${seed} pnpm --filter @raft/loadgen exec vitest run test/hpack.test.ts -t "round-trips any octets"`;
      throw new Error(`property failed with seed ${seed}\nreplay: ${replay}\n${(e as Error).message}`);
    }
    // All 256 octets in one string: every code length.
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(huffmanDecode(huffmanEncode(all), 0, huffmanEncode(all).length)).toBe(all.toString('latin1'));
  });
});

describe('HPACK encoder (static table only)', () => {
  it('encodes the gRPC request headers as indexed fields and literals without indexing, no Huffman', () => {
    const block = encodeHeaderBlock([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/etcdserverpb.KV/Put'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ]);
    // 83 = :method POST, 86 = :scheme http, 04 = literal :path (index 4), 0f10 = literal content-type (index 31),
    // 00 = literal with a literal name.
    const path = Buffer.from('/etcdserverpb.KV/Put');
    const hex = (s: string) => Buffer.from(s).toString('hex');
    expect(block.toString('hex')).toBe(
      `8386${'04'}${path.length.toString(16)}${hex('/etcdserverpb.KV/Put')}` +
        `0f10${'10'}${hex('application/grpc')}${'00'}02${hex('te')}08${hex('trailers')}`,
    );
    // And the decoder reads it back without touching its table.
    const d = new HpackDecoder();
    expect(d.decode(block)).toEqual([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/etcdserverpb.KV/Put'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ]);
    expect(d.tableSize).toBe(0);
  });
});
