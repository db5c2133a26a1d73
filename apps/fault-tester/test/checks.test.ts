import type { HistoryEvent } from '@raft/linearizability';
import { ConnectionError, ErrorCode, RpcError } from '@raft/node-tcp';
import { describe, expect, it } from 'vitest';
import { classifyError } from '../src/clients.js';
import { lostWrites } from '../src/run.js';

describe('recording outcomes', () => {
  it('records fail only for errors documented as not applied', () => {
    expect(classifyError(new RpcError(ErrorCode.NO_LEADER, 'no leader'))).toBe('fail');
    expect(classifyError(new RpcError(ErrorCode.PROPOSAL_LOST, 'lost'))).toBe('fail');
    expect(classifyError(new RpcError(ErrorCode.SHUTTING_DOWN, 'bye', { notApplied: true }))).toBe('fail');
    expect(classifyError(new RpcError(ErrorCode.TIMEOUT, 'slow'))).toBe('info');
    expect(classifyError(new RpcError(ErrorCode.SHUTTING_DOWN, 'bye'))).toBe('info');
    expect(classifyError(new ConnectionError('refused', false))).toBe('fail');
    expect(classifyError(new ConnectionError('reset', true))).toBe('info');
    expect(classifyError(new Error('anything else'))).toBe('info');
  });
});

describe('lost acknowledged writes', () => {
  const ev = (process: number, type: HistoryEvent['type'], f: HistoryEvent['f'], value: unknown, time: number) =>
    ({ process, type, f, key: 'k0', ...(value === undefined ? {} : { value }), time }) as HistoryEvent;

  it('accepts a final value written by the last acknowledged write or a concurrent/unknown one', () => {
    const h = [
      ev(1, 'invoke', 'put', 'a', 0),
      ev(1, 'ok', 'put', 'a', 1),
      ev(1, 'invoke', 'put', 'b', 2),
      ev(2, 'invoke', 'put', 'c', 3),
      ev(1, 'ok', 'put', 'b', 4),
      ev(2, 'info', 'put', 'c', 5),
    ];
    expect(lostWrites(h, new Map([['k0', 'b']]))).toEqual([]);
    expect(lostWrites(h, new Map([['k0', 'c']]))).toEqual([]);
  });

  it('reports a final value that an acknowledged later write should have replaced', () => {
    const h = [
      ev(1, 'invoke', 'put', 'a', 0),
      ev(1, 'ok', 'put', 'a', 1),
      ev(1, 'invoke', 'put', 'b', 2),
      ev(1, 'ok', 'put', 'b', 3),
    ];
    expect(lostWrites(h, new Map([['k0', 'a']]))).toHaveLength(1);
    expect(lostWrites(h, new Map([['k0', null]]))).toHaveLength(1);
  });
});
