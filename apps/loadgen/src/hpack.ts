/**
 * HPACK (RFC 7541), as much as an HTTP/2 client of etcd needs: a full decoder for the server's response headers and
 * trailers (static and dynamic tables, table size updates and eviction, integers, string literals, Huffman-coded
 * strings), and an encoder for request header blocks that uses the static table only and never Huffman-codes, so
 * the client keeps no encoder state and each block can be computed once per path. Servers (Go's, nghttp2's) index
 * and Huffman-code what they send, so decoding must be complete; encoding can stay this simple.
 */

/** A header block could not be decoded: a COMPRESSION_ERROR in HTTP/2 terms, fatal for the connection. */
export class HpackError extends Error {
  /** Always `BAD_HPACK`, so callers can tell it from other errors without parsing the message. */
  readonly code = 'BAD_HPACK' as const;

  constructor(message: string) {
    super(message);
    this.name = 'HpackError';
  }
}

/** One decoded header field; names and values are `latin1` strings, so every octet maps to one character. */
export type HeaderField = readonly [name: string, value: string];

// RFC 7541 Appendix A. Index 1 is the first entry.
const STATIC_TABLE: readonly HeaderField[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61

// ---------------------------------------------------------------------------------------------------------------
// Huffman (RFC 7541 Appendix B). The code is canonical: codes of one length are consecutive and sorted by symbol,
// and each length's first code follows from the previous length's last. So the bit lengths of the 257 symbols
// (256 octets, then EOS) are all the data there is; the codes are derived from them below.

// biome-ignore format: the 257 code lengths of RFC 7541 Appendix B, 32 symbols a row
const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Canonical-code decoding tables: per length, the first code, how many codes and where their symbols start. */
const FIRST_CODE = new Int32Array(MAX_CODE_LENGTH + 1);
const CODE_COUNT = new Int32Array(MAX_CODE_LENGTH + 1);
const SYMBOL_START = new Int32Array(MAX_CODE_LENGTH + 1);
/** The symbols sorted by (code length, symbol): the order of their codes. */
const SYMBOLS = new Uint16Array(257);
/** Each symbol's code, right-aligned (for tests and for {@link huffmanEncode}). */
const CODES = new Uint32Array(257);
{
  for (const len of HUFFMAN_LENGTHS) CODE_COUNT[len]++;
  let code = 0;
  let start = 0;
  for (let len = 1; len <= MAX_CODE_LENGTH; len++) {
    FIRST_CODE[len] = code;
    SYMBOL_START[len] = start;
    code = (code + CODE_COUNT[len]) * 2;
    start += CODE_COUNT[len];
  }
  const next = Int32Array.from(SYMBOL_START);
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_LENGTHS[sym];
    const rank = next[len]++ - SYMBOL_START[len];
    SYMBOLS[SYMBOL_START[len] + rank] = sym;
    CODES[sym] = FIRST_CODE[len] + rank;
  }
}

/** The Huffman code of `symbol` (0-255, or 256 for EOS) as `[code, bit length]`, the code right-aligned. */
export function huffmanCode(symbol: number): [code: number, bits: number] {
  return [CODES[symbol], HUFFMAN_LENGTHS[symbol]];
}

/** Huffman-encodes `data` (padding the last octet with the EOS prefix, all ones), for tests of the decoder. */
export function huffmanEncode(data: Uint8Array): Buffer {
  let bits = 0;
  for (const b of data) bits += HUFFMAN_LENGTHS[b];
  const out = Buffer.alloc(Math.ceil(bits / 8));
  let acc = 0; // pending bits, fewer than 8 after each symbol is flushed
  let n = 0;
  let p = 0;
  for (const b of data) {
    let len = HUFFMAN_LENGTHS[b];
    const code = CODES[b];
    // Feed the code in pieces of at most 8 bits so `acc` never exceeds 16 bits (JS bit ops are 32-bit).
    while (len > 0) {
      const take = Math.min(8, len);
      acc = (acc << take) | ((code >>> (len - take)) & ((1 << take) - 1));
      n += take;
      len -= take;
      while (n >= 8) {
        out[p++] = (acc >>> (n - 8)) & 0xff;
        n -= 8;
      }
      acc &= (1 << n) - 1;
    }
  }
  if (n > 0) out[p] = ((acc << (8 - n)) | ((1 << (8 - n)) - 1)) & 0xff;
  return out;
}

/**
 * Decodes `buf[start, end)` as a Huffman-coded string (RFC 7541 section 5.2): canonical decoding, one bit at a time
 * (header values are short, and Go's and nghttp2's encoders index repeated fields, so this runs rarely). Throws
 * {@link HpackError} on an EOS symbol, padding longer than 7 bits, or padding that is not the EOS prefix.
 */
export function huffmanDecode(buf: Uint8Array, start: number, end: number): string {
  // Every symbol takes at least 5 bits: this bounds the output.
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let o = 0;
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      const k = code - FIRST_CODE[len];
      if (k >= 0 && k < CODE_COUNT[len]) {
        const sym = SYMBOLS[SYMBOL_START[len] + k];
        if (sym === EOS) throw new HpackError('Huffman string contains EOS');
        out[o++] = sym;
        code = 0;
        len = 0;
      } else if (len >= MAX_CODE_LENGTH) throw new HpackError('invalid Huffman code');
    }
  }
  if (len > 7) throw new HpackError(`Huffman padding of ${len} bits (at most 7 allowed)`);
  if (code !== (1 << len) - 1) throw new HpackError('Huffman padding is not the EOS prefix');
  return out.toString('latin1', 0, o);
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder

/** Entry overhead of RFC 7541 section 4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;

/**
 * An HPACK decoder: one per HTTP/2 connection, fed every header block the peer sends on it, in order (also blocks
 * of streams the caller no longer cares about: skipping one would desynchronise the dynamic table).
 */
export class HpackDecoder {
  /** Dynamic table, oldest first: index 62 is the last element. */
  private readonly table: HeaderField[] = [];
  private size = 0;
  private maxSize: number;

  /**
   * @param maxTableSize the SETTINGS_HEADER_TABLE_SIZE this endpoint advertised (default 4096, HTTP/2's initial
   *   value): the most a dynamic table size update may ask for.
   */
  constructor(private readonly maxTableSize = 4096) {
    this.maxSize = maxTableSize;
  }

  /** Current size of the dynamic table in RFC 7541 octets (entries' name + value + 32 each). */
  get tableSize(): number {
    return this.size;
  }

  /** The dynamic table, newest first (index 62 first), for tests. */
  get entries(): readonly HeaderField[] {
    return [...this.table].reverse();
  }

  /** Decodes one complete header block (HEADERS + CONTINUATION payloads joined). Throws {@link HpackError}. */
  decode(buf: Uint8Array, start = 0, end = buf.length): HeaderField[] {
    const fields: HeaderField[] = [];
    let p = start;
    // An integer with an N-bit prefix (RFC 7541 section 5.1); `p` points at the prefix octet.
    const integer = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let v = buf[p++] & mask;
      if (v < mask) return v;
      let m = 0;
      for (;;) {
        if (p >= end) throw new HpackError('truncated integer');
        const b = buf[p++];
        v += (b & 0x7f) * 2 ** m;
        m += 7;
        if (b < 0x80) return v;
        // No valid index, length or size needs more than 2^28: longer encodings are an attack or garbage.
        if (m > 28) throw new HpackError('integer too large');
      }
    };
    const string = (): string => {
      if (p >= end) throw new HpackError('truncated string');
      const huffman = (buf[p] & 0x80) !== 0;
      const len = integer(7);
      if (p + len > end) throw new HpackError(`string of ${len} octets runs past the header block`);
      const s = huffman
        ? huffmanDecode(buf, p, p + len)
        : Buffer.from(buf.buffer, buf.byteOffset + p, len).toString('latin1');
      p += len;
      return s;
    };
    let sawField = false;
    while (p < end) {
      const b = buf[p];
      if (b & 0x80) {
        // Indexed header field (section 6.1).
        fields.push(this.lookup(integer(7)));
        sawField = true;
      } else if (b & 0x40) {
        // Literal with incremental indexing (section 6.2.1).
        const index = integer(6);
        const name = index === 0 ? string() : this.lookup(index)[0];
        const field: HeaderField = [name, string()];
        this.add(field);
        fields.push(field);
        sawField = true;
      } else if (b & 0x20) {
        // Dynamic table size update (section 6.3): only at the start of a block (section 4.2).
        if (sawField) throw new HpackError('dynamic table size update after a header field');
        const size = integer(5);
        if (size > this.maxTableSize) {
          throw new HpackError(`table size update to ${size} exceeds the advertised ${this.maxTableSize}`);
        }
        this.maxSize = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001) (sections 6.2.2, 6.2.3): not added to the table.
        const index = integer(4);
        const name = index === 0 ? string() : this.lookup(index)[0];
        fields.push([name, string()]);
        sawField = true;
      }
    }
    return fields;
  }

  private lookup(index: number): HeaderField {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_COUNT) return STATIC_TABLE[index - 1];
    const d = index - STATIC_COUNT;
    if (d > this.table.length) {
      throw new HpackError(`index ${index} beyond the dynamic table (${this.table.length} entries)`);
    }
    return this.table[this.table.length - d];
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.maxSize) {
      const [n, v] = this.table.shift() as HeaderField;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }

  private add(field: HeaderField): void {
    const entrySize = field[0].length + field[1].length + ENTRY_OVERHEAD;
    this.evict(entrySize);
    // An entry larger than the whole table empties it and is not added (section 4.4).
    if (entrySize > this.maxSize) return;
    this.table.push(field);
    this.size += entrySize;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder: static table only, no Huffman.

/** Writes an HPACK integer with a `prefixBits`-bit prefix whose high bits are `flags` (section 5.1). */
function pushInteger(out: number[], flags: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let v = value - max;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function pushString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'latin1');
  pushInteger(out, 0, 7, bytes.length);
  for (const b of bytes) out.push(b);
}

/**
 * Encodes a request header block using the static table only: a field whose name and value are both in the static
 * table becomes one indexed octet; a field whose name is there becomes a literal without indexing with an indexed
 * name; anything else a literal without indexing with a literal name. No Huffman coding and no dynamic table, so the
 * encoder has no state and the bytes can be computed once and sent with every request.
 */
export function encodeHeaderBlock(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    let full = 0;
    let named = 0;
    for (let i = 0; i < STATIC_COUNT && full === 0; i++) {
      if (STATIC_TABLE[i][0] !== name) continue;
      if (STATIC_TABLE[i][1] === value) full = i + 1;
      else if (named === 0) named = i + 1;
    }
    if (full !== 0) pushInteger(out, 0x80, 7, full);
    else {
      pushInteger(out, 0x00, 4, named);
      if (named === 0) pushString(out, name);
      pushString(out, value);
    }
  }
  return Buffer.from(out);
}
