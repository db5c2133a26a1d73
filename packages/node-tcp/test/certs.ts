// Throwaway certificates for TLS tests, made by Debian's openssl in a temp directory at test time: no private key is
// checked in. One CA per call; each named certificate is signed by it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, PEM. */
export interface Pair {
  cert: string;
  key: string;
}

/** A CA and the certificates it signed. */
export interface TestPki {
  dir: string;
  ca: string;
  /** Sign a new certificate with subject CN `cn` and, optionally, subjectAltName entries (e.g. `IP:127.0.0.1`). */
  issue(cn: string, san?: string[]): Pair;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/** A fresh CA in a temp directory. */
export function makePki(name = 'test-ca'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'raft-pki-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${name}`], dir);
  let n = 0;
  return {
    dir,
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    issue(cn, san = []) {
      const f = `c${n++}`;
      const ext = san.length > 0 ? ['-addext', `subjectAltName=${san.join(',')}`] : [];
      openssl(['req', ...ec, '-keyout', `${f}.key`, '-out', `${f}.csr`, '-subj', `/CN=${cn}`, ...ext], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${f}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-out',
          `${f}.pem`,
        ].concat(['-days', '2', '-copy_extensions', 'copyall']),
        dir,
      );
      return { cert: readFileSync(join(dir, `${f}.pem`), 'utf8'), key: readFileSync(join(dir, `${f}.key`), 'utf8') };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
