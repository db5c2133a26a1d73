/**
 * Security options shared by the commands: TLS files (`--tls-ca`, `--tls-cert`, `--tls-key`) and client tokens
 * (`--token-file` or `$RAFT_TOKEN`). Secrets come from files or the environment only, never from argv (every local
 * user can read a process's command line with `ps`). See docs/security.md.
 *
 * @packageDocumentation
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { type ClientTlsOptions, hashToken, newToken, type TlsOptions } from '@raft/node-tcp';
import { type ParsedArgs, parseArgs, stringFlag, UsageError } from './args.js';

/** The flags of {@link serverTls} and {@link clientTls}. */
export const TLS_FLAGS = { 'tls-ca': 'string', 'tls-cert': 'string', 'tls-key': 'string' } as const;
/** The flags of {@link clientToken}. */
export const TOKEN_FLAGS = { 'token-file': 'string', token: 'string' } as const;

function readFlagFile(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --${flag} ${file}: ${(e as Error).message}`);
  }
}

/** A server's TLS material from `--tls-ca`, `--tls-cert` and `--tls-key` (all three, or none: undefined). */
export function serverTls(flags: ParsedArgs['flags']): TlsOptions | undefined {
  const [ca, cert, key] = (['tls-ca', 'tls-cert', 'tls-key'] as const).map((f) => stringFlag(flags, f));
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if (ca === undefined || cert === undefined || key === undefined) {
    throw new UsageError('TLS needs all three of --tls-ca, --tls-cert and --tls-key');
  }
  return { ca: readFlagFile('tls-ca', ca), cert: readFlagFile('tls-cert', cert), key: readFlagFile('tls-key', key) };
}

/** A client's TLS material: `--tls-ca` (required for TLS), optionally `--tls-cert` with `--tls-key`. */
export function clientTls(flags: ParsedArgs['flags']): ClientTlsOptions | undefined {
  const [ca, cert, key] = (['tls-ca', 'tls-cert', 'tls-key'] as const).map((f) => stringFlag(flags, f));
  if (ca === undefined) {
    if (cert !== undefined || key !== undefined) throw new UsageError('--tls-cert and --tls-key need --tls-ca');
    return undefined;
  }
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  return {
    ca: readFlagFile('tls-ca', ca),
    ...(cert !== undefined && key !== undefined
      ? { cert: readFlagFile('tls-cert', cert), key: readFlagFile('tls-key', key) }
      : {}),
  };
}

/**
 * The client token: the `--token-file`'s contents (surrounding whitespace dropped), else `$RAFT_TOKEN`, else none.
 * `--token` is refused: it would put the token in argv.
 */
export function clientToken(flags: ParsedArgs['flags']): string | undefined {
  if (flags.token !== undefined) {
    throw new UsageError(
      '--token would put the token in the command line, which every local user sees (ps); use --token-file PATH or the RAFT_TOKEN environment variable',
    );
  }
  const file = stringFlag(flags, 'token-file');
  if (file === undefined) {
    const env = process.env.RAFT_TOKEN?.trim();
    return env === undefined || env === '' ? undefined : env;
  }
  const token = readFlagFile('token-file', file).trim();
  if (token === '') throw new UsageError(`--token-file ${file} is empty`);
  return token;
}

/** Help text of `raft-kvs token`. */
export const TOKEN_HELP = `usage: raft-kvs token <name> <read|write|admin> --out FILE

Makes a new client token (32 random bytes, hex): writes it to FILE (mode 0600; give that file to the client, e.g.
raft-kvs call --token-file FILE) and prints the line to add to the servers' credentials file
({"tokens": [ ...lines... ]}, see docs/security.md). The token itself is never printed.

exit status: 0 done; 2 usage error`;

/** Runs `raft-kvs token`. */
export function runToken(argv: readonly string[]): number {
  const { positionals, flags } = parseArgs(argv, { out: 'string' });
  if (flags.help) {
    console.log(TOKEN_HELP);
    return 0;
  }
  const [name, role] = positionals;
  if (positionals.length !== 2 || name === '') throw new UsageError('token needs <name> <read|write|admin>');
  if (role !== 'read' && role !== 'write' && role !== 'admin') throw new UsageError('the role is read, write or admin');
  const out = stringFlag(flags, 'out');
  if (out === undefined) throw new UsageError('token needs --out FILE (the token is written there, never printed)');
  const token = newToken();
  try {
    writeFileSync(out, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw new UsageError(`cannot create ${out} (it must not exist yet): ${(e as Error).message}`);
  }
  console.log(JSON.stringify({ name, role, sha256: hashToken(token) }));
  return 0;
}
