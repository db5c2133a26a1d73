/**
 * The key-value store as a `@raft/node-tcp` state machine: validation before the log, deterministic apply,
 * snapshot and restore of the whole map.
 *
 * @packageDocumentation
 */
import type { ApplyContext, ApplyKind, JsonValue, Machine } from '@raft/node-tcp';
import { isMutation, KvsStore, parseKvsInput } from './kvs.js';

/**
 * Creates the key-value {@link Machine} a `raft-kvs` server runs.
 *
 * Choices:
 * - Invalid inputs are refused by `validate`, so they get JSON-RPC invalid params (-32602) and never reach the log.
 * - A mutation (Put, Delete, Cas) sent as `Query` or `LocalQuery` is refused too: reads run on one member only, so
 *   letting them change state would make members diverge.
 */
export function createKvsMachine(): Machine<unknown, JsonValue> & { readonly store: KvsStore } {
  const store = new KvsStore();
  return {
    store,
    validate(input: unknown, kind: ApplyKind): string | undefined {
      const parsed = parseKvsInput(input);
      if (!parsed.ok) return parsed.error;
      if (kind !== 'Command' && isMutation(parsed.op)) {
        return `${parsed.op.op} changes the store, so it must be sent with kind "Command", not "${kind}"`;
      }
      return undefined;
    },
    apply(input: unknown, _ctx: ApplyContext): JsonValue {
      const parsed = parseKvsInput(input);
      // validate() ran before the command entered the log; an entry that still fails to parse came from a peer
      // running a different version, so fail loudly (MACHINE_ERROR to the caller) instead of guessing.
      if (!parsed.ok) throw new TypeError(parsed.error);
      return store.execute(parsed.op);
    },
    // Captures the map now, serialises it in slices so heartbeats keep flowing while a large state is written.
    snapshot(): Promise<Uint8Array> {
      return store.snapshotInSlices();
    },
    restore(snapshot): void {
      if (!(snapshot instanceof Uint8Array)) throw new TypeError('kvs snapshot must be bytes');
      store.restore(snapshot);
    },
  };
}
