#!/usr/bin/env node
/**
 * `serve-dashboard [--port N] [--nodes host:port,host:port,...]`: serves the dashboard on 127.0.0.1 and prints
 * its URLs. Runs until interrupted.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startDashboardServer } from './server.js';

const USAGE = `usage: serve-dashboard [--port N] [--nodes 127.0.0.1:7001,127.0.0.1:7002,...]

Serves the live dashboard and the Raft playground on 127.0.0.1 and prints their URLs (docs/dashboard.md).

  --port N       port to listen on (default 0: any free port)
  --nodes LIST   comma-separated host:port of the nodes the live view watches
  --token-file F the nodes need a client token: the one in F (default: $RAFT_TOKEN); it is put in the printed
                 URL's #fragment, which the browser never sends to a server
  --tls          the nodes have TLS (the live view uses wss://; the browser must trust the cluster CA)
  -h, --help     print this help

exit status: 0 stopped by SIGINT/SIGTERM; 1 could not serve (not built, port taken); 2 usage error`;

function usageError(message: string): never {
  console.error(`serve-dashboard: ${message}\n${USAGE}`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string', default: '0' },
        nodes: { type: 'string', default: '' },
        'token-file': { type: 'string' },
        tls: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    // node:util's parseArgs throws a TypeError with a code for an unknown option, a positional or a missing value.
    return usageError((e as Error).message);
  }
}
const { values } = parse();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  usageError(`bad --port ${JSON.stringify(values.port)}`);
}
const nodes = (values.nodes ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);
try {
  const file = values['token-file'];
  const raw = file === undefined ? process.env.RAFT_TOKEN : readFileSync(file, 'utf8');
  const token = raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  const d = await startDashboardServer({ port, nodes, token, tls: values.tls === true });
  console.log(`live view:  ${d.url}`);
  console.log(`playground: ${d.playgroundUrl}`);
  const stop = () => void d.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (e) {
  console.error(`serve-dashboard: ${(e as Error).message}`);
  process.exit(1);
}
