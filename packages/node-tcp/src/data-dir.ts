/**
 * The server's data directory: the storage-jsonl log opened there, and `node-tcp.json`, which records the id
 * (`host:port`) of the server that owns the directory. A restart with another address is refused, so a data
 * directory cannot pose as another cluster member; a restart with port 0 gets its old port back. Separate from
 * `server.ts` because it is about the files on disk, not about sockets or the runtime.
 *
 * @packageDocumentation
 */

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { type Command, ErrorCode, type RaftStorage, RpcError } from '@raft/runtime';
import { type Codec, openStorage, type JsonValue as StorageJson } from '@raft/storage-jsonl';
import { splitAddress } from './address.js';

/** The metadata file in the data directory. */
export const META_FILE = 'node-tcp.json';

/** What `node-tcp.json` holds. */
export interface DataDirMeta {
  /** The id (`host:port`) of the server that owns the directory. */
  id: string;
  /** The cluster name it was started with (informational). */
  clusterName?: string;
}

/** Log payloads are already JSON values: store them as they are (no per-entry walk). */
const commandCodec: Codec<Command> = {
  encode: (c) => c as unknown as StorageJson,
  decode: (j) => j as unknown as Command,
};

/** The metadata of `dir`, or null when it has none (a fresh directory) or it is unreadable. */
export async function readMeta(dir: string): Promise<DataDirMeta | null> {
  try {
    const v = JSON.parse(await fs.readFile(join(dir, META_FILE), 'utf8')) as { id?: unknown };
    return typeof v.id === 'string' ? (v as { id: string }) : null;
  } catch {
    return null;
  }
}

/** Record the owner of `dir` (atomically: a temporary file renamed), unless it is recorded already. */
export async function writeMeta(dir: string, meta: { id: string; clusterName: string }): Promise<void> {
  const file = join(dir, META_FILE);
  const existing = await readMeta(dir);
  if (existing?.id === meta.id) return;
  await fs.writeFile(`${file}.tmp`, `${JSON.stringify(meta)}\n`);
  await fs.rename(`${file}.tmp`, file);
}

/**
 * Check that `dir` belongs to the server at `address` (or to nobody yet) and return the port to listen on: the
 * given one, or, for port 0, the port recorded in the directory for the same host.
 *
 * @throws RpcError `INVALID_PARAMS` when the directory belongs to another server.
 */
export async function claimDataDir(dir: string, address: string): Promise<number> {
  const addr = splitAddress(address) as { host: string; port: number };
  const known = await readMeta(dir);
  if (known === null) return addr.port;
  const k = splitAddress(known.id);
  if (addr.port === 0 && k !== null && k.host === addr.host) return k.port;
  if (known.id !== address) {
    throw new RpcError(ErrorCode.INVALID_PARAMS, `data directory ${dir} belongs to server ${known.id}, not ${address}`);
  }
  return addr.port;
}

/** Create `dir` (and its parents) if missing. */
export async function ensureDataDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
}

/** Open the storage-jsonl log in `dir` (commands stored as the JSON they are). */
export function openDataDir(dir: string, sync: boolean): Promise<RaftStorage> {
  return openStorage<Command>(dir, { sync, codec: commandCodec });
}
