/**
 * Continuations that stay synchronous when the value is already there. The runtime chains I/O with these instead of
 * `async`/`await`: with a real storage they behave like `then`, and with a simulator's synchronous storage and
 * machine every step runs inside the simulator's event, so a simulated run stays one deterministic sequence of
 * events with nothing left in the microtask queue.
 *
 * @packageDocumentation
 */

/** A value, or a completion of one. */
export type MaybePromise<T> = T | PromiseLike<T>;

/** Whether `x` is a thenable. */
export function isThenable<T>(x: unknown): x is PromiseLike<T> {
  return (
    x !== null &&
    (typeof x === 'object' || typeof x === 'function') &&
    typeof (x as { then?: unknown }).then === 'function'
  );
}

/** A synchronous failure carried as a value (see {@link attempt}). */
export class Failure {
  /** @param error - what was thrown. */
  constructor(readonly error: unknown) {}
}

/**
 * `ok(value)` once `x` is there (at once if it already is), or `err(error)` if it fails (a rejected completion or a
 * {@link Failure}); a throw in `ok` goes to the result, not to `err`, as with `then`.
 */
export function after<T, U>(
  x: MaybePromise<T>,
  ok: (v: T) => MaybePromise<U>,
  err?: (e: unknown) => MaybePromise<U>,
): MaybePromise<U>;
/** {@inheritDoc after} */
export function after<T, U>(
  x: MaybePromise<T> | Failure,
  ok: (v: T) => MaybePromise<U>,
  err?: (e: unknown) => MaybePromise<U>,
): MaybePromise<U> | Failure;
export function after<T, U>(
  x: MaybePromise<T> | Failure,
  ok: (v: T) => MaybePromise<U>,
  err?: (e: unknown) => MaybePromise<U>,
): MaybePromise<U> | Failure {
  if (x instanceof Failure) return err !== undefined ? err(x.error) : x;
  if (isThenable<T>(x)) return x.then(ok, err);
  return ok(x);
}

/** Run `f`; a synchronous throw becomes a {@link Failure} (so callers handle one failure path with `after`). */
export function attempt<T>(f: () => MaybePromise<T>): MaybePromise<T> | Failure {
  try {
    return f();
  } catch (e) {
    return new Failure(e);
  }
}

/**
 * A serial queue: each step starts when the one before it has settled (whatever its outcome), so chunks of an
 * incoming snapshot are written in order without a promise chain.
 */
export class Serial {
  private running = false;
  private readonly queue: (() => MaybePromise<void>)[] = [];

  /** Append a step; its failure goes to `onError` and the queue goes on. */
  push(step: () => MaybePromise<void> | Failure, onError: (e: unknown) => void): void {
    this.queue.push(() => {
      try {
        const r = after(step(), () => undefined, onError);
        return r instanceof Failure ? undefined : r;
      } catch (e) {
        onError(e);
        return undefined;
      }
    });
    if (!this.running) this.next();
  }

  private next(): void {
    const step = this.queue.shift();
    if (step === undefined) {
      this.running = false;
      return;
    }
    this.running = true;
    const r = step();
    if (isThenable(r))
      r.then(
        () => this.next(),
        () => this.next(),
      );
    else this.next();
  }
}
