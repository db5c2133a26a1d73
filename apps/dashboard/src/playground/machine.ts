/**
 * The playground's state machine: the smallest useful {@link Machine}. A command is a string, applying it appends
 * it to a list (what a node card shows under "applied"), and the snapshot is that list as JSON bytes.
 */
import type { ApplyContext, JsonValue, Machine } from '@raft/runtime';

/** Why an input is refused: the page only ever proposes strings. */
const NOT_A_STRING = 'a playground command is a string';

/** Appends every command it applies to {@link ListMachine.applied}. */
export class ListMachine implements Machine<unknown, number> {
  /** Commands applied, in log order. */
  applied: string[] = [];

  /** {@inheritDoc Machine.apply} The output of a command is how many commands were applied with it. */
  apply(input: unknown, ctx: ApplyContext): number {
    if (ctx.kind !== 'Command') return this.applied.length;
    if (typeof input !== 'string') throw new TypeError(NOT_A_STRING);
    this.applied.push(input);
    return this.applied.length;
  }

  /** {@inheritDoc Machine.validate} */
  validate(input: unknown): string | undefined {
    return typeof input === 'string' ? undefined : NOT_A_STRING;
  }

  /** {@inheritDoc Machine.snapshot} */
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.applied));
  }

  /** {@inheritDoc Machine.restore} */
  restore(snapshot: Uint8Array | JsonValue): void {
    const list: unknown =
      snapshot instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(snapshot)) : (snapshot as unknown);
    if (!Array.isArray(list) || !list.every((c) => typeof c === 'string')) {
      throw new TypeError('a playground snapshot is a JSON list of strings');
    }
    this.applied = [...list];
  }
}
