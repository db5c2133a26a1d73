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

/**
 * Whether `host` can only be reached from this machine: 127.0.0.0/8, `::1` or `localhost`. Anything else, `0.0.0.0`
 * and `::` (every interface) included, can be reached from other hosts.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h.startsWith('::ffff:') ? h.slice(7) : h);
  return v4?.slice(1).every((x) => Number(x) <= 255) === true;
}

/**
 * Why a server with these settings must not start, or null: one that listens on, or is reached at, an address other
 * hosts can reach needs a shared secret (or TLS), unless the operator said `insecure` in so many words. Without one,
 * anyone who reaches the port can join the peer handshake and forge Raft traffic.
 */
export function exposureProblem(o: {
  address: string;
  listen?: string | undefined;
  secret?: string | undefined;
  tls?: boolean | undefined;
  insecure?: boolean | undefined;
}): string | null {
  if (o.insecure === true || (o.secret !== undefined && o.secret !== '') || o.tls === true) return null;
  const exposed = [o.address, o.listen].filter(
    (a): a is string => a !== undefined && !isLoopbackHost(splitAddress(a)?.host ?? ''),
  );
  if (exposed.length === 0) return null;
  return (
    `refusing to start: ${exposed.join(' and ')} can be reached from other hosts, and without a shared secret (or TLS) ` +
    'anyone who reaches the port can join the peer handshake, forge Raft messages and command the cluster. Give a ' +
    'secret (raft-kvs: --secret-file or RAFT_SECRET), or say insecure: true (raft-kvs: --insecure) if the network is ' +
    'trusted'
  );
}

/**
 * A warning for a server whose client port other hosts can reach without client authentication (no credentials
 * file), or null. Not a refusal: the peer links are what `exposureProblem` protects; an open client port is the
 * operator's call on a trusted network, but one they must hear about.
 */
export function openClientPortWarning(o: {
  address: string;
  listen?: string | undefined;
  credentialsFile?: string | undefined;
}): string | null {
  if (o.credentialsFile !== undefined) return null;
  const exposed = [o.address, o.listen].filter(
    (a): a is string => a !== undefined && !isLoopbackHost(splitAddress(a)?.host ?? ''),
  );
  if (exposed.length === 0) return null;
  return (
    `WARNING: ${exposed.join(' and ')} can be reached from other hosts and no credentials file is configured: ` +
    'ANY client that reaches the port can read, write, delete keys and change the membership. Configure client ' +
    'tokens (raft-kvs: --credentials-file, see docs/security.md)'
  );
}
