/**
 * Starting a key-value server: `@raft/node-tcp`'s server with the key-value machine, as a function for programs
 * that embed it and as the `raft-kvs serve` command.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type RaftServer, type ServerOptions } from '@raft/node-tcp';
import { intFlag, parseArgs, stringFlag, UsageError } from './args.js';
import { parseAddr } from './call.js';
import { createKvsMachine } from './machine.js';
import { serverTls, TLS_FLAGS } from './security.js';

/** Options of {@link startKvsServer}: the server's options without `machine` (the key-value machine is used). */
export type KvsServerOptions = Omit<ServerOptions, 'machine'>;

/** Default data directory of a server: `raft-data/<host>-<port>` under the working directory, one per address. */
export function defaultDataDir(addr: string): string {
  const { host, port } = parseAddr(addr);
  return join('raft-data', `${host}-${port}`);
}

/** Creates and starts a key-value server. Stop it with `server.stop()`. */
export async function startKvsServer(options: KvsServerOptions): Promise<RaftServer> {
  const server = createServer({ ...options, machine: createKvsMachine() });
  await server.start();
  return server;
}

/** Help text of `raft-kvs serve`. */
export const SERVE_HELP = `usage: raft-kvs serve <addr> [options]

Starts one key-value server. <addr> (host:port, or :port for 127.0.0.1) is the server's id: peers and clients
reach it there. A new server belongs to no cluster: send it CreateCluster, or AddServer it from a member.
Stop it with Ctrl-C (SIGINT) or SIGTERM: it finishes pending disk writes and exits 0.

options:
  --data DIR             data directory (default raft-data/<host>-<port>)
  --listen HOST:PORT     bind here instead of <addr> (for proxies and NAT; peers still dial <addr>)
  --heartbeat-ms N       leader heartbeat interval (default 100)
  --election-ms N        minimum election timeout; the actual one is random in [N, 2N) (default 1000)
  --snapshot-entries N   snapshot after N applied entries (default 100000; 0 = never)
  --cluster-name NAME    peers must use the same name (default raft)
  --secret-file PATH     file holding the shared secret peers must prove (default: $RAFT_SECRET, or none); a
                         secret is required when <addr> or --listen is not a loopback address
  --insecure             start on a non-loopback address without a secret or TLS (a trusted network only)
  --tls-ca FILE          TLS for peers and clients (all three files): the cluster CA,
  --tls-cert FILE        this server's certificate (it must name <addr>, or its host: see docs/security.md)
  --tls-key FILE         and its key
  --credentials-file F   client tokens and their roles (JSON; see docs/security.md); without it any client may
                         do anything (a server reachable from other hosts warns)
  SIGHUP                 re-reads the credentials file and the TLS files (rotation without a restart)
  --unsafe-no-fsync      do not fsync (benchmarks of everything but the disk; a crash can lose acknowledged writes)
  --quiet                print only errors

exit status: 0 stopped cleanly; 1 could not start or failed while running; 2 usage error`;

/** Runs `raft-kvs serve`. Resolves with the exit status once the server has stopped. */
export async function runServe(argv: readonly string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv, {
    data: 'string',
    listen: 'string',
    'heartbeat-ms': 'string',
    'election-ms': 'string',
    'snapshot-entries': 'string',
    'cluster-name': 'string',
    secret: 'string',
    'secret-file': 'string',
    insecure: 'boolean',
    ...TLS_FLAGS,
    'credentials-file': 'string',
    'unsafe-no-fsync': 'boolean',
    quiet: 'boolean',
  });
  if (flags.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('serve needs exactly one <addr>');
  let addr: string;
  let listen: string | undefined;
  try {
    addr = parseAddr(positionals[0]).addr;
    const l = stringFlag(flags, 'listen');
    listen = l === undefined ? undefined : parseAddr(l).addr;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (flags.secret !== undefined) {
    throw new UsageError(
      '--secret would put the secret in the command line, which every local user sees (ps); use --secret-file PATH or the RAFT_SECRET environment variable',
    );
  }
  const secret = readSecret(stringFlag(flags, 'secret-file'));
  const tls = serverTls(flags);
  const credentialsFile = stringFlag(flags, 'credentials-file');
  const quiet = flags.quiet === true;
  const dataDir = stringFlag(flags, 'data') ?? defaultDataDir(addr);
  const say = (msg: string) => {
    if (!quiet) console.log(`[${addr}] ${msg}`);
  };
  let server: RaftServer;
  try {
    server = await startKvsServer({
      address: addr,
      listen,
      dataDir,
      heartbeatMs: intFlag(flags, 'heartbeat-ms'),
      electionTimeoutMs: intFlag(flags, 'election-ms'),
      autoSnapshotEntries: intFlag(flags, 'snapshot-entries', 0),
      clusterName: stringFlag(flags, 'cluster-name'),
      secret,
      tls,
      credentialsFile,
      insecure: flags.insecure === true,
      storageSync: flags['unsafe-no-fsync'] !== true,
    });
  } catch (e) {
    console.error(`[${addr}] cannot start: ${(e as Error).message}`);
    return 1;
  }
  const state = await server.getServerState();
  say(
    `serving on ${listen ?? addr} (data ${dataDir}); ` +
      (state.membership === 'none'
        ? 'not in a cluster yet: send CreateCluster here, or AddServer it from a member'
        : `${state.membership} of [${state.members.join(', ')}]`),
  );
  server.on('stateChanged', (s: { role: string; term: number; leader: string | null }) => {
    say(`${s.role}, term ${s.term}, leader ${s.leader ?? 'unknown'}`);
  });
  server.on('membershipChanged', (m: { voters: string[]; learners: string[] }) => {
    say(`members: voters [${m.voters.join(', ')}]${m.learners.length ? `, learners [${m.learners.join(', ')}]` : ''}`);
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.removeListener('SIGHUP', reload);
      say(`${signal}: stopping`);
      server.stop().then(
        () => resolve(0),
        (e: Error) => {
          console.error(`[${addr}] error while stopping: ${e.message}`);
          resolve(1);
        },
      );
    };
    const reload = () => {
      // Rotation without a restart: new tokens and certificates apply to new connections (tokens: to every request).
      try {
        const changed = server.reloadCredentials();
        const next = serverTls(flags);
        if (next !== undefined) server.reloadTls(next);
        say(
          `SIGHUP: reloaded${credentialsFile === undefined ? '' : ` credentials (${changed ? 'changed' : 'unchanged'})`}${next === undefined ? '' : ' and TLS files'}`,
        );
      } catch (e) {
        console.error(`[${addr}] SIGHUP: reload failed, keeping the previous settings: ${(e as Error).message}`);
      }
    };
    process.on('SIGHUP', reload);
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/**
 * The shared secret: the file's contents (one trailing newline dropped), else `$RAFT_SECRET`, else none. An empty
 * secret is refused rather than taken for "no secret".
 */
function readSecret(file: string | undefined): string | undefined {
  if (file === undefined) {
    const env = process.env.RAFT_SECRET;
    return env === undefined || env === '' ? undefined : env;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --secret-file ${file}: ${(e as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new UsageError(`--secret-file ${file} is empty`);
  return secret;
}
