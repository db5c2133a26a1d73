/**
 * What travels inside peer frames, and the validation that keeps a hostile or buggy peer from feeding the core
 * anything it does not expect.
 *
 * A frame's payload is an array of items: `[0, message]` (a Raft message), `[1, request]` (a client request a
 * follower forwards to the leader) or `[2, reply]` (the leader's answer). Handshake frames are plain maps.
 *
 * @packageDocumentation
 */

import type { ClusterConfig, Entry, Message, NodeId, SnapshotMeta } from '@raft/core';
import { type Command, type ForwardOp, type ForwardReply, type ForwardRequest, isCommand } from '@raft/runtime';

export type { ForwardOp, ForwardReply, ForwardRequest };

/** One item of a peer frame. */
export type WireItem = [0, Message<Command>] | [1, ForwardRequest] | [2, ForwardReply];

/**
 * Terms, indexes and offsets above this are refused: a peer could otherwise push a term so close to 2^53 that the
 * next election overflows it (2^50 elections or entries will not happen in practice).
 */
const MAX_NUMBER = 2 ** 50;
const isNat = (x: unknown): x is number =>
  typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= MAX_NUMBER;
const isStr = (x: unknown): x is string => typeof x === 'string';
const isBool = (x: unknown): x is boolean => typeof x === 'boolean';
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isIdList = (x: unknown): x is NodeId[] => Array.isArray(x) && x.every(isStr);

function isConfig(x: unknown): x is ClusterConfig {
  return isObj(x) && isIdList(x.voters) && isIdList(x.learners) && (x.oldVoters === undefined || isIdList(x.oldVoters));
}

function isSnapshotMeta(x: unknown): x is SnapshotMeta {
  return isObj(x) && isNat(x.index) && isNat(x.term) && isConfig(x.config);
}

function isEntry(x: unknown): x is Entry<Command> {
  if (!isObj(x) || !isNat(x.term) || !isNat(x.index) || x.index < 1) return false;
  switch (x.type) {
    case 'command':
      return isCommand(x.command);
    case 'noop':
      return true;
    case 'config':
      return isConfig(x.config);
    default:
      return false;
  }
}

function isReadIds(x: unknown): boolean {
  return Array.isArray(x) && x.every((r) => typeof r === 'string' || (typeof r === 'number' && Number.isFinite(r)));
}

/**
 * Check that `x` is a well-formed Raft message addressed to `self`; returns it typed, or a reason for refusing it.
 */
export function checkMessage(x: unknown, self: NodeId): Message<Command> | string {
  if (!isObj(x)) return 'message is not a map';
  if (!isNat(x.term) || !isStr(x.from) || !isStr(x.to)) return 'message header (term, from, to) is malformed';
  if (x.to !== self) return `message is addressed to ${x.to}, not to this server (${self})`;
  let ok: boolean;
  switch (x.type) {
    case 'RequestVote':
      ok = isBool(x.preVote) && isNat(x.lastLogIndex) && isNat(x.lastLogTerm) && isBool(x.transfer);
      break;
    case 'RequestVoteResponse':
      ok = isBool(x.preVote) && isBool(x.granted);
      break;
    case 'AppendEntries': {
      ok = isNat(x.prevLogIndex) && isNat(x.prevLogTerm) && isNat(x.leaderCommit) && isNat(x.seq);
      ok = ok && Array.isArray(x.entries);
      if (ok) {
        const entries = x.entries as unknown[];
        const first = (x.prevLogIndex as number) + 1;
        for (let i = 0; ok && i < entries.length; i++) {
          const e = entries[i];
          ok = isEntry(e) && e.index === first + i;
        }
      }
      break;
    }
    case 'AppendEntriesResponse':
      ok = isBool(x.success) && isNat(x.matchIndex) && isNat(x.seq) && isNat(x.hintIndex) && isNat(x.hintTerm);
      break;
    case 'InstallSnapshot':
      ok = isSnapshotMeta(x.snapshot) && isNat(x.offset) && x.data instanceof Uint8Array && isBool(x.done);
      break;
    case 'InstallSnapshotResponse':
      ok = isNat(x.snapshotIndex) && isNat(x.nextOffset);
      break;
    case 'TimeoutNow':
      ok = true;
      break;
    case 'ReadIndexRequest':
      ok = isReadIds(x.readIds);
      break;
    case 'ReadIndexResponse':
      ok =
        isReadIds(x.readIds) &&
        typeof x.readIndex === 'number' &&
        Number.isSafeInteger(x.readIndex) &&
        x.readIndex >= -1;
      break;
    default:
      return `unknown message type ${JSON.stringify(String(x.type)).slice(0, 40)}`;
  }
  if (x.from === self) return 'message claims to come from this server';
  return ok ? (x as unknown as Message<Command>) : `malformed ${String(x.type)} message`;
}

/** Check a forwarded request; returns it typed or a reason. */
export function checkForwardRequest(x: unknown): ForwardRequest | string {
  if (!Array.isArray(x) || x.length !== 4 || !isNat(x[0]) || !isNat(x[2]) || !isNat(x[3]) || !isObj(x[1])) {
    return 'malformed forwarded request';
  }
  const op = x[1];
  switch (op.t) {
    case 'command':
      if (!isCommand(op)) return 'malformed forwarded command';
      break;
    case 'addServer':
    case 'removeServer':
      if (!isStr(op.addr)) return 'malformed forwarded membership change';
      break;
    case 'transfer':
      if (op.addr !== undefined && !isStr(op.addr)) return 'malformed forwarded transfer';
      break;
    default:
      return 'unknown forwarded request';
  }
  return x as ForwardRequest;
}

/** Check a forwarded reply; returns it typed or a reason. */
export function checkForwardReply(x: unknown): ForwardReply | string {
  if (!Array.isArray(x) || !isNat(x[0])) return 'malformed forwarded reply';
  if (x[1] === 1 && x.length === 3 && isStr(x[2])) return x as ForwardReply;
  if (x[1] === 0 && x.length === 5 && typeof x[2] === 'number' && isStr(x[3]) && (x[4] === null || isObj(x[4]))) {
    return x as ForwardReply;
  }
  return 'malformed forwarded reply';
}
