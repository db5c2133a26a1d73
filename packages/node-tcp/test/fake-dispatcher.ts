// A fake server behind an RpcFrontend, shared by the front-end tests (TCP lines and HTTP): no Raft, just answers.
import { type ApplyOutcome, silentLogger } from '@raft/runtime';
import type { Caller } from '../src/auth.js';
import type { RpcFrontendOptions } from '../src/rpc.js';

/** `Big {n}` answers n characters, `Later` only when the test calls the saved `done`, anything else its params. */
export class FakeDispatcher {
  readonly counters = { rpcRequests: 0, rpcErrors: 0, clientConnections: 0 };
  /** Every call, in order, with the `turn` the test had set when it was dispatched. */
  readonly calls: { method: string; params: unknown; turn: number }[] = [];
  readonly later: ((o: ApplyOutcome) => void)[] = [];
  turn = 0;
  dispatch(method: string, params: unknown, done: (o: ApplyOutcome) => void): void {
    this.calls.push({ method, params, turn: this.turn });
    if (method === 'Big') done({ ok: true, output: 'x'.repeat((params as { n: number }).n) });
    else if (method === 'Later') this.later.push(done);
    else done({ ok: true, output: params ?? null });
  }
  stateJson(): string {
    return '{}';
  }
  authenticate(): Caller {
    return { name: 'anonymous', role: 'admin' };
  }
  authorize(): null {
    return null;
  }
}

/** Small limits for front-end tests (1 MiB answers, no idle timeout). */
export const BASE: RpcFrontendOptions = {
  maxLineBytes: 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
  maxClientOutputBytes: 1024 * 1024,
  maxBatchRequests: 10_000,
  maxClientConnections: 100,
  clientIdleTimeoutMs: 0,
  logger: silentLogger,
};
