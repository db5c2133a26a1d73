/**
 * The user's state machine interface, and the wrapper that makes commands exactly-once.
 *
 * @packageDocumentation
 */

import { decode, encode } from '@msgpack/msgpack';
import { ErrorCode, RpcError } from './errors.js';
import { after, type MaybePromise } from './sync.js';

/** How an input reaches {@link Machine.apply}: through the log, as a linearizable read, or as a local read. */
export type ApplyKind = 'Command' | 'Query' | 'LocalQuery';

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Canonical JSON text of a value: object keys sorted (at every depth), no whitespace, so two values are equal as
 * JSON exactly when their texts are equal (`{"a":1,"b":2}` and `{"b":2,"a":1}` give the same text). The key-value
 * store's compare-and-set and the linearizability checker compare values this way.
 *
 * `undefined`, where JSON has no such value (at the top, in an array, as an object member), counts as `null`, so
 * "no value recorded" and "absent" compare equal. Numbers, strings, booleans and `null` are written as
 * `JSON.stringify` writes them.
 *
 * @example
 * ```ts
 * canonicalJson({ b: [1, { d: 2, c: 3 }], a: null }); // '{"a":null,"b":[1,{"c":3,"d":2}]}'
 * ```
 *
 * @param v - a JSON value, or `undefined`
 * @returns its canonical JSON text
 */
export function canonicalJson(v: JsonValue | undefined): string {
  if (v === undefined || v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** What {@link Machine.apply} is told besides the input. */
export interface ApplyContext {
  /** `Command`: applied once in log order on every member. `Query` / `LocalQuery`: a read; must not change state. */
  readonly kind: ApplyKind;
  /** For a command, its log index. For a read, the index of the last entry applied before it. */
  readonly index: number;
}

/**
 * A replicated state machine (the user's application), like raftpico's `Machine`.
 *
 * `apply` must be deterministic for commands: every member applies the same commands in the same order and must
 * reach the same state. Reads must not change state. Outputs must be JSON values (they are sent as JSON-RPC
 * results; `undefined` becomes `null`).
 *
 * @typeParam I - the input type. Inputs arrive as parsed JSON.
 * @typeParam O - the output type.
 * @typeParam S - the snapshot's type when it is not bytes: anything `JSON.stringify` round-trips, typed as the user
 *   likes (an `interface` too: a JSON index-signature type such as {@link JsonValue} would reject interfaces, which
 *   TypeScript never gives an implicit index signature). `restore` receives `JSON.parse` of its JSON text.
 */
export interface Machine<I = unknown, O = unknown, S = unknown> {
  /**
   * Apply an input and return its output. Throwing reports a `MACHINE_ERROR` to that caller; a command that throws
   * must leave the state unchanged (every member throws the same way, so they stay equal).
   */
  apply(input: I, ctx: ApplyContext): O;
  /**
   * The whole state, as bytes or as a value that survives `JSON.stringify` / `JSON.parse` unchanged (plain objects,
   * arrays, strings, finite numbers, booleans, null: no `Map`, `Date`, `undefined` or class instances). It must be
   * equal on members that applied the same commands.
   *
   * May return a promise, so that a large state is serialised in slices without blocking the event loop (a loop
   * blocked for longer than the election timeout makes followers elect a new leader). The state must still be
   * **captured synchronously**, when `snapshot()` is called: the server records the snapshot's index at that moment
   * and keeps applying commands while the promise is pending, and none of them may show in the result.
   */
  snapshot(): Uint8Array | S | Promise<Uint8Array | S>;
  /** Replace the whole state with what {@link Machine.snapshot} returned (bytes come back as a `Uint8Array`). */
  restore(snapshot: Uint8Array | S): void;
  /**
   * Optional: check an input before it reaches the log (or a read runs). Return a message to refuse it (the
   * caller gets an invalid-params error with the message as `data.reason`), or `undefined` to accept it.
   */
  validate?(input: unknown, kind: ApplyKind): string | undefined;
  /** Optional cheap hash of the state (equal on equal states). Default: SHA-256 of the encoded snapshot. */
  stateHash?(): string;
}

/**
 * The payload of a `command` log entry. The input is kept as JSON text so every member, the leader included,
 * applies exactly the value `JSON.parse` gives (no codec can turn it into something else on the way), and so
 * that keys such as `__proto__` survive MessagePack. `clientId` and `seq` are optional: when both are present,
 * a retried command with the same pair is applied once and answered with the original output.
 */
export interface Command {
  /** The JSON text of the user's input. */
  readonly input: string;
  /** A client session identifier (for exactly-once). */
  readonly clientId?: string;
  /** The client's request sequence number (increasing per client). */
  readonly seq?: number;
}

/**
 * The result of applying something to the machine: its output, or the error to report. `json` is the output's
 * JSON text when it was computed (so it can be put in a response without stringifying it again).
 */
export type ApplyOutcome =
  | { readonly ok: true; readonly output: unknown; json?: string }
  | { readonly ok: false; readonly error: RpcError };

interface Session {
  seq: number;
  /** The JSON text of the output, or null when the command failed. */
  output: string | null;
  /** The machine error message when it failed. */
  error: string | null;
}

const SNAPSHOT_VERSION = 2;

function machineError(e: unknown): RpcError {
  const message = e instanceof Error ? e.message : String(e);
  return new RpcError(ErrorCode.MACHINE_ERROR, `the state machine failed: ${message}`, { reason: message });
}

/** JSON text of an output (`undefined` and values without a JSON form become `null`). */
export function toJsonText(v: unknown): string {
  const text = JSON.stringify(v === undefined ? null : v);
  return text === undefined ? 'null' : text;
}

/** True if `x` is a well-formed {@link Command} payload. */
export function isCommand(x: unknown): x is Command {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const c = x as { input?: unknown; clientId?: unknown; seq?: unknown };
  if (typeof c.input !== 'string') return false;
  if (c.clientId !== undefined && typeof c.clientId !== 'string') return false;
  if (c.seq !== undefined && !(typeof c.seq === 'number' && Number.isSafeInteger(c.seq) && c.seq >= 0)) return false;
  return true;
}

/**
 * The replicated state as the server keeps it: the user's machine plus the exactly-once session table (the latest
 * `seq` and output of each client). Both are part of every snapshot, so every member deduplicates the same way.
 */
export class ReplicatedMachine {
  private sessions = new Map<string, Session>();

  /**
   * @param machine - the user's state machine.
   * @param maxSessions - most client sessions remembered; the least recently used one is forgotten beyond it
   *   (deterministically, so every member forgets the same one).
   */
  constructor(
    readonly machine: Machine,
    private readonly maxSessions = 100_000,
  ) {}

  /** Number of client sessions remembered. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Apply a committed command entry. `wantJson` asks for the output's JSON text (a caller is waiting for it);
   * tracked commands always compute it because the session table keeps it.
   */
  applyCommand(payload: unknown, index: number, wantJson: boolean): ApplyOutcome {
    if (!isCommand(payload)) {
      return { ok: false, error: new RpcError(ErrorCode.INTERNAL_ERROR, 'malformed command payload in the log') };
    }
    const { clientId, seq } = payload;
    const tracked = clientId !== undefined && seq !== undefined;
    if (tracked) {
      const prior = this.sessions.get(clientId);
      if (prior !== undefined && seq <= prior.seq) {
        if (seq < prior.seq) return { ok: false, error: staleSequence(clientId, seq, prior.seq) };
        return sessionOutcome(prior);
      }
    }
    let outcome: ApplyOutcome;
    try {
      const input: unknown = JSON.parse(payload.input);
      const output = this.machine.apply(input, { kind: 'Command', index });
      outcome = tracked || wantJson ? { ok: true, output, json: toJsonText(output) } : { ok: true, output };
    } catch (e) {
      outcome = { ok: false, error: machineError(e) };
    }
    if (tracked) {
      const session: Session = outcome.ok
        ? { seq, output: outcome.json ?? 'null', error: null }
        : { seq, output: null, error: outcome.error.message };
      // Delete then set moves the client to the end of the Map's order: the first key is the least recently used.
      this.sessions.delete(clientId);
      this.sessions.set(clientId, session);
      if (this.sessions.size > this.maxSessions) {
        const oldest = this.sessions.keys().next().value;
        if (oldest !== undefined) this.sessions.delete(oldest);
      }
    }
    return outcome;
  }

  /**
   * What the session table says about `(clientId, seq)`: the original outcome if it is the latest applied, a stale
   * error if it is older, or `undefined` if it has not been applied.
   */
  lookup(clientId: string, seq: number): ApplyOutcome | undefined {
    const prior = this.sessions.get(clientId);
    if (prior === undefined || seq > prior.seq) return undefined;
    if (seq < prior.seq) return { ok: false, error: staleSequence(clientId, seq, prior.seq) };
    return sessionOutcome(prior);
  }

  /** Run a read against the current state. */
  query(input: unknown, kind: 'Query' | 'LocalQuery', index: number): ApplyOutcome {
    try {
      const output = this.machine.apply(input, { kind, index });
      return { ok: true, output, json: toJsonText(output) };
    } catch (e) {
      return { ok: false, error: machineError(e) };
    }
  }

  /**
   * The replicated state (machine snapshot plus sessions) as bytes. The state is captured synchronously, at the
   * call (the session table is copied and the machine's `snapshot()` is called before this returns); only the
   * encoding may finish later.
   */
  snapshot(): MaybePromise<Uint8Array> {
    const s: [string, number, string | null, string | null][] = [];
    for (const [client, v] of this.sessions) s.push([client, v.seq, v.output, v.error]);
    // The call runs now: that is when the machine captures its state. A machine that answers synchronously is
    // encoded synchronously (the simulator relies on it); a promise is encoded when it settles.
    return after(this.machine.snapshot(), (m) =>
      // JSON snapshots travel as text: MessagePack refuses some keys (`__proto__`) that JSON allows.
      m instanceof Uint8Array ? encodeBytesSnapshot(m, s) : encode({ v: SNAPSHOT_VERSION, j: toJsonText(m), s }),
    );
  }

  /** Replace the replicated state with bytes from {@link ReplicatedMachine.snapshot}. */
  restore(data: Uint8Array): void {
    const o = decode(data) as { v?: unknown; b?: unknown; j?: unknown; s?: unknown };
    if (o === null || typeof o !== 'object' || o.v !== SNAPSHOT_VERSION) {
      throw new Error(`snapshot data is not a node-tcp snapshot (version ${SNAPSHOT_VERSION})`);
    }
    if (!Array.isArray(o.s)) throw new Error('snapshot data has no session table');
    const sessions = new Map<string, Session>();
    for (const row of o.s as unknown[]) {
      if (!Array.isArray(row) || typeof row[0] !== 'string' || typeof row[1] !== 'number') {
        throw new Error('snapshot session table is malformed');
      }
      sessions.set(row[0], { seq: row[1], output: row[2] ?? null, error: row[3] ?? null });
    }
    if (o.b instanceof Uint8Array) this.machine.restore(o.b);
    else if (typeof o.j === 'string') this.machine.restore(JSON.parse(o.j) as JsonValue);
    else throw new Error('snapshot data has no machine state');
    this.sessions = sessions;
  }

  /**
   * A hash of the replicated state: equal on members that applied the same commands. Like {@link snapshot}, the
   * state is captured at the call; without the machine's own `stateHash` the hash is of the snapshot's bytes.
   */
  stateHash(): Promise<string> {
    const own = this.machine.stateHash?.();
    if (own === undefined) return Promise.resolve(this.snapshot()).then(sha256Hex);
    let text = own;
    for (const [client, v] of this.sessions) text += `\n${client}\t${v.seq}\t${v.output}\t${v.error}`;
    return sha256Hex(new TextEncoder().encode(text));
  }
}

/**
 * `encode({ v: SNAPSHOT_VERSION, s, b: bytes })` written directly: a MessagePack map whose `b` is a bin 32 holding
 * the machine's bytes, copied once into a buffer of the final size. The general encoder starts from a small buffer
 * that it doubles as it goes and returns a copy at the end, so a 10 MB state cost some 20 MB of copying into fresh
 * memory, in one synchronous step of the snapshot.
 */
export function encodeBytesSnapshot(bytes: Uint8Array, sessions: unknown): Uint8Array {
  const head = [encode('v'), encode(SNAPSHOT_VERSION), encode('s'), encode(sessions), encode('b')];
  let size = 1 + 5 + bytes.length;
  for (const h of head) size += h.length;
  const out = new Uint8Array(size);
  out[0] = 0x83; // fixmap with 3 entries
  let at = 1;
  for (const h of head) {
    out.set(h, at);
    at += h.length;
  }
  out[at] = 0xc6; // bin 32: a 4-byte big-endian length, then the bytes
  new DataView(out.buffer).setUint32(at + 1, bytes.length);
  out.set(bytes, at + 5);
  return out;
}

/**
 * SHA-256 through Web Crypto (`globalThis.crypto.subtle`), which Node 20 and every browser have: the runtime imports
 * no Node API, so the same code hashes in the server, the simulator and the playground.
 */
async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}

function staleSequence(clientId: string, seq: number, latest: number): RpcError {
  return new RpcError(
    ErrorCode.STALE_SEQUENCE,
    `client ${JSON.stringify(clientId)} already applied seq ${latest}; seq ${seq} is older and its output is no longer known`,
    { notApplied: false, latestSeq: latest },
  );
}

function sessionOutcome(s: Session): ApplyOutcome {
  if (s.error !== null)
    return { ok: false, error: new RpcError(ErrorCode.MACHINE_ERROR, s.error, { reason: s.error }) };
  const json = s.output ?? 'null';
  return { ok: true, output: JSON.parse(json), json };
}
