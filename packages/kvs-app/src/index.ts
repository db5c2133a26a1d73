/**
 * `@raft/kvs-app`: the replicated key-value store (its state machine, a server factory and the `raft-kvs` CLI).
 *
 * @packageDocumentation
 */
export { type FlagSpec, type ParsedArgs, parseArgs, UsageError } from './args.js';
export { CallError, type CallSecurity, callLines, expectedResponses, parseAddr, requestLine } from './call.js';
export * from './kvs.js';
export { createKvsMachine } from './machine.js';
export { clientTls, clientToken, runToken, serverTls } from './security.js';
export { defaultDataDir, type KvsServerOptions, startKvsServer } from './serve.js';
