/**
 * The peer wire format: frames of a 4-byte big-endian length followed by that many bytes of MessagePack.
 *
 * @packageDocumentation
 */

import { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack';
import { PackedEntries, unpackEntries } from './packed-entries.js';

/** The 4 bytes a peer connection starts with (then {@link PEER_VERSION}), so one port can serve every protocol. */
export const PEER_MAGIC: Buffer = Buffer.from('RAFT', 'latin1');

/**
 * The peer protocol version byte sent after {@link PEER_MAGIC}. Version 2 carries AppendEntries' entries as
 * `PackedEntries` (packed-entries.ts; version 1 sent them as MessagePack maps).
 */
export const PEER_VERSION = 2;

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/** Raised when a frame is larger than the configured maximum, or its payload is not valid MessagePack. */
export class FrameError extends Error {
  /** `FRAME_TOO_LARGE` or `BAD_PAYLOAD`. */
  readonly code: 'FRAME_TOO_LARGE' | 'BAD_PAYLOAD';

  constructor(code: 'FRAME_TOO_LARGE' | 'BAD_PAYLOAD', message: string) {
    super(message);
    this.name = 'FrameError';
    this.code = code;
  }
}

/** The MessagePack extension type of {@link PackedEntries}. */
const PACKED_ENTRIES_EXT = 1;

const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: PACKED_ENTRIES_EXT,
  encode: (x: unknown) => (x instanceof PackedEntries ? x.bytes : null),
  decode: (data: Uint8Array) => unpackEntries(data),
});

const encoder = new Encoder({ ignoreUndefined: true, extensionCodec });

/**
 * Encode `value` as one frame (length prefix plus MessagePack payload), or return `null` if the payload would
 * exceed `maxFrameBytes` (the caller splits it).
 */
export function encodeFrame(value: unknown, maxFrameBytes: number): Buffer | null {
  // The shared-buffer variant avoids one copy: the bytes are copied once, into the frame.
  const payload = encoder.encodeSharedRef(value);
  if (payload.byteLength > maxFrameBytes) return null;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  out.writeUInt32BE(payload.byteLength, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into frame payloads. Feed it socket chunks with {@link FrameDecoder.push}; it returns the
 * complete payloads and keeps the remainder. Chunks of a large frame are collected in a list and copied once, so
 * a 1 MiB snapshot chunk arriving in 64 KiB pieces costs one copy, not sixteen.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly decoder: Decoder;

  /** @param maxFrameBytes - the largest payload accepted; a larger length prefix is an error. */
  constructor(readonly maxFrameBytes: number) {
    // Limits make a hostile payload fail fast instead of allocating huge containers.
    this.decoder = new Decoder({
      maxStrLength: maxFrameBytes,
      maxBinLength: maxFrameBytes,
      maxArrayLength: maxFrameBytes,
      maxMapLength: maxFrameBytes,
      maxExtLength: maxFrameBytes,
      extensionCodec,
    });
  }

  /** Bytes received but not yet returned as a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Add bytes; returns every frame payload completed by them.
   *
   * @throws FrameError when a length prefix exceeds the maximum (the stream cannot be trusted after that).
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(b);
    this.buffered += b.length;
    const out: Uint8Array[] = [];
    while (this.buffered >= FRAME_HEADER_BYTES) {
      if (this.chunks[0].length < FRAME_HEADER_BYTES) this.merge();
      const len = this.chunks[0].readUInt32BE(0);
      if (len > this.maxFrameBytes) {
        this.chunks = [];
        this.buffered = 0;
        throw new FrameError('FRAME_TOO_LARGE', `frame of ${len} bytes exceeds maxFrameBytes (${this.maxFrameBytes})`);
      }
      const total = FRAME_HEADER_BYTES + len;
      if (this.buffered < total) break;
      if (this.chunks[0].length < total) this.merge();
      const head = this.chunks[0];
      out.push(head.subarray(FRAME_HEADER_BYTES, total));
      if (head.length === total) this.chunks.shift();
      else this.chunks[0] = head.subarray(total);
      this.buffered -= total;
    }
    return out;
  }

  private merge(): void {
    this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }

  /**
   * Decode one payload returned by {@link FrameDecoder.push}.
   *
   * @throws FrameError if it is not exactly one valid MessagePack value.
   */
  decode(payload: Uint8Array): unknown {
    try {
      return this.decoder.decode(payload);
    } catch (e) {
      throw new FrameError('BAD_PAYLOAD', `invalid MessagePack payload: ${(e as Error)?.message ?? String(e)}`);
    }
  }
}
