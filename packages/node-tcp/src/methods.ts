/**
 * raftpico's JSON-RPC methods mapped onto the runtime's typed requests: parameter checks and nothing else. What a
 * method does is decided by `@raft/runtime`.
 *
 * @packageDocumentation
 */

import { ErrorCode, errors, RpcError, type RuntimeRequest } from '@raft/runtime';
import { splitAddress } from './address.js';

/** The JSON-RPC methods this server knows. */
export const METHODS = [
  'CreateCluster',
  'AddServer',
  'RemoveServer',
  'Apply',
  'TakeSnapshot',
  'GetServerState',
  'TransferLeadership',
] as const;

const invalidParams = errors.invalidParams;

/** `timeoutMs` from params: undefined when absent, or the error. (Functions, not closures: this runs per request.) */
function timeoutOf(obj: Record<string, unknown>): number | undefined | RpcError {
  const t = obj.timeoutMs;
  if (t === undefined) return undefined;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 3_600_000) {
    return invalidParams('"timeoutMs" must be a positive number of milliseconds (at most one hour)');
  }
  return t;
}

/** `addr` from params: a valid `host:port`, or the error. */
function addrOf(obj: Record<string, unknown>, isObj: boolean): string | RpcError {
  if (!isObj || typeof obj.addr !== 'string' || splitAddress(obj.addr) === null) {
    return invalidParams('"addr" must be a server address "host:port"');
  }
  return obj.addr;
}

/** `{ timeoutMs }` when one was given, else nothing (so requests without one carry no extra field). */
const withTimeout = (t: number | undefined): { timeoutMs?: number } => (t === undefined ? {} : { timeoutMs: t });

/**
 * The runtime request a JSON-RPC call stands for, or the error to answer with. `GetServerState` maps to a `state`
 * request (the server adds its own fields to the answer).
 */
export function toRuntimeRequest(method: string, params: unknown): RuntimeRequest | RpcError {
  const obj = (params ?? {}) as Record<string, unknown>;
  const isObj = params === undefined || (typeof params === 'object' && params !== null && !Array.isArray(params));
  switch (method) {
    case 'Apply': {
      if (!isObj || params === undefined) return invalidParams('Apply needs {"kind", "input"}');
      const kind = obj.kind ?? 'Command';
      if (kind !== 'Command' && kind !== 'Query' && kind !== 'LocalQuery') {
        return invalidParams('"kind" must be "Command", "Query" or "LocalQuery"');
      }
      if (!('input' in obj) || obj.input === undefined) return invalidParams('"input" is missing');
      const t = timeoutOf(obj);
      if (t instanceof RpcError) return t;
      const { clientId, seq } = obj;
      if (clientId !== undefined || seq !== undefined) {
        if (kind !== 'Command') return invalidParams('"clientId" and "seq" apply to commands only');
        if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 256) {
          return invalidParams('"clientId" must be a non-empty string of at most 256 characters');
        }
        if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
          return invalidParams('"seq" must be a non-negative integer');
        }
        return { type: 'command', input: obj.input, clientId, seq, ...withTimeout(t) };
      }
      // The common requests, without a timeout, are built without spreading an empty object.
      if (kind === 'Command') {
        return t === undefined
          ? { type: 'command', input: obj.input }
          : { type: 'command', input: obj.input, timeoutMs: t };
      }
      if (kind === 'Query') {
        return t === undefined
          ? { type: 'query', input: obj.input }
          : { type: 'query', input: obj.input, timeoutMs: t };
      }
      return { type: 'localQuery', input: obj.input };
    }
    case 'CreateCluster':
      return isObj ? { type: 'createCluster' } : invalidParams('CreateCluster takes no params (or an object)');
    case 'AddServer':
    case 'RemoveServer': {
      const a = addrOf(obj, isObj);
      if (a instanceof RpcError) return a;
      const t = timeoutOf(obj);
      if (t instanceof RpcError) return t;
      return { type: method === 'AddServer' ? 'addServer' : 'removeServer', addr: a, ...withTimeout(t) };
    }
    case 'TransferLeadership': {
      if (!isObj) return invalidParams('TransferLeadership takes {"addr"?}');
      const t = timeoutOf(obj);
      if (t instanceof RpcError) return t;
      if (obj.addr === undefined) return { type: 'transferLeadership', ...withTimeout(t) };
      const a = addrOf(obj, isObj);
      if (a instanceof RpcError) return a;
      return { type: 'transferLeadership', addr: a, ...withTimeout(t) };
    }
    case 'TakeSnapshot':
      return { type: 'takeSnapshot' };
    case 'GetServerState':
      if (!isObj) return invalidParams('GetServerState takes no params (or {"stateHash": true})');
      return { type: 'state', stateHash: obj.stateHash === true };
    default:
      return new RpcError(
        ErrorCode.METHOD_NOT_FOUND,
        `method not found: ${JSON.stringify(method).slice(0, 100)}; known methods are ${METHODS.join(', ')}`,
      );
  }
}
