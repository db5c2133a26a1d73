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
/** The implementation of both signatures above. */
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

/**
 * A completion that a simulator settles from its own event queue: `then` callbacks run synchronously inside
 * `resolve` / `reject` (or at once when it is already settled), never on the microtask queue. It is what a simulated
 * storage returns, so that "the fsync finished" is an ordinary, ordered event of the simulation.
 */
export class Completion<T> implements PromiseLike<T> {
  private state: 0 | 1 | 2 = 0;
  private value: T | undefined;
  private error: unknown;
  private readonly waiting: [(v: T) => void, (e: unknown) => void][] = [];

  /** An already settled completion. */
  static resolved<T>(value: T): Completion<T> {
    const c = new Completion<T>();
    c.resolve(value);
    return c;
  }

  /** Whether it has settled. */
  get settled(): boolean {
    return this.state !== 0;
  }

  /** Settle with `value` (ignored once settled). */
  resolve(value: T): void {
    if (this.state !== 0) return;
    this.state = 1;
    this.value = value;
    for (const [ok] of this.waiting.splice(0)) ok(value);
  }

  /** Settle with `error` (ignored once settled). */
  reject(error: unknown): void {
    if (this.state !== 0) return;
    this.state = 2;
    this.error = error;
    for (const [, bad] of this.waiting.splice(0)) bad(error);
  }

  /** Like `Promise.prototype.then`, but synchronous: see the class comment. */
  // biome-ignore lint/suspicious/noThenProperty: this is a thenable on purpose (see the class comment).
  then<A = T, B = never>(
    onOk?: ((value: T) => A | PromiseLike<A>) | null,
    onErr?: ((error: unknown) => B | PromiseLike<B>) | null,
  ): Completion<A | B> {
    const next = new Completion<A | B>();
    const settle = (f: (() => A | B | PromiseLike<A | B>) | null) => {
      try {
        const r = f === null ? undefined : f();
        if (isThenable<A | B>(r))
          r.then(
            (v) => next.resolve(v),
            (e) => next.reject(e),
          );
        else next.resolve(r as A | B);
      } catch (e) {
        next.reject(e);
      }
    };
    const ok = (v: T) => settle(onOk ? () => onOk(v) : () => v as unknown as A);
    const bad = (e: unknown) => {
      if (onErr) settle(() => onErr(e));
      else next.reject(e);
    };
    if (this.state === 1) ok(this.value as T);
    else if (this.state === 2) bad(this.error);
    else this.waiting.push([ok, bad]);
    return next;
  }
}
