/**
 * A process that runs the delaying link proxies (`LinkProxy` from @raft/loadgen) of one `pnpm bench:links` profile.
 *
 * The proxies run in their own process, not in the benchmark's: the load client keeps the benchmark's event loop
 * busy at C=1000, which would add its own stalls to every proxied chunk. This process only forwards bytes.
 *
 *   tsx scripts/bench-lib/link-proxy-host.ts --delay-ms 10 [--bytes-per-second 12500000] --stats FILE \
 *       LISTEN_PORT:UPSTREAM_PORT ...
 *
 * Each pair listens on 127.0.0.1:LISTEN_PORT and forwards to 127.0.0.1:UPSTREAM_PORT. FILE receives the proxies'
 * counters as JSON once they all listen (the "ready" signal), every second, and on SIGTERM/SIGINT, after which the
 * proxies are stopped and the process exits 0.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LinkProxy } from '../../apps/loadgen/src/index.js';

const { values, positionals } = parseArgs({
  options: {
    'delay-ms': { type: 'string' },
    'bytes-per-second': { type: 'string', default: '0' },
    stats: { type: 'string' },
  },
  allowPositionals: true,
});
const delayMs = Number(values['delay-ms']);
const bytesPerSecond = Number(values['bytes-per-second']);
const statsPath = values.stats;
const pairs = positionals.map((p) => p.split(':').map(Number));
if (
  !Number.isFinite(delayMs) ||
  !Number.isFinite(bytesPerSecond) ||
  statsPath === undefined ||
  pairs.length === 0 ||
  pairs.some((p) => p.length !== 2 || p.some((n) => !Number.isInteger(n) || n < 1 || n > 65535))
) {
  console.error('usage: link-proxy-host --delay-ms MS [--bytes-per-second N] --stats FILE LISTEN:UPSTREAM ...');
  process.exit(2);
}

const proxies: LinkProxy[] = [];
let ticker: NodeJS.Timeout | undefined;

/** Writes the counters atomically (the benchmark may read the file at any time). */
function writeStats(): void {
  const stats = proxies.map((p) => ({ port: p.port, ...p.stats() }));
  writeFileSync(`${statsPath}.tmp`, JSON.stringify(stats));
  renameSync(`${statsPath}.tmp`, statsPath as string);
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  writeStats();
  await Promise.all(proxies.map((p) => p.stop()));
  process.exit(0);
}
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void stop());

async function main(): Promise<void> {
  for (const [listen, upstream] of pairs) {
    proxies.push(
      await LinkProxy.start({
        port: listen,
        upstream: `127.0.0.1:${upstream}`,
        delayMs,
        bytesPerSecond: bytesPerSecond || undefined,
      }),
    );
  }
  writeStats();
  ticker = setInterval(writeStats, 1000);
  console.error(
    `[link-proxy-host] ${pairs.length} proxies, ${delayMs} ms one way` +
      (bytesPerSecond ? `, ${bytesPerSecond} bytes/s per direction` : ', no bandwidth cap'),
  );
}

main().catch((e: unknown) => {
  console.error(`[link-proxy-host] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
