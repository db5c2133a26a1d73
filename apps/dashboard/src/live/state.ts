/**
 * The node's `GetServerState` result (packages/node-tcp/API.md, "ServerState"), read defensively: a field the
 * node does not send shows as unknown instead of breaking the page.
 */

/** Replication progress of one follower, as the leader sees it. */
export interface FollowerProgress {
  matchIndex: number;
  nextIndex: number;
  lag: number;
  state: string;
  inflight: number;
}

/** The fields of ServerState the dashboard shows. */
export interface ServerState {
  id: string;
  role: string;
  membership: string;
  term: number;
  votedFor: string | null;
  leader: string | null;
  voters: string[];
  learners: string[];
  oldVoters: string[] | null;
  commitIndex: number;
  appliedIndex: number;
  firstLogIndex: number;
  lastLogIndex: number;
  lastLogTerm: number;
  snapshotIndex: number;
  snapshotTerm: number;
  followers: Record<string, FollowerProgress> | null;
  uptimeMs: number | null;
  commandsApplied: number | null;
}

const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** Parses a `GetServerState` result; `fallbackId` names the node when the result has no `id`. */
export function parseServerState(raw: unknown, fallbackId: string): ServerState {
  const o = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  let followers: Record<string, FollowerProgress> | null = null;
  if (o.followers !== null && typeof o.followers === 'object') {
    followers = {};
    for (const [id, p] of Object.entries(o.followers as Record<string, unknown>)) {
      const q = (p ?? {}) as Record<string, unknown>;
      const matchIndex = num(q.matchIndex);
      followers[id] = {
        matchIndex,
        nextIndex: num(q.nextIndex),
        lag: num(q.lag, num(o.lastLogIndex) - matchIndex),
        state: str(q.state) ?? '?',
        inflight: num(q.inflight),
      };
    }
  }
  const counters = (o.counters ?? {}) as Record<string, unknown>;
  return {
    id: str(o.id) ?? fallbackId,
    role: str(o.role) ?? 'unknown',
    membership: str(o.membership) ?? '?',
    term: num(o.term),
    votedFor: str(o.votedFor),
    leader: str(o.leader),
    voters: strs(o.voters),
    learners: strs(o.learners),
    oldVoters: Array.isArray(o.oldVoters) ? strs(o.oldVoters) : null,
    commitIndex: num(o.commitIndex),
    appliedIndex: num(o.appliedIndex),
    firstLogIndex: num(o.firstLogIndex),
    lastLogIndex: num(o.lastLogIndex),
    lastLogTerm: num(o.lastLogTerm),
    snapshotIndex: num(o.snapshotIndex),
    snapshotTerm: num(o.snapshotTerm),
    followers,
    uptimeMs: typeof o.uptimeMs === 'number' ? o.uptimeMs : null,
    commandsApplied: typeof counters.commandsApplied === 'number' ? counters.commandsApplied : null,
  };
}

/** A follower's lag as the page shows it: a number of entries, or unknown with the reason why. */
export type LagView = { known: true; lag: number } | { known: false; why: string };

/**
 * What the page can honestly say about a follower's lag (the leader's last index − the follower's match index).
 * Unknown when this page cannot reach the follower itself (a down node's match index only freezes while the
 * leader's log grows: "lag 5236" would be a count of entries the leader appended since, not of a live follower
 * falling behind), and when the leader has not heard from it since taking office (`probe` with match index 0:
 * 0 means "no match known yet", not "holds nothing").
 *
 * @param p - the follower's progress, from the leader's `GetServerState`.
 * @param reachable - whether the page has fresh state from that follower; undefined when the page does not
 *   watch it (then the leader's numbers are all there is).
 */
export function followerLag(p: FollowerProgress, reachable: boolean | undefined): LagView {
  if (reachable === false) return { known: false, why: 'this page cannot reach the follower' };
  if (p.state === 'probe' && p.matchIndex === 0) {
    return { known: false, why: 'the leader has not heard from it since it took office' };
  }
  return { known: true, lag: p.lag };
}

/** A duration for people, as in "last seen 12 s ago": "0.4 s", "12 s", "3 min 5 s". */
export function ago(ms: number): string {
  const t = Math.max(0, ms) / 1000;
  if (t < 1) return `${t.toFixed(1)} s`;
  if (t < 59.5) return `${Math.round(t)} s`;
  const whole = Math.round(t);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}
