/**
 * JSON-RPC 2.0 itself, whatever carries it: parsing a text, checking each request, dispatching it, encoding the
 * answer (bounded by `maxClientOutputBytes`), and batches (at most `maxBatchRequests`, dispatched in slices across
 * event-loop turns so that a huge batch cannot starve the node's timers, answered together within the output
 * bound). Used by the TCP line handler (`client-lines.ts`), the WebSocket handler (`websocket.ts`) and HTTP POST
 * (`http-jsonrpc.ts`). Separate because it is the protocol, not a transport.
 *
 * @packageDocumentation
 */

import { type ApplyOutcome, ErrorCode, RpcError, toJsonText } from '@raft/runtime';
import type { Caller } from './auth.js';
import type { RpcDispatcher } from './rpc.js';

/** A batch is dispatched this many requests at a time, so a huge batch cannot starve the node's own timers. */
export const BATCH_SLICE_REQUESTS = 64;
/** ... and a slice also ends once it has taken this long (GetServerState is much dearer than an Apply). */
const BATCH_SLICE_MS = 4;
/** An answer shorter than this is never replaced by an `OUTPUT_LIMIT_EXCEEDED` error (it would not save anything). */
const SMALL_ANSWER_CHARS = 512;

/** The text of a JSON-RPC error response (`idText` is the request's id as JSON text). */
export function errorJson(idText: string, code: number, message: string, data?: unknown): string {
  const e = data === undefined ? { code, message } : { code, message, data };
  return `{"jsonrpc":"2.0","id":${idText},"error":${JSON.stringify(e)}}`;
}

/** The text of the JSON-RPC response to an outcome (an `OUTPUT_LIMIT_EXCEEDED` error if it cannot be encoded). */
export function outcomeJson(idText: string, o: ApplyOutcome): string {
  try {
    if (o.ok) return `{"jsonrpc":"2.0","id":${idText},"result":${o.json ?? toJsonText(o.output)}}`;
    return `{"jsonrpc":"2.0","id":${idText},"error":${JSON.stringify(o.error.toJSON())}}`;
  } catch (e) {
    // An output too large for one JavaScript string (RangeError) must cost this answer, not the process.
    return errorJson(
      idText,
      ErrorCode.OUTPUT_LIMIT_EXCEEDED,
      `the answer could not be encoded (${(e as Error).message}); the request was run but its answer is dropped`,
      { notApplied: false },
    );
  }
}

/** What the request handling needs to know about the connection a text came on. */
export interface ConnState {
  /** Requests dispatched on it and not answered yet (an idle timeout spares a connection that waits for them). */
  inflight: number;
  /** False once the connection is gone or closing: the rest of a sliced batch is then not dispatched. */
  alive(): boolean;
  /**
   * Who the connection authenticated as (an `Authenticate` call, or an HTTP `Authorization` header); unset or null
   * for an anonymous connection.
   */
  caller?: Caller | null;
}

/** The limits {@link JsonRpcHandler} applies. */
export interface JsonRpcLimits {
  /** Largest answer; a batch's answers count together. */
  readonly maxClientOutputBytes: number;
  /** Most requests in one batch. */
  readonly maxBatchRequests: number;
}

/** The default of the optional callbacks (one function, not one per request). */
const NOTHING = (): void => undefined;

/** Parses and answers JSON-RPC text (a request or a batch). */
export class JsonRpcHandler {
  constructor(
    private readonly d: RpcDispatcher,
    private readonly o: JsonRpcLimits,
  ) {}

  /**
   * Answer one JSON-RPC text. `reply` gets the response text (no newline), or is not called at all when there is
   * nothing to answer (notifications only). `dispatched` is called once every request in the text was handed to
   * the dispatcher: at once, except for a batch larger than one slice, whose rest is dispatched in later turns.
   * `silent` is called instead of `reply` once every request of a text that gets no answer (notifications only)
   * has run: HTTP needs that moment to send its `204 No Content`; the stream transports just say nothing.
   */
  handleText(
    text: string,
    reply: (response: string) => void,
    conn: ConnState = { inflight: 0, alive: () => true },
    dispatched: () => void = NOTHING,
    silent: () => void = NOTHING,
  ): void {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.PARSE_ERROR, `parse error: ${(e as Error).message}`));
      dispatched();
      return;
    }
    if (!Array.isArray(v)) {
      this.handleRequest(v, conn, (_idText, r) => {
        if (r !== null) reply(r);
        else silent();
      });
      dispatched();
      return;
    }
    if (v.length === 0) {
      this.d.counters.rpcErrors++;
      reply(errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: an empty batch'));
      dispatched();
      return;
    }
    if (v.length > this.o.maxBatchRequests) {
      this.refuseBatch(v, reply);
      dispatched();
      return;
    }
    const batch = v;
    const budget = this.o.maxClientOutputBytes;
    let parts: string[] = [];
    let partsChars = 2;
    let left = batch.length;
    const one = (idText: string, r: string | null) => {
      if (r !== null) {
        if (partsChars + r.length + 1 > budget && r.length > SMALL_ANSWER_CHARS) {
          // The answers together would exceed the limit: this one is replaced by a short error (the others that
          // fit are kept), so the batch still gets an answer for every request and no answer grows unbounded.
          r = errorJson(
            idText,
            ErrorCode.OUTPUT_LIMIT_EXCEEDED,
            `the batch's answers together exceed maxClientOutputBytes (${budget}): this request was run (a command was applied) but its answer is dropped; send smaller batches`,
            { notApplied: false, maxClientOutputBytes: budget },
          );
        }
        parts.push(r);
        partsChars += r.length + 1;
      }
      if (--left === 0) {
        if (parts.length === 0) {
          silent();
          return;
        }
        const all = parts;
        parts = [];
        reply(`[${all.join(',')}]`);
      }
    };
    let i = 0;
    const slice = () => {
      if (!conn.alive()) {
        dispatched();
        return;
      }
      const t0 = performance.now();
      const end = Math.min(batch.length, i + BATCH_SLICE_REQUESTS);
      while (i < end) {
        this.handleRequest(batch[i++], conn, one);
        if (performance.now() - t0 > BATCH_SLICE_MS) break;
      }
      if (i < batch.length) setImmediate(slice);
      else dispatched();
    };
    slice();
  }

  /** A batch above `maxBatchRequests`: none of it is run; every request with an id gets the error. */
  private refuseBatch(batch: unknown[], reply: (response: string) => void): void {
    const max = this.o.maxBatchRequests;
    const err = JSON.stringify({
      code: ErrorCode.INVALID_REQUEST,
      message: `invalid request: a batch of ${batch.length} requests exceeds maxBatchRequests (${max}); none was run, send smaller batches`,
      data: { notApplied: true, maxBatchRequests: max },
    });
    const parts: string[] = [];
    for (const req of batch) {
      this.d.counters.rpcRequests++;
      this.d.counters.rpcErrors++;
      const id = req !== null && typeof req === 'object' ? (req as { id?: unknown }).id : undefined;
      if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) {
        parts.push(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"error":${err}}`);
      }
    }
    reply(parts.length > 0 ? `[${parts.join(',')}]` : `{"jsonrpc":"2.0","id":null,"error":${err}}`);
  }

  private handleRequest(req: unknown, conn: ConnState, reply: (idText: string, r: string | null) => void): void {
    this.d.counters.rpcRequests++;
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      this.d.counters.rpcErrors++;
      reply('null', errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: expected a JSON-RPC 2.0 object'));
      return;
    }
    const r = req as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
    const hasId = 'id' in r;
    const id = r.id;
    const idOk = id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
    const idText = hasId && idOk ? JSON.stringify(id) : 'null';
    if (hasId && !idOk) {
      this.d.counters.rpcErrors++;
      reply(
        'null',
        errorJson('null', ErrorCode.INVALID_REQUEST, 'invalid request: id must be a string, a number or null'),
      );
      return;
    }
    if (r.jsonrpc !== '2.0') {
      this.d.counters.rpcErrors++;
      reply(idText, errorJson(idText, ErrorCode.INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"'));
      return;
    }
    if (typeof r.method !== 'string') {
      this.d.counters.rpcErrors++;
      reply(idText, errorJson(idText, ErrorCode.INVALID_REQUEST, 'invalid request: "method" must be a string'));
      return;
    }
    if (r.params !== undefined && (r.params === null || typeof r.params !== 'object')) {
      this.d.counters.rpcErrors++;
      reply(
        idText,
        errorJson(idText, ErrorCode.INVALID_PARAMS, 'invalid params: "params" must be an object or an array'),
      );
      return;
    }
    let answered = false;
    conn.inflight++;
    const done = (o: ApplyOutcome): void => {
      if (answered) return;
      answered = true;
      conn.inflight--;
      if (!o.ok) this.d.counters.rpcErrors++;
      if (!hasId) {
        reply(idText, null);
        return;
      }
      let text = outcomeJson(idText, o);
      if (text.length > this.o.maxClientOutputBytes) {
        text = errorJson(
          idText,
          ErrorCode.OUTPUT_LIMIT_EXCEEDED,
          `the answer (${text.length} bytes) exceeds maxClientOutputBytes (${this.o.maxClientOutputBytes}): the request was run (a command was applied) but its answer is dropped; ask for less at a time`,
          { notApplied: false, maxClientOutputBytes: this.o.maxClientOutputBytes },
        );
      }
      reply(idText, text);
    };
    if (r.method === 'Authenticate') this.authenticate(r.params, conn, done);
    else this.d.dispatch(r.method, r.params, done, conn.caller ?? null);
  }

  /**
   * `Authenticate {token}`: bind the connection to the token's caller (for every later request on it), or answer
   * `UNAUTHENTICATED` (the connection stays as it was).
   */
  private authenticate(params: unknown, conn: ConnState, done: (o: ApplyOutcome) => void): void {
    const token =
      params !== null && typeof params === 'object' && !Array.isArray(params)
        ? (params as { token?: unknown }).token
        : undefined;
    const c = this.d.authenticate(token);
    if (c instanceof RpcError) {
      done({ ok: false, error: c });
      return;
    }
    conn.caller = c;
    done({ ok: true, output: { name: c.name, role: c.role } });
  }
}
