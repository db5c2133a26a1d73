/**
 * JSON-RPC over TCP lines: one request (or batch) per line, answers as lines in request order. Lines are bounded
 * (`maxLineBytes`; a longer one is skipped with an error), answers of one turn are joined into few writes, reading
 * pauses while the client does not read its answers, and a connection whose unsent answers exceed
 * `maxClientOutputBytes` is closed with an `OUTPUT_LIMIT_EXCEEDED` line. Separate from the WebSocket and HTTP
 * handlers because the line framing and the per-connection output bounds are specific to raw TCP.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { ErrorCode } from '@raft/runtime';
import { closeWith, refuseConnection, watchIdle } from './client-connection.js';
import { type ConnState, errorJson } from './jsonrpc.js';
import type { ClientContext } from './rpc.js';

const NL = 0x0a;
/** Answers of one connection are joined into writes of about this many characters (not one string per turn). */
const WRITE_SLICE_CHARS = 1024 * 1024;

/** Serve JSON-RPC lines on a socket; `head` holds bytes already read from it. */
export function serveLines(socket: Socket, head: Buffer, c: ClientContext): void {
  if (c.sockets.size >= c.o.maxClientConnections) {
    refuseConnection(socket, false, c.o);
    return;
  }
  c.d.counters.clientConnections++;
  c.sockets.add(socket);
  socket.setNoDelay(true);
  const max = c.o.maxLineBytes;
  const limit = c.o.maxClientOutputBytes;
  let partial: Buffer[] = [];
  let partialLen = 0;
  let skipping = false;
  let out: string[] = [];
  let outChars = 0;
  let flushScheduled = false;
  /** Reading is paused because the client does not read its answers. */
  let outputPaused = false;
  /** A batch is being dispatched in slices; lines after it wait in `held` so requests keep their order. */
  let busy = false;
  let held: string[] = [];
  let closing = false;
  const conn: ConnState = { inflight: 0, alive: () => !closing && !socket.destroyed };
  const updateFlow = () => {
    if (socket.destroyed) return;
    if (outputPaused || busy || closing) socket.pause();
    else socket.resume();
  };
  const write = () => {
    if (out.length === 0) return;
    const text = `${out.join('\n')}\n`;
    out = [];
    outChars = 0;
    socket.write(text);
  };
  const flush = () => {
    flushScheduled = false;
    if (socket.destroyed) {
      out = [];
      outChars = 0;
      return;
    }
    try {
      write();
    } catch (e) {
      // Nothing a client sends may take the process down: drop this connection instead.
      out = [];
      outChars = 0;
      c.o.logger.error('writing answers failed; closing the client connection', { error: (e as Error).message });
      closing = true;
      socket.destroy();
      return;
    }
    if (!outputPaused && socket.writableLength > c.o.maxOutputBytes) {
      // The client does not read its answers: stop reading its requests until it does.
      outputPaused = true;
      updateFlow();
      socket.once('drain', () => {
        outputPaused = false;
        updateFlow();
      });
    }
  };
  const overflow = () => {
    closing = true;
    held = [];
    updateFlow();
    c.o.logger.warn('closing a client connection: its unsent answers exceed maxClientOutputBytes', { limit });
    try {
      write(); // What was queued fits the limit: it goes before the error line.
    } catch {
      out = [];
      outChars = 0;
    }
    closeWith(
      socket,
      errorJson(
        'null',
        ErrorCode.OUTPUT_LIMIT_EXCEEDED,
        `connection closed: its unsent answers exceed maxClientOutputBytes (${limit}); read answers as they come, or pipeline fewer or smaller requests. Requests still in progress may be applied.`,
        { notApplied: false, maxClientOutputBytes: limit },
      ),
    );
  };
  const reply = (text: string) => {
    if (closing || socket.destroyed) return;
    const queued = socket.writableLength + outChars;
    // The first answer on an idle connection always goes (single answers are bounded already).
    if (queued > 0 && queued + text.length + 1 > limit) {
      overflow();
      return;
    }
    out.push(text);
    outChars += text.length + 1;
    if (outChars >= WRITE_SLICE_CHARS) flush();
    else if (!flushScheduled) {
      flushScheduled = true;
      c.scheduleFlush(flush);
    }
  };
  const tooLong = () => {
    c.d.counters.rpcRequests++;
    c.d.counters.rpcErrors++;
    reply(
      errorJson(
        'null',
        ErrorCode.INVALID_REQUEST,
        `invalid request: the line exceeds maxLineBytes (${max}); it was skipped`,
      ),
    );
  };
  const run = (text: string) => {
    busy = true;
    let sync = true;
    c.rpc.handleText(text, reply, conn, () => {
      busy = false;
      if (!sync) pump();
    });
    sync = false;
  };
  const pump = () => {
    // `held` holds at most the lines of the chunk read before the socket paused, so shift() stays cheap.
    while (!busy && !closing && held.length > 0) run(held.shift() as string);
    updateFlow();
  };
  const line = (buf: Buffer) => {
    let end = buf.length;
    if (end > 0 && buf[end - 1] === 0x0d) end--;
    const text = buf.toString('utf8', 0, end);
    if (text.trim().length === 0) return;
    if (busy) {
      held.push(text);
      updateFlow();
    } else run(text);
  };
  const onData = (chunk: Buffer) => {
    if (closing) return;
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      if (nl < 0) {
        if (!skipping) {
          const rest = chunk.subarray(start);
          partialLen += rest.length;
          if (partialLen > max) {
            partial = [];
            partialLen = 0;
            skipping = true;
            tooLong();
          } else partial.push(rest);
        }
        return;
      }
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (skipping) {
        skipping = false;
        continue;
      }
      if (partial.length > 0) {
        const total = partialLen + piece.length;
        const whole = Buffer.concat([...partial, piece], total);
        partial = [];
        partialLen = 0;
        if (total > max) tooLong();
        else line(whole);
      } else if (piece.length > max) tooLong();
      else line(piece);
    }
  };
  socket.on('data', onData);
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closing = true;
    held = [];
    c.sockets.delete(socket);
    c.d.counters.clientConnections--;
  });
  watchIdle(socket, conn, () => busy || outChars > 0, c.o);
  if (head.length > 0) onData(head);
}
