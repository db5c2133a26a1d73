#!/usr/bin/env node
/**
 * `serve-dashboard [--port N] [--nodes host:port,host:port,...]`: serves the dashboard on 127.0.0.1 and prints
 * its URLs. Runs until interrupted.
 */
import { parseArgs } from 'node:util';
import { startDashboardServer } from './server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    nodes: { type: 'string', default: '' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('usage: serve-dashboard [--port N] [--nodes 127.0.0.1:7001,127.0.0.1:7002,...]');
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve-dashboard: bad --port ${JSON.stringify(values.port)}`);
  process.exit(2);
}
const nodes = (values.nodes ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);
try {
  const d = await startDashboardServer({ port, nodes });
  console.log(`live view:  ${d.url}`);
  console.log(`playground: ${d.playgroundUrl}`);
  const stop = () => void d.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (e) {
  console.error(`serve-dashboard: ${(e as Error).message}`);
  process.exit(1);
}
