/**
 * The playground's plain data: options, user actions and their record (for replay links), what is on the wire,
 * and what the page shows of each node. No DOM, no runtime: the engine (`engine.ts`) and the page (`ui.ts`)
 * both import it.
 */
import type { Entry, Message, NodeId, Role } from '@raft/core';
import type { Command, ForwardReply, ForwardRequest } from '@raft/runtime';

/** Timing and size of a playground cluster. Every duration is in virtual milliseconds. */
export interface PlaygroundOptions {
  /** Seed of every random choice. */
  seed: number;
  /** Number of nodes (clamped to 3..7). */
  nodes: number;
  /** Leader heartbeat interval. Default 100. */
  heartbeatMs?: number;
  /**
   * Heartbeats per minimum election timeout (the core's `electionTicks`; at least 2, as the runtime requires).
   * Default 5. The election timeout is random in [`electionTicks` × heartbeat, twice that).
   */
  electionTicks?: number;
  /** Smallest one-way message latency. Default 20. */
  minLatencyMs?: number;
  /** Largest one-way message latency. Default 60. */
  maxLatencyMs?: number;
}

/** Something the user did to the cluster. Every one is recorded for replay. */
export type UserAction =
  | { readonly type: 'crash'; readonly node: NodeId }
  | { readonly type: 'restart'; readonly node: NodeId }
  /** Cut every link of the node (or heal them if they are all cut already). */
  | { readonly type: 'isolate'; readonly node: NodeId }
  /** Cut the link between two nodes, or heal it if it is cut. */
  | { readonly type: 'toggleLink'; readonly a: NodeId; readonly b: NodeId }
  /** Heal every link. */
  | { readonly type: 'heal' }
  /** Lose one message that is in flight. */
  | { readonly type: 'drop'; readonly flightId: number }
  /** Probability (0..1) that any message sent from now on is lost. */
  | { readonly type: 'setLossRate'; readonly rate: number }
  /** Propose a command to the current leader. */
  | { readonly type: 'propose'; readonly command: string }
  /** Ask the current leader to hand leadership to `node`. */
  | { readonly type: 'transfer'; readonly node: NodeId };

/** A user action with the moment it happened: `at` virtual ms, after `step` processed events. */
export interface RecordedAction {
  /** Virtual time of the action, ms. */
  readonly at: number;
  /** Events processed before it. */
  readonly step: number;
  /** What the user did. */
  readonly action: UserAction;
}

/** What became of a user action. */
export type ActionOutcome =
  | { readonly ok: true; readonly detail: string }
  | { readonly ok: false; readonly error: string };

/** What travels on a link: a Raft message, or a client request a node forwards to the leader (and its answer). */
export type Payload =
  | { readonly kind: 'message'; readonly message: Message<Command> }
  /** A request waiting on a node that is not the leader any more is forwarded to the leader it learns of. */
  | { readonly kind: 'forward'; readonly request: ForwardRequest }
  | { readonly kind: 'reply'; readonly reply: ForwardReply };

/** Something on the wire. */
export type Flight = Payload & {
  /** Number shown in the page (and named by a `drop` action). */
  readonly id: number;
  /** Sender. */
  readonly from: NodeId;
  /** Addressee. */
  readonly to: NodeId;
  /** Virtual time it left, ms. */
  readonly sentAt: number;
  /** Virtual time it arrives (or, when dropped, vanishes), ms. */
  readonly deliverAt: number;
  /** Why it will not arrive, once it is known that it will not. */
  dropped: null | 'loss' | 'user' | 'partition' | 'crashed';
};

/** The state of a node's Raft timer (election timeout or heartbeat). */
export interface TimerView {
  /** Which timer the core asked for. */
  readonly kind: 'election' | 'heartbeat';
  /** Virtual time it was set, ms. */
  readonly setAt: number;
  /** Virtual time it fires, ms. */
  readonly deadline: number;
}

/** What the UI shows of one node. */
export interface NodeView {
  /** The node's id. */
  readonly id: NodeId;
  /** False while crashed. */
  readonly up: boolean;
  /** True when every link to the other nodes is cut. */
  readonly isolated: boolean;
  /** Role (a crashed node shows `follower`). */
  readonly role: Role;
  /** Current term (a crashed node: its durable one). */
  readonly term: number;
  /** Vote in the current term. */
  readonly votedFor: NodeId | null;
  /** The leader it knows. */
  readonly leaderId: NodeId | null;
  /** Highest index it knows committed. */
  readonly commitIndex: number;
  /** Highest index its state machine applied. */
  readonly lastApplied: number;
  /** Index of its last log entry. */
  readonly lastLogIndex: number;
  /**
   * The log (from the durable copy when the node is down). A command entry holds the runtime's payload, whose
   * `input` is the command's JSON text: {@link commandText} gives the command back.
   */
  readonly log: readonly Entry<Command>[];
  /** Its Raft timer, or null (crashed). */
  readonly timer: TimerView | null;
  /** Commands the node's state machine applied, in order (lost on a crash, re-applied after restart). */
  readonly applied: readonly string[];
  /** Leader only: each follower's match index. */
  readonly matchIndex: Readonly<Record<NodeId, number>>;
}

/** A line of the event log shown under the cluster. */
export interface LogLine {
  /** Virtual time, ms. */
  readonly at: number;
  /** What happened. */
  readonly text: string;
}

/** Thrown when a user action names something that does not exist (a programming error in the caller). */
export class PlaygroundError extends Error {
  /**
   * @param code - `NO_SUCH_NODE`: an action names an unknown node; `BAD_ACTION`: an unknown action type;
   *   `RUNAWAY`: the nodes kept producing work at one instant beyond any plausible bound (a bug)
   * @param message - what was wrong
   */
  constructor(
    readonly code: 'NO_SUCH_NODE' | 'BAD_ACTION' | 'RUNAWAY',
    message: string,
  ) {
    super(message);
    this.name = 'PlaygroundError';
  }
}

/** The command a log entry's payload carries (its `input` is JSON text; the playground's inputs are strings). */
export function commandText(command: Command): string {
  try {
    const v: unknown = JSON.parse(command.input);
    return typeof v === 'string' ? v : command.input;
  } catch {
    return command.input;
  }
}

/** The name of what a flight carries: the Raft message type, `Forward` or `ForwardReply`. */
export function flightType(f: Payload): string {
  if (f.kind === 'message') return f.message.type;
  return f.kind === 'forward' ? 'Forward' : 'ForwardReply';
}

/** A short human description of a user action, for the event log. */
export function describeAction(a: UserAction): string {
  switch (a.type) {
    case 'crash':
    case 'restart':
    case 'isolate':
      return `${a.type} ${a.node}`;
    case 'toggleLink':
      return `toggle link ${a.a}–${a.b}`;
    case 'heal':
      return 'heal network';
    case 'drop':
      return `drop message #${a.flightId}`;
    case 'setLossRate':
      return `set loss ${Math.round(a.rate * 100)}%`;
    case 'propose':
      return `propose ${JSON.stringify(a.command)}`;
    case 'transfer':
      return `transfer leadership to ${a.node}`;
  }
}

/** Encodes recorded actions for a URL (`&replay=`): compact JSON, URI-safe. */
export function encodeReplay(actions: readonly RecordedAction[]): string {
  return encodeURIComponent(JSON.stringify(actions.map((r) => [r.at, r.step, r.action])));
}

/** Decodes {@link encodeReplay}'s output; returns an empty list for anything malformed. */
export function decodeReplay(text: string): RecordedAction[] {
  try {
    const raw = JSON.parse(decodeURIComponent(text)) as unknown;
    if (!Array.isArray(raw)) return [];
    const out: RecordedAction[] = [];
    for (const row of raw) {
      if (!Array.isArray(row) || typeof row[0] !== 'number' || typeof row[1] !== 'number') return [];
      const action = row[2] as UserAction;
      if (action === null || typeof action !== 'object' || typeof action.type !== 'string') return [];
      out.push({ at: row[0], step: row[1], action });
    }
    return out;
  } catch {
    return [];
  }
}
