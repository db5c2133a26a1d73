/**
 * Client authentication and authorisation: bearer tokens with a role, read from a credentials file every member
 * has, and the check of each request's role before it reaches the runtime. Separate from the transports (which
 * only say which token a connection presented) and from `methods.ts` (which only parses), so that who may do what
 * is decided in one place.
 *
 * Why a file and not the replicated state: the file is there before the cluster exists and while it has no leader
 * (so `CreateCluster` and `AddServer` can be protected too, with no bootstrap chicken-and-egg), a lost quorum cannot
 * lock the operator out, and rotating a token is an edit of the file (each server re-reads it when it changes).
 *
 * @packageDocumentation
 */

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ErrorCode, type Logger, RpcError, type RuntimeRequest } from '@raft/runtime';

/** What a token may do: `read` (queries, state), `write` (commands, and read), `admin` (everything). */
export type Role = 'read' | 'write' | 'admin';

/** Who sent a request: the name and role of the token its connection presented. */
export interface Caller {
  /** The token's name in the credentials file (for logs). */
  readonly name: string;
  /** What the token may do. */
  readonly role: Role;
  /**
   * The token's hash, for callers that presented one: each request looks it up again, so a token removed from the
   * credentials file stops working on connections that are already authenticated, too.
   */
  readonly tokenHash?: string;
}

/** The caller of the in-process API (`server.apply`, ...): the program that embeds the server, so an admin. */
export const IN_PROCESS_CALLER: Caller = Object.freeze({ name: '(in-process)', role: 'admin' });

/** One entry of a credentials file. */
export interface CredentialEntry {
  /** A name for logs and for the operator (`alice`, `loadgen`, ...). */
  readonly name: string;
  /** What the token may do. */
  readonly role: Role;
  /** The SHA-256 of the token's text, as 64 hex digits (see {@link hashToken}). */
  readonly sha256: string;
}

const RANK: Record<Role, number> = { read: 0, write: 1, admin: 2 };

/** Whether a caller with role `have` may do what needs `need` (admin implies write implies read). */
export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

/** The role a runtime request needs. */
export function requiredRole(type: RuntimeRequest['type']): Role {
  switch (type) {
    case 'query':
    case 'localQuery':
    case 'state':
      return 'read';
    case 'command':
      return 'write';
    default:
      return 'admin';
  }
}

/**
 * The SHA-256 (hex) of a token. A plain hash suffices (no scrypt) because tokens are 32 random bytes: nobody can
 * guess one from its hash, and a fast hash keeps the per-connection check cheap.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new token: 32 random bytes as 64 hex digits. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** The credentials file is missing, unreadable or malformed. */
export class CredentialsError extends Error {
  /** Always `CREDENTIALS_INVALID`. */
  readonly code = 'CREDENTIALS_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/**
 * Parse a credentials file's text: `{"tokens": [{"name", "role", "sha256"}, ...]}`.
 *
 * @throws CredentialsError when the text is not such a document.
 */
export function parseCredentials(text: string, source = 'credentials'): CredentialEntry[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CredentialsError(`${source} is not JSON: ${(e as Error).message}`);
  }
  const tokens = (v as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(tokens)) throw new CredentialsError(`${source} must be {"tokens": [{"name", "role", "sha256"}]}`);
  return tokens.map((t, i) => {
    const e = t as Partial<CredentialEntry> | null;
    if (typeof e?.name !== 'string' || e.name === '') throw new CredentialsError(`${source}: token ${i} has no name`);
    if (e.role !== 'read' && e.role !== 'write' && e.role !== 'admin') {
      throw new CredentialsError(`${source}: token ${JSON.stringify(e.name)} has role ${JSON.stringify(e.role)}`);
    }
    if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(e.sha256)) {
      throw new CredentialsError(`${source}: token ${JSON.stringify(e.name)} needs "sha256": 64 hex digits`);
    }
    return { name: e.name, role: e.role, sha256: e.sha256.toLowerCase() };
  });
}

/**
 * The tokens a server accepts, from its credentials file, re-read whenever the file's modification time or size
 * changes (checked every `pollMs`, and on {@link CredentialStore.reload}). A file that became unreadable or
 * malformed keeps the previous tokens (and is logged), so a bad edit does not lock everybody out.
 */
export class CredentialStore {
  private byHash = new Map<string, Caller>();
  private stamp = '';
  private timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Read `file` now.
   *
   * @throws CredentialsError when the file cannot be read or parsed (a server then refuses to start).
   */
  constructor(
    private readonly file: string,
    private readonly logger: Logger,
  ) {
    this.load();
  }

  /** How many tokens are accepted. */
  get size(): number {
    return this.byHash.size;
  }

  /** The caller a token stands for, or null when it is unknown. */
  authenticate(token: unknown): Caller | null {
    if (typeof token !== 'string' || token.length === 0 || token.length > 1024) return null;
    // The lookup compares hashes, not tokens: its timing can only tell an attacker about the hash of a guess.
    return this.byHash.get(hashToken(token)) ?? null;
  }

  /** The caller a token hash stands for now (null once the token was removed from the file). */
  lookup(tokenHash: string): Caller | null {
    return this.byHash.get(tokenHash) ?? null;
  }

  /** Re-read the file if it changed (forced with `force`). Returns whether the tokens were replaced. */
  reload(force = false): boolean {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      this.logger.error('cannot read the credentials file; keeping the previous tokens', {
        file: this.file,
        error: (e as Error).message,
      });
      return false;
    }
    if (!force && stamp === this.stamp) return false;
    try {
      this.load();
      this.logger.info('credentials reloaded', { file: this.file, tokens: this.byHash.size });
      return true;
    } catch (e) {
      this.stamp = stamp;
      this.logger.error('the credentials file is invalid; keeping the previous tokens', {
        file: this.file,
        error: (e as Error).message,
      });
      return false;
    }
  }

  /** Check the file for changes every `pollMs` (the timer does not keep the process alive). */
  watch(pollMs: number): void {
    this.stop();
    this.timer = setInterval(() => this.reload(), pollMs);
    this.timer.unref();
  }

  /** Stop watching the file. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private load(): void {
    let text: string;
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      throw new CredentialsError(`cannot read the credentials file ${this.file}: ${(e as Error).message}`);
    }
    const entries = parseCredentials(text, this.file);
    const m = new Map<string, Caller>();
    for (const e of entries) m.set(e.sha256, Object.freeze({ name: e.name, role: e.role, tokenHash: e.sha256 }));
    this.byHash = m;
    this.stamp = stamp;
  }
}

/** The `UNAUTHENTICATED` error. */
export function unauthenticated(why: string): RpcError {
  return new RpcError(ErrorCode.UNAUTHENTICATED, `unauthenticated: ${why}`, { notApplied: true });
}

/**
 * Whether `caller` may run `request`: null when it may, else the error to answer with. Without a credential store
 * (`store` null) everybody may do everything (the loopback demo).
 */
export function authorize(
  request: RuntimeRequest,
  caller: Caller | null,
  store: CredentialStore | null,
): RpcError | null {
  if (store === null) return null;
  if (caller === null) {
    return unauthenticated(
      'this server requires a token: send {"method":"Authenticate","params":{"token":...}} first on this connection (HTTP: Authorization: Bearer <token>)',
    );
  }
  if (caller.tokenHash !== undefined) {
    // Re-checked on every request: a token removed from the file (or whose role changed) takes effect at once.
    const now = store.lookup(caller.tokenHash);
    if (now === null)
      return unauthenticated(`token ${JSON.stringify(caller.name)} is no longer in the credentials file`);
    caller = now;
  }
  const need = requiredRole(request.type);
  if (roleAllows(caller.role, need)) return null;
  return new RpcError(
    ErrorCode.FORBIDDEN,
    `forbidden: token ${JSON.stringify(caller.name)} has role ${caller.role}; this request needs ${need}`,
    { notApplied: true, role: caller.role, required: need },
  );
}
