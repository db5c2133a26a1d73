/**
 * The nemesis: one fault at a time, at seeded random intervals, each healed before the next.
 *
 * @packageDocumentation
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, NodeHandle } from './cluster.js';

/** Kinds of fault. */
export const FAULTS = [
  'kill',
  'pause',
  'partition-majority',
  'isolate-leader',
  'bridge',
  'one-way',
  'membership',
  'snapshot',
] as const;
/** One of {@link FAULTS}. */
export type FaultKind = (typeof FAULTS)[number];

/** One fault injected, for the summary. */
export interface FaultRecord {
  /**
   * Which fault: `kill` (SIGKILL, then restart), `pause` (SIGSTOP / SIGCONT), `partition-majority`, `isolate-leader`,
   * `bridge` and `one-way` (proxy rules), `membership` (remove, wipe and re-add a node) or `snapshot` (TakeSnapshot
   * on every live node).
   */
  readonly kind: FaultKind;
  /** Seconds since the run started. */
  readonly at: number;
  /** Wall-clock ms from injecting the fault until it was healed (for kill and membership: until the node is back). */
  readonly ms: number;
  /** What was done, naming nodes `n<index>` (e.g. `SIGSTOP n2 for 3000 ms`, or `no leader to isolate`). */
  readonly detail: string;
  /** Set when the fault could not be carried out as planned (e.g. RemoveServer timed out). */
  readonly problem?: string;
}

/** Options of {@link runNemesis}. */
export interface NemesisOptions {
  /** The cluster to hurt: faults act on its processes and on its proxy rules. */
  readonly cluster: Cluster;
  /**
   * Uniform in [0, 1): decides the order of kinds, targets, durations and the 1 to 3 s gaps between faults. Seeded,
   * it repeats the same choices (not the cluster's timing).
   */
  readonly rand: () => number;
  /** Stop starting faults after this `Date.now()`. */
  readonly until: number;
  /** `Date.now()` when the run started: each record's `at` counts from it. */
  readonly startedAt: number;
  /** Kinds to inject, in rounds that are a seeded shuffle of them all. Default: every kind in {@link FAULTS}. */
  readonly kinds?: readonly FaultKind[];
  /** Receives one line per fault, `[nemesis] t=<s>s <kind>: <detail>`. Default: nothing. */
  readonly log?: (msg: string) => void;
}

/** Injects faults until `until`; every fault is healed before it returns. */
export async function runNemesis(o: NemesisOptions): Promise<FaultRecord[]> {
  const { cluster, rand } = o;
  const log = o.log ?? (() => {});
  const kinds = o.kinds ?? FAULTS;
  const faults: FaultRecord[] = [];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const between = (a: number, b: number) => a + Math.floor(rand() * (b - a));
  const live = () => cluster.nodes.filter((n) => n.proc !== null && !n.paused);
  const leaderNode = async (): Promise<NodeHandle | undefined> => {
    const id = await cluster.leader();
    return id === null ? undefined : cluster.byId(id);
  };
  const ids = cluster.nodes.map((n) => n.id);
  const blockBetween = (a: string[], b: string[]): [string, string][] =>
    a.flatMap((x) =>
      b.flatMap((y): [string, string][] => [
        [x, y],
        [y, x],
      ]),
    );

  // Kinds come in rounds, each a seeded shuffle of all of them, so a one-minute run exercises every kind.
  let round: FaultKind[] = [];
  while (Date.now() < o.until) {
    await sleep(between(1_000, 3_000));
    if (Date.now() >= o.until) break;
    if (round.length === 0) round = [...kinds].sort(() => rand() - 0.5);
    const kind = round.shift()!;
    const at = (Date.now() - o.startedAt) / 1000;
    const t0 = Date.now();
    let detail = '';
    let problem: string | undefined;
    try {
      switch (kind) {
        case 'kill': {
          const target = rand() < 0.4 ? ((await leaderNode()) ?? pick(cluster.nodes)) : pick(cluster.nodes);
          detail = `SIGKILL n${target.index}, restart from its data directory`;
          cluster.kill(target);
          await cluster.waitExit(target);
          await sleep(between(300, 3_000));
          await cluster.spawn(target);
          break;
        }
        case 'pause': {
          const target = rand() < 0.5 ? ((await leaderNode()) ?? pick(cluster.nodes)) : pick(cluster.nodes);
          const ms = between(1_000, 5_000);
          detail = `SIGSTOP n${target.index} for ${ms} ms`;
          cluster.pause(target);
          await sleep(ms);
          cluster.resume(target);
          break;
        }
        case 'partition-majority': {
          const shuffled = [...ids].sort(() => rand() - 0.5);
          const minority = shuffled.slice(0, Math.floor((ids.length - 1) / 2) || 1);
          const majority = shuffled.filter((x) => !minority.includes(x));
          const ms = between(2_000, 6_000);
          detail = `partition ${names(cluster, minority)} | ${names(cluster, majority)} for ${ms} ms`;
          cluster.proxies.setBlocked(blockBetween(minority, majority));
          await sleep(ms);
          break;
        }
        case 'isolate-leader': {
          const leader = await leaderNode();
          if (!leader) {
            detail = 'no leader to isolate';
            break;
          }
          const ms = between(2_000, 6_000);
          detail = `isolate leader n${leader.index} for ${ms} ms`;
          cluster.proxies.setBlocked(
            blockBetween(
              [leader.id],
              ids.filter((x) => x !== leader.id),
            ),
          );
          await sleep(ms);
          break;
        }
        case 'bridge': {
          // A chain: the middle node sees both halves, the halves do not see each other.
          const shuffled = [...ids].sort(() => rand() - 0.5);
          const mid = Math.floor(shuffled.length / 2);
          const left = shuffled.slice(0, mid);
          const right = shuffled.slice(mid + 1);
          const ms = between(2_000, 6_000);
          detail = `bridge ${names(cluster, left)} - n${cluster.byId(shuffled[mid])?.index} - ${names(cluster, right)} for ${ms} ms`;
          cluster.proxies.setBlocked(blockBetween(left, right));
          await sleep(ms);
          break;
        }
        case 'one-way': {
          const x = rand() < 0.5 ? ((await leaderNode()) ?? pick(cluster.nodes)) : pick(cluster.nodes);
          const others = ids.filter((id) => id !== x.id);
          const outgoing = rand() < 0.5;
          const ms = between(2_000, 6_000);
          detail = `one-way: n${x.index} ${outgoing ? 'cannot send to' : 'cannot hear from'} the others for ${ms} ms`;
          cluster.proxies.setBlocked(others.map((y): [string, string] => (outgoing ? [x.id, y] : [y, x.id])));
          await sleep(ms);
          break;
        }
        case 'membership': {
          const target = pick(cluster.nodes);
          detail = `RemoveServer n${target.index}, wipe it, AddServer it back`;
          await cluster.admin('RemoveServer', { addr: target.id, timeoutMs: 20_000 }, 40_000);
          cluster.kill(target);
          await cluster.waitExit(target);
          cluster.wipe(target);
          await cluster.spawn(target);
          await cluster.admin('AddServer', { addr: target.id, timeoutMs: 30_000 }, 60_000);
          break;
        }
        case 'snapshot': {
          const targets = live();
          detail = `TakeSnapshot on ${targets.map((n) => `n${n.index}`).join(', ')}`;
          await Promise.all(targets.map((n) => cluster.adminOn(n, 'TakeSnapshot', {}, 20_000).catch(() => {})));
          break;
        }
      }
    } catch (e) {
      problem = (e as Error).message;
    } finally {
      cluster.proxies.healAll();
      for (const n of cluster.nodes) cluster.resume(n);
    }
    const rec: FaultRecord = { kind, at, ms: Date.now() - t0, detail, ...(problem ? { problem } : {}) };
    faults.push(rec);
    log(`[nemesis] t=${at.toFixed(1)}s ${kind}: ${detail}${problem ? ` (problem: ${problem})` : ''}`);
  }
  return faults;
}

function names(cluster: Cluster, ids: readonly string[]): string {
  return `{${ids.map((id) => `n${cluster.byId(id)?.index}`).join(',')}}`;
}
