#!/usr/bin/env node
/**
 * raft-loadgen: drives a JSON-RPC (raftpico / raft-kvs) or etcd cluster and prints throughput and latency.
 *
 *   raft-loadgen :4000 :4001 :4002 -w command -n 100000 -c 1000
 *   raft-loadgen --target etcd-grpc :2379 :22379 :32379 -w query -n 100000 -c 64 --json result.json
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LoadgenError } from './errors.js';
import { DEFAULT_GRPC_CONNECTIONS } from './etcd-grpc.js';
import type { ProgressMode } from './progress.js';
import { runLoad, TARGETS, type Target } from './runner.js';
import { formatTable } from './stats.js';
import { WORKLOADS, type WorkloadKind } from './workload.js';

const USAGE = `usage: raft-loadgen [options] SERVER...

SERVER is host:port or :port (127.0.0.1). Slot k of C sends to server k % (number of servers).

options:
  -t, --target TARGET         protocol (default jsonrpc):
                                jsonrpc       raftpico's Apply over JSON-RPC lines (raft-kvs)
                                etcd-grpc     etcd's native gRPC API (HTTP/2, h2c), streams multiplexed over
                                              --grpc-connections connections
                                etcd-gateway  etcd's HTTP/JSON gateway (/v3/kv/*), one HTTP/1.1 connection per slot
                                etcd          alias of etcd-grpc
  -w, --workload KIND         command (Put) | query (linearizable Get) | local (local Get) | mix (50/50 Put/Get)
                              (default command)
  -n, --count N               requests to measure (default 100000)
  -c, --concurrency C         requests in flight (default 1000)
      --warmup N              unmeasured requests first (default 0)
      --value-size BYTES      0 = random u32 values (default); else string values of this many bytes
      --seed N                PRNG seed (default random; reported)
      --connections N         JSON-RPC connections per server (default 1)
      --grpc-connections N    etcd-grpc: HTTP/2 connections in all (default 100; at most C, rounded up to a
                              multiple of the servers)
      --timeout-ms MS         per-request timeout (default 30000)
      --tls-ca FILE           JSON-RPC over TLS; the servers' certificates must be signed by this CA
      --token-file FILE       JSON-RPC: authenticate with the client token in FILE (default: $RAFT_TOKEN, or none)
      --max-seconds S         stop sending after S seconds (default 1800)
      --progress MODE         auto | bar | lines | off (default auto: bar on a terminal)
      --json FILE             also write the report as JSON to FILE ("-" = stdout, table goes to stderr)
  -h, --help`;

function int(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n)) throw new LoadgenError('BAD_OPTION', `--${name} must be an integer, got "${text}"`);
  return n;
}

function readOption(name: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new LoadgenError('BAD_OPTION', `cannot read --${name} ${file}: ${(e as Error).message}`);
  }
}

/** The client token: from `--token-file` (never argv: `ps` shows it to every local user), else `$RAFT_TOKEN`. */
function tokenFrom(file: string | undefined): string | undefined {
  const t = file === undefined ? process.env.RAFT_TOKEN : readOption('token-file', file);
  return t === undefined || t.trim() === '' ? undefined : t.trim();
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      target: { type: 'string', short: 't', default: 'jsonrpc' },
      workload: { type: 'string', short: 'w', default: 'command' },
      count: { type: 'string', short: 'n' },
      concurrency: { type: 'string', short: 'c' },
      warmup: { type: 'string' },
      'value-size': { type: 'string' },
      seed: { type: 'string' },
      connections: { type: 'string' },
      'grpc-connections': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'max-seconds': { type: 'string' },
      progress: { type: 'string', default: 'auto' },
      json: { type: 'string' },
      'tls-ca': { type: 'string' },
      'token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length === 0) throw new LoadgenError('BAD_OPTION', 'no SERVER given');
  const target = values.target as Target;
  if (!TARGETS.includes(target)) {
    throw new LoadgenError('BAD_OPTION', `--target must be one of ${TARGETS.join(', ')}, got "${values.target}"`);
  }
  if (!WORKLOADS.includes(values.workload as WorkloadKind)) {
    throw new LoadgenError('BAD_OPTION', `--workload must be one of ${WORKLOADS.join(', ')}`);
  }
  if (!['auto', 'bar', 'lines', 'off'].includes(values.progress!)) {
    throw new LoadgenError('BAD_OPTION', '--progress must be auto, bar, lines or off');
  }
  const report = await runLoad({
    target,
    servers: positionals,
    workload: values.workload as WorkloadKind,
    count: int('count', values.count, 100_000),
    concurrency: int('concurrency', values.concurrency, 1000),
    warmup: int('warmup', values.warmup, 0),
    valueSize: int('value-size', values['value-size'], 0),
    seed: values.seed === undefined ? undefined : int('seed', values.seed, 0),
    connectionsPerServer: int('connections', values.connections, 1),
    grpcConnections: int('grpc-connections', values['grpc-connections'], DEFAULT_GRPC_CONNECTIONS),
    requestTimeoutMs: int('timeout-ms', values['timeout-ms'], 30_000),
    maxSeconds: int('max-seconds', values['max-seconds'], 1800),
    progress: values.progress as ProgressMode,
    tlsCa: values['tls-ca'] === undefined ? undefined : readOption('tls-ca', values['tls-ca']),
    token: tokenFrom(values['token-file']),
  });
  const json = JSON.stringify(report, null, 2);
  const table = formatTable([report]);
  if (values.json === '-') {
    process.stderr.write(`${table}\n`);
    process.stdout.write(`${json}\n`);
  } else {
    process.stdout.write(`${table}\n`);
    if (values.json) writeFileSync(values.json, `${json}\n`);
  }
  return report.errors > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof LoadgenError || (err instanceof TypeError && 'code' in err)) {
      process.stderr.write(`raft-loadgen: ${(err as Error).message}\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`raft-loadgen: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
