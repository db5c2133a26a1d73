/**
 * JSON-RPC over WebSocket: one request (or batch) per message, answered in order, with the same idle timeout and
 * output bound as TCP lines (a WebSocket whose unsent answers exceed `maxClientOutputBytes` is closed with an
 * `OUTPUT_LIMIT_EXCEEDED` message). The upgrade itself is in `http.ts`. Separate because message framing and flow
 * control come from the `ws` library here, not from our own line splitting.
 *
 * @packageDocumentation
 */

import type { Socket } from 'node:net';
import { ErrorCode } from '@raft/runtime';
import type { WebSocket } from 'ws';
import { CLOSE_GRACE_MS } from './client-connection.js';
import { type ConnState, errorJson } from './jsonrpc.js';
import type { ClientContext } from './rpc.js';

/** Serve JSON-RPC messages on a WebSocket that `http.ts` accepted on `socket`. */
export function serveWebSocket(
  ws: WebSocket,
  socket: Socket,
  conn: ConnState,
  state: { busy: boolean },
  c: ClientContext,
): void {
  // ws switches the socket's timeout off when it takes the socket over; the idle rule applies to WebSockets too.
  if (c.o.clientIdleTimeoutMs > 0) socket.setTimeout(c.o.clientIdleTimeoutMs);
  const limit = c.o.maxClientOutputBytes;
  let closing = false;
  conn.alive = () => !closing && ws.readyState === ws.OPEN;
  let held: string[] = [];
  ws.on('error', (e) => c.o.logger.debug?.('websocket error', { error: e.message }));
  ws.on('close', () => {
    closing = true;
    held = [];
  });
  const reply = (r: string) => {
    if (closing || ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > 0 && ws.bufferedAmount + r.length > limit) {
      closing = true;
      held = [];
      c.o.logger.warn('closing a WebSocket: its unsent answers exceed maxClientOutputBytes', { limit });
      ws.send(
        errorJson(
          'null',
          ErrorCode.OUTPUT_LIMIT_EXCEEDED,
          `connection closed: its unsent answers exceed maxClientOutputBytes (${limit}); read answers as they come, or pipeline fewer or smaller requests. Requests still in progress may be applied.`,
          { notApplied: false, maxClientOutputBytes: limit },
        ),
      );
      ws.close(1008, 'output limit exceeded');
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      return;
    }
    ws.send(r);
  };
  const run = (text: string) => {
    state.busy = true;
    let sync = true;
    c.rpc.handleText(text, reply, conn, () => {
      state.busy = false;
      if (!sync) pump();
    });
    sync = false;
  };
  const pump = () => {
    while (!state.busy && !closing && held.length > 0) run(held.shift() as string);
    if (!state.busy && !closing) ws.resume();
  };
  ws.on('message', (data, isBinary) => {
    void isBinary;
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    if (state.busy) {
      // A batch is being dispatched in slices: later messages wait so requests keep their order.
      held.push(text);
      ws.pause();
    } else run(text);
  });
}
