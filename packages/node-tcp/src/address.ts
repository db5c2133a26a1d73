/**
 * Server addresses: a server's id is its `host:port` (or `[v6]:port`), used to listen, to dial peers and to name
 * members. One small parser shared by the server, the peer transport, the client and the method checks.
 *
 * @packageDocumentation
 */

/** Split "host:port" (or "[v6]:port"). */
export function splitAddress(addr: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  if (m === null) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}
