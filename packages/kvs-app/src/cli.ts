#!/usr/bin/env node
/**
 * `raft-kvs`: the replicated key-value store's command line (serve, call, demo, inspect).
 *
 * Exit status, for every command: 0 success; 1 the operation failed (an error response, a server that cannot be
 * reached, a damaged data directory); 2 usage error; `inspect` also uses 3 for a torn tail (see its help).
 *
 * @packageDocumentation
 */
import { createInterface } from 'node:readline';
import { runInspectCommand } from '@raft/storage-jsonl';
import { intFlag, parseArgs, UsageError } from './args.js';
import { CallError, callLines, parseAddr, requestLine } from './call.js';
import { runDemo } from './demo.js';
import { clientTls, clientToken, runToken, TLS_FLAGS, TOKEN_FLAGS } from './security.js';
import { runServe } from './serve.js';

/** Top-level help. */
export const HELP = `usage: raft-kvs <command> [args]

A replicated key-value store on Raft. Commands:
  serve <addr> [--data DIR]           start one server (see: raft-kvs serve --help)
  call <addr> [<Method> [params]]     send one JSON-RPC request and print the response; with no method,
                                      send the request lines read from stdin (see: raft-kvs call --help)
  demo                                start a 3-node cluster on loopback and walk through it
  token <name> <role> --out FILE      make a client token (see: raft-kvs token --help)
  inspect <dir> [--entries] [--json]  print a data directory's state (see: raft-kvs inspect --help)

Addresses are host:port; :4000 means 127.0.0.1:4000.
exit status: 0 success; 1 the operation failed; 2 usage error`;

/** Help text of `raft-kvs call`. */
export const CALL_HELP = `usage: raft-kvs call <addr> [<Method> [params-json]] [--timeout-ms N] [security options]

Sends a JSON-RPC 2.0 request to the server at <addr> and prints the response line, e.g.
  raft-kvs call :4000 CreateCluster
  raft-kvs call :4000 AddServer '{"addr":"127.0.0.1:4001"}'
  raft-kvs call :4000 Apply '{"kind":"Command","input":{"Put":["foo",123]}}'
  raft-kvs call :4001 Apply '{"kind":"Query","input":{"Get":"foo"}}'
With no <Method>, reads request lines from stdin, sends them all on one connection (pipelined) and prints each
response line as it arrives:  cat requests.jsonl | raft-kvs call :4000

security options (see docs/security.md):
  --tls-ca FILE          connect with TLS; the server's certificate must be signed by this CA
  --tls-cert FILE        a client certificate (with --tls-key; optional)
  --tls-key FILE         its key
  --token-file FILE      authenticate with the token in FILE (default: $RAFT_TOKEN, or none)

exit status: 0 every response was a result; 1 some response was an error, or the server could not be reached
or did not answer in time; 2 usage error (including params that are not JSON)`;

async function* stdinLines(): AsyncGenerator<string> {
  const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) yield line;
}

function isErrorResponse(line: string): boolean {
  try {
    const v: unknown = JSON.parse(line);
    const items = Array.isArray(v) ? v : [v];
    return items.some((r) => typeof r !== 'object' || r === null || 'error' in r);
  } catch {
    return true;
  }
}

async function runCall(argv: readonly string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv, { 'timeout-ms': 'string', ...TLS_FLAGS, ...TOKEN_FLAGS });
  if (flags.help) {
    console.log(CALL_HELP);
    return 0;
  }
  if (positionals.length < 1 || positionals.length > 3) throw new UsageError('call needs <addr> [<Method> [params]]');
  const [addr, method, paramsText] = positionals;
  try {
    parseAddr(addr);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let lines: AsyncIterable<string> | Iterable<string>;
  if (method === undefined) {
    lines = stdinLines();
  } else {
    let params: unknown;
    if (paramsText !== undefined) {
      try {
        params = JSON.parse(paramsText);
      } catch (e) {
        throw new UsageError(`params must be JSON: ${(e as Error).message}`);
      }
    }
    lines = [requestLine(method, params)];
  }
  const security = { tls: clientTls(flags), token: clientToken(flags) };
  let failed = false;
  try {
    await callLines(
      addr,
      lines,
      (line) => {
        if (isErrorResponse(line)) failed = true;
        process.stdout.write(`${line}\n`);
      },
      intFlag(flags, 'timeout-ms') ?? 30_000,
      security,
    );
  } catch (e) {
    if (!(e instanceof CallError)) throw e;
    console.error(`raft-kvs call: ${e.message}`);
    return 1;
  }
  return failed ? 1 : 0;
}

/** Runs the CLI with `argv` (without node and the script) and resolves with the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await runServe(rest);
      case 'call':
        return await runCall(rest);
      case 'demo':
        return await runDemo(rest);
      case 'token':
        return runToken(rest);
      case 'inspect':
        return await runInspectCommand(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(HELP);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(
        `raft-kvs: ${e.message}\n(run "raft-kvs ${command && command !== 'help' ? `${command} ` : ''}--help")`,
      );
      return 2;
    }
    console.error(`raft-kvs: ${(e as Error).stack ?? e}`);
    return 1;
  }
}

// Run when executed directly (not when imported by tests): as src/cli.ts or dist/cli.js, or through the bin, which is
// bin/raft-kvs.js (or node_modules/.bin/raft-kvs, a link to it) importing dist/cli.js.
const entry = process.argv[1] ?? '';
if (/(?:^|[\\/])(?:cli\.(?:ts|js|mjs|cjs)|raft-kvs(?:\.js)?)$/.test(entry)) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
