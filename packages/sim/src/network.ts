/**
 * The simulated network: latency (hence reordering), loss, duplication, bursts of both, and partitions, including
 * asymmetric (one-way) ones.
 *
 * @packageDocumentation
 */
import type { NodeId } from '@raft/core';
import type { Prng } from './prng.js';

/** Fault and latency settings of the simulated network. Every field can be changed while a simulation runs. */
export interface NetworkOptions {
  /** Smallest one-way latency in ms (inclusive). Default 1. */
  minLatencyMs: number;
  /** Largest one-way latency in ms (exclusive). Random latencies reorder messages. Default 8. */
  maxLatencyMs: number;
  /** Probability that a message is lost. Default 0. */
  dropRate: number;
  /** Probability that a message is delivered twice (with independent latencies). Default 0. */
  duplicateRate: number;
}

/** The defaults of {@link NetworkOptions}: a reliable network with 1–8 ms latency. */
export const DEFAULT_NETWORK: Readonly<NetworkOptions> = {
  minLatencyMs: 1,
  maxLatencyMs: 8,
  dropRate: 0,
  duplicateRate: 0,
};

/**
 * Decides the fate of each message (lost, delivered once after some latency, or duplicated) and which links are cut.
 * Partitions are a set of blocked directed links: `block(a, b)` stops messages from `a` to `b` only.
 */
export class Network {
  /** The current settings (mutable). */
  readonly options: NetworkOptions;
  private readonly blocked = new Map<NodeId, Set<NodeId>>();
  private dropBurst = { until: -1, rate: 0 };
  private dupBurst = { until: -1, rate: 0 };

  /**
   * @param random - the simulation's generator (shared, so that the whole run depends on one seed)
   * @param options - overrides of {@link DEFAULT_NETWORK}
   */
  constructor(
    private readonly random: Prng,
    options: Partial<NetworkOptions> = {},
  ) {
    this.options = { ...DEFAULT_NETWORK, ...options };
    if (this.options.maxLatencyMs < this.options.minLatencyMs) {
      throw new RangeError('maxLatencyMs must be >= minLatencyMs');
    }
  }

  /** @returns true when messages from `from` to `to` currently get through the partition. */
  connected(from: NodeId, to: NodeId): boolean {
    const set = this.blocked.get(from);
    return set === undefined || !set.has(to);
  }

  /** Cuts the link from `from` to `to` (one way). */
  block(from: NodeId, to: NodeId): void {
    let set = this.blocked.get(from);
    if (set === undefined) this.blocked.set(from, (set = new Set()));
    set.add(to);
  }

  /** Restores the link from `from` to `to` (one way). */
  unblock(from: NodeId, to: NodeId): void {
    this.blocked.get(from)?.delete(to);
  }

  /** Cuts every link to and from `id` (against every node in `all`). */
  isolate(id: NodeId, all: readonly NodeId[]): void {
    for (const other of all) {
      if (other === id) continue;
      this.block(id, other);
      this.block(other, id);
    }
  }

  /** Restores every link to and from `id`. */
  reconnect(id: NodeId, all: readonly NodeId[]): void {
    for (const other of all) {
      this.unblock(id, other);
      this.unblock(other, id);
    }
  }

  /**
   * Splits the nodes into groups that cannot talk to each other (both directions). Nodes of `all` that appear in no
   * group form one extra group together. Replaces the previous partition.
   */
  partition(groups: readonly (readonly NodeId[])[], all: readonly NodeId[]): void {
    this.blocked.clear();
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i);
    });
    for (const a of all) {
      for (const b of all) {
        if (a !== b && (groupOf.get(a) ?? -1) !== (groupOf.get(b) ?? -1)) this.block(a, b);
      }
    }
  }

  /** Removes every partition and ends any loss or duplication burst (base rates stay). */
  heal(): void {
    this.blocked.clear();
    this.dropBurst = { until: -1, rate: 0 };
    this.dupBurst = { until: -1, rate: 0 };
  }

  /** @returns the blocked links as `[from, to]` pairs (sorted, for display). */
  blockedLinks(): [NodeId, NodeId][] {
    const out: [NodeId, NodeId][] = [];
    for (const [from, set] of this.blocked) for (const to of set) out.push([from, to]);
    return out.sort((x, y) => (x[0] === y[0] ? (x[1] < y[1] ? -1 : 1) : x[0] < y[0] ? -1 : 1));
  }

  /** Until virtual time `until`, messages are lost with probability `rate` (on top of the base drop rate). */
  dropBurstUntil(until: number, rate: number): void {
    this.dropBurst = { until, rate };
  }

  /** Until virtual time `until`, messages are duplicated with probability `rate` (on top of the base rate). */
  duplicateBurstUntil(until: number, rate: number): void {
    this.dupBurst = { until, rate };
  }

  /**
   * Decides what happens to a message sent at `now` on a connected link.
   *
   * @returns the latencies of the copies that will be delivered: `[]` when lost, two values when duplicated
   */
  fate(now: number): number[] {
    const o = this.options;
    const drop = now < this.dropBurst.until ? 1 - (1 - o.dropRate) * (1 - this.dropBurst.rate) : o.dropRate;
    if (drop > 0 && this.random.chance(drop)) return [];
    const first = this.latency();
    const dup = now < this.dupBurst.until ? 1 - (1 - o.duplicateRate) * (1 - this.dupBurst.rate) : o.duplicateRate;
    if (dup > 0 && this.random.chance(dup)) return [first, this.latency()];
    return [first];
  }

  private latency(): number {
    const { minLatencyMs, maxLatencyMs } = this.options;
    return maxLatencyMs > minLatencyMs ? this.random.int(minLatencyMs, maxLatencyMs) : minLatencyMs;
  }
}
