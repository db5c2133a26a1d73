/**
 * Client requests inside the runtime: run a request here, forward it to the leader, or wait for one; wait for
 * membership changes to commit; and answer forwarded requests from other nodes. Every request is a
 * {@link ClientRequest}, whose phase decides what its caller is told.
 *
 * @packageDocumentation
 */

import { isVoter, type NodeId, type ReadId, type Term } from '@raft/core';
import { Deadlines } from './deadlines.js';
import { ErrorCode, errors, RpcError } from './errors.js';
import type { ForwardOp, ForwardReply, ForwardRequest } from './io.js';
import { type ApplyOutcome, type Command, toJsonText } from './machine.js';
import { ClientRequest, fail, type RequestPhase, type WaitReason } from './request.js';
import type { RaftRuntime } from './runtime.js';
import { isMember, membersOf } from './runtime.js';
import type { RuntimeRequest } from './types.js';

type Done = (o: ApplyOutcome) => void;

const okJson = (output: unknown): ApplyOutcome => ({ ok: true, output, json: toJsonText(output) });

/** How many times a request may be passed from node to node before it waits instead (leaders change under it). */
const MAX_HOPS = 3;

/** The runtime's request bookkeeping (one per runtime). */
export class Requests {
  /** Requests in progress. */
  inflight = 0;
  private readonly proposals = new Map<number, { term: Term; req: ClientRequest }>();
  private readonly reads = new Map<ReadId, { req: ClientRequest; input: unknown }>();
  private readSeq = 0;
  private readonly forwards = new Map<number, ClientRequest>();
  private forwardSeq = 0;
  private waiters: ClientRequest[] = [];
  private waiterTimer: unknown = undefined;
  private memberWaits: { req: ClientRequest; check: () => ApplyOutcome | null }[] = [];

  /** Every request's deadline, on one timer. */
  private readonly deadlines: Deadlines;
  /** What a timeout's answer needs from the node (one function for all requests). */
  private readonly timeoutContext = () => {
    const rt = this.rt;
    return { leaderKnown: rt.node.leaderId !== null, member: rt.isMemberNow(), self: rt.id };
  };
  private readonly releasedFn = (req: ClientRequest, before: RequestPhase) => this.released(req, before);

  constructor(private readonly rt: RaftRuntime) {
    this.deadlines = new Deadlines(rt.clock);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Entry points
  // ---------------------------------------------------------------------------------------------------------------

  submit(r: RuntimeRequest, done: Done): void {
    const rt = this.rt;
    switch (r.type) {
      case 'command':
      case 'query':
      case 'localQuery': {
        const kind = r.type === 'command' ? 'Command' : r.type === 'query' ? 'Query' : 'LocalQuery';
        const why = this.validate(r.input, kind);
        if (why !== undefined) {
          done(fail(errors.invalidParams(`the input was refused: ${why}`, { reason: why })));
          return;
        }
        if (r.type === 'localQuery') {
          if (!this.usable(done)) return;
          rt.counters.localQueriesServed++;
          done(rt.rm.query(r.input, 'LocalQuery', rt.appliedIndex));
          return;
        }
        if (r.type === 'query') {
          const req = this.track('the query', false, r.timeoutMs, done);
          if (req !== null) this.submitQuery(req, r.input);
          return;
        }
        const text = JSON.stringify(r.input);
        if (text === undefined) {
          done(fail(errors.invalidParams('"input" has no JSON form')));
          return;
        }
        if (text.length > rt.o.maxCommandBytes) {
          done(fail(errors.invalidParams(`the input is too large (${text.length} bytes of JSON)`)));
          return;
        }
        const req = this.track('the command', true, r.timeoutMs, done);
        if (req === null) return;
        const cmd: Command =
          r.clientId !== undefined && r.seq !== undefined
            ? { input: text, clientId: r.clientId, seq: r.seq }
            : { input: text };
        this.submitCommand(req, cmd, 0);
        return;
      }
      case 'createCluster':
        this.createCluster(done);
        return;
      case 'addServer':
      case 'removeServer': {
        const req = this.track(
          `${r.type === 'addServer' ? 'AddServer' : 'RemoveServer'} ${r.addr}`,
          true,
          r.timeoutMs,
          done,
        );
        if (req !== null) this.submitMembership(req, { t: r.type, addr: r.addr }, 0);
        return;
      }
      case 'transferLeadership': {
        const req = this.track('the leadership transfer', true, r.timeoutMs, done);
        if (req !== null) {
          this.submitMembership(req, r.addr === undefined ? { t: 'transfer' } : { t: 'transfer', addr: r.addr }, 0);
        }
        return;
      }
      case 'takeSnapshot':
        if (!this.usable(done)) return;
        rt.snapshots.take((e) => {
          if (e === undefined) done(okJson({ snapshotIndex: rt.snapshotMeta?.index ?? 0 }));
          else if (e instanceof RpcError) done(fail(e));
          else if (rt.failure !== null) done(fail(rt.failure));
          else done(fail(errors.internal(`cannot take a snapshot: ${(e as Error)?.message ?? String(e)}`)));
        });
        return;
      case 'state': {
        if (!rt.isRunning) {
          done(fail(errors.shuttingDown()));
          return;
        }
        const state = rt.state();
        if (r.stateHash !== true) {
          done({ ok: true, output: state });
          return;
        }
        // The hash captures the replicated state now (at state.appliedIndex); only the hashing finishes later.
        rt.rm.stateHash().then(
          (stateHash) => done({ ok: true, output: { ...state, stateHash } }),
          (e) => done(fail(errors.internal(`cannot hash the state: ${(e as Error)?.message ?? String(e)}`))),
        );
        return;
      }
    }
  }

  private validate(input: unknown, kind: 'Command' | 'Query' | 'LocalQuery'): string | undefined {
    if (input === undefined) return '"input" is missing';
    const m = this.rt.rm.machine;
    if (m.validate === undefined) return undefined;
    try {
      return m.validate(input, kind);
    } catch (e) {
      return (e as Error)?.message ?? String(e);
    }
  }

  /** False (and `done` told why) when the node cannot serve at all. */
  private usable(done: Done): boolean {
    if (!this.rt.isRunning) {
      done(fail(errors.shuttingDown()));
      return false;
    }
    if (this.rt.failure !== null) {
      done(fail(this.rt.failure));
      return false;
    }
    return true;
  }

  private track(what: string, mutates: boolean, timeoutMs: number | undefined, done: Done): ClientRequest | null {
    if (!this.usable(done)) return null;
    const rt = this.rt;
    if (this.inflight >= rt.o.maxInflightRequests) {
      done(
        fail(
          new RpcError(ErrorCode.OVERLOADED, `too many requests in progress (${this.inflight}); retry later`, {
            notApplied: true,
          }),
        ),
      );
      return null;
    }
    this.inflight++;
    return new ClientRequest(
      what,
      mutates,
      timeoutMs ?? rt.o.requestTimeoutMs,
      this.deadlines,
      done,
      this.timeoutContext,
      this.releasedFn,
    );
  }

  /** A request settled: forget it wherever it was registered. */
  private released(_req: ClientRequest, before: RequestPhase): void {
    this.inflight--;
    // A late answer to a forwarded request has nobody to go to: forget it now rather than when (if) it arrives.
    if (before.kind === 'forwarded') this.forwards.delete(before.id);
  }

  /** Fail every request in progress (stopping, or the node failed). */
  failAll(error: RpcError): void {
    const all: ClientRequest[] = [
      ...[...this.proposals.values()].map((x) => x.req),
      ...[...this.reads.values()].map((x) => x.req),
      ...this.forwards.values(),
      ...this.waiters,
      ...this.memberWaits.map((w) => w.req),
    ];
    this.proposals.clear();
    this.reads.clear();
    this.forwards.clear();
    this.waiters = [];
    this.memberWaits = [];
    this.rt.clock.clearTimeout(this.waiterTimer);
    this.waiterTimer = undefined;
    for (const req of all) req.settle(fail(error));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // What the action loop reports
  // ---------------------------------------------------------------------------------------------------------------

  /** The proposal waiting for the entry at `index`, removed from the table. */
  takeProposal(index: number): { term: Term; req: ClientRequest } | undefined {
    const p = this.proposals.get(index);
    if (p !== undefined) this.proposals.delete(index);
    return p;
  }

  readReady(readId: ReadId): void {
    const r = this.reads.get(readId);
    if (r === undefined) return;
    this.reads.delete(readId);
    this.rt.counters.queriesServed++;
    r.req.settle(this.rt.rm.query(r.input, 'Query', this.rt.appliedIndex));
  }

  readFailed(readId: ReadId): void {
    const r = this.reads.get(readId);
    if (r === undefined) return;
    this.reads.delete(readId);
    // The retry is made here, not for every read: reads fail rarely, and each read is served at high rates.
    r.req.retry = () => this.submitQuery(r.req, r.input);
    this.waitLeader(r.req);
  }

  /** Proposals covered by an installed snapshot: their outcome is in the snapshot, not in an apply action. */
  snapshotCovers(index: number): void {
    for (const [i, prop] of this.proposals) {
      if (i > index) continue;
      this.proposals.delete(i);
      prop.req.settle(fail(errors.timeout('the command', prop.req.timeoutMs, false)));
    }
  }

  checkMemberWaits(): void {
    const keep: typeof this.memberWaits = [];
    for (const w of this.memberWaits) {
      if (w.req.settled) continue;
      const r = w.check();
      if (r === null) keep.push(w);
      else w.req.settle(r);
    }
    this.memberWaits = keep;
  }

  drainWaiters(): void {
    if (!this.rt.isRunning) return;
    const list = this.waiters;
    this.waiters = [];
    for (const req of list) if (!req.settled) req.retry();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Routing
  // ---------------------------------------------------------------------------------------------------------------

  /** Retry `req` when a leader is known (checked on leader changes and every heartbeat interval). */
  private waitLeader(req: ClientRequest, reason: WaitReason = 'leader'): void {
    if (req.settled) return;
    req.wait(reason);
    this.waiters.push(req);
    if (this.waiterTimer === undefined) {
      this.waiterTimer = this.rt.clock.setTimeout(() => {
        this.waiterTimer = undefined;
        this.drainWaiters();
      }, this.rt.o.heartbeatMs);
    }
  }

  /**
   * Route a leader-only request: true when it should run here (this node leads); otherwise it was forwarded to the
   * leader (a command's forwarded form is built only then: a leader runs most commands itself), made to wait for
   * one, or settled.
   */
  private routeHere(req: ClientRequest, hops: number, op: ForwardOp | Command): boolean {
    if (req.settled) return false;
    const rt = this.rt;
    if (rt.node.role === 'leader') return true;
    const leader = rt.node.leaderId;
    if (leader !== null && leader !== rt.id && hops < MAX_HOPS) {
      const id = ++this.forwardSeq;
      req.forwarded(id);
      this.forwards.set(id, req);
      rt.counters.forwardedOut++;
      rt.transport.forward(leader, [id, 't' in op ? op : { t: 'command', ...op }, req.remainingMs, hops + 1]);
      return false;
    }
    if (!rt.isMemberNow() && rt.node.lastLogIndex === 0 && leader === null) {
      req.settle(fail(errors.notAMember(rt.id)));
      return false;
    }
    this.waitLeader(req);
    return false;
  }

  private submitCommand(req: ClientRequest, cmd: Command, hops: number): void {
    req.retry = () => this.submitCommand(req, cmd, hops);
    req.idempotent = cmd.clientId !== undefined && cmd.seq !== undefined;
    if (!this.routeHere(req, hops, cmd)) return;
    const rt = this.rt;
    if (cmd.clientId !== undefined && cmd.seq !== undefined) {
      const prior = rt.rm.lookup(cmd.clientId, cmd.seq);
      if (prior !== undefined) {
        req.settle(prior);
        return;
      }
    }
    const r = rt.node.propose(cmd);
    if (r.ok) {
      req.proposed();
      this.proposals.set(r.value.index, { term: r.value.term, req });
      rt.kick();
      return;
    }
    this.waitLeader(req, r.error.code === 'TRANSFER_IN_PROGRESS' ? 'transfer' : 'leader');
  }

  private submitQuery(req: ClientRequest, input: unknown): void {
    const rt = this.rt;
    if (!rt.isMemberNow() && rt.node.leaderId === null && rt.node.lastLogIndex === 0) {
      req.settle(fail(errors.notAMember(rt.id)));
      return;
    }
    const readId = ++this.readSeq;
    req.reading();
    this.reads.set(readId, { req, input });
    rt.node.read(readId);
    rt.kick();
  }

  private submitMembership(req: ClientRequest, op: ForwardOp, hops: number): void {
    if (op.t === 'addServer') {
      req.timeoutHint = `${op.addr} may be a learner still catching up (is it running and reachable?); it is promoted to voter once it has caught up, and AddServer can be sent again to wait for that`;
    } else if (op.t === 'removeServer') {
      req.timeoutHint =
        'the removal may still complete; GetServerState shows the membership, RemoveServer can be sent again';
    } else if (op.t === 'transfer') {
      req.timeoutHint = 'the target did not take over in time; leadership stays where it is or moved elsewhere';
    }
    req.retry = () => this.submitMembership(req, op, hops);
    req.idempotent = true;
    if (this.routeHere(req, hops, op)) this.membershipOnLeader(req, op);
  }

  /** Settle `req` once `check` returns an outcome (checked as the log applies and leaders change). */
  private waitMembership(req: ClientRequest, check: () => ApplyOutcome | null, kick = false): void {
    req.proposed();
    this.memberWaits.push({ req, check });
    if (kick) this.rt.kick();
  }

  private membersResult(): ApplyOutcome {
    return okJson({ members: membersOf(this.rt.node.committedConfig) });
  }

  private membershipOnLeader(req: ClientRequest, op: ForwardOp): void {
    const rt = this.rt;
    const n = rt.node;
    if (op.t === 'addServer' || op.t === 'removeServer') {
      const adding = op.t === 'addServer';
      const done = () => {
        const c = n.committedConfig;
        if (c.oldVoters !== undefined) return null;
        return (adding ? c.voters.includes(op.addr) : !isMember(c, op.addr)) ? this.membersResult() : null;
      };
      const settledNow = done();
      if (settledNow !== null) {
        req.settle(settledNow);
        return;
      }
      // Already under way (a voter being added that is not committed yet, a member already on its way out): wait.
      const underWay = adding ? isVoter(n.config, op.addr) : !isMember(n.config, op.addr);
      if (underWay) {
        this.waitMembership(req, done);
        return;
      }
      // The core promotes learners by itself once they have caught up (RaftOptions.autoPromoteLearners).
      const r = adding ? n.addServer(op.addr) : n.removeServer(op.addr);
      if (r.ok) this.waitMembership(req, done, true);
      else this.refused(req, r.error.code, r.error.message);
      return;
    }
    if (op.t === 'transfer') {
      let target = op.addr;
      if (target === undefined) {
        let best = -1;
        for (const [id, pr] of n.progress()) {
          if (id !== rt.id && n.config.voters.includes(id) && pr.matchIndex > best) {
            best = pr.matchIndex;
            target = id;
          }
        }
        if (target === undefined) {
          req.settle(fail(new RpcError(ErrorCode.INVALID_MEMBER, 'there is no other voter to transfer leadership to')));
          return;
        }
      }
      if (target === rt.id) {
        req.settle(okJson({ leader: rt.id }));
        return;
      }
      const r = n.transferLeadership(target);
      if (r.ok) {
        const t = target;
        this.waitMembership(req, () => (n.leaderId === t ? okJson({ leader: t }) : null), true);
        return;
      }
      this.refused(req, r.error.code, r.error.message);
      return;
    }
    // A command never reaches here (it is proposed by submitCommand).
    req.settle(fail(errors.internal(`unexpected forwarded operation ${(op as { t: string }).t}`)));
  }

  private refused(req: ClientRequest, code: string, message: string): void {
    switch (code) {
      case 'CONFIG_CHANGE_IN_PROGRESS':
      case 'LEADERSHIP_LOST':
        this.waitLeader(req, 'config');
        return;
      case 'TRANSFER_IN_PROGRESS':
        this.waitLeader(req, 'transfer');
        return;
      case 'NOT_LEADER':
        this.waitLeader(req, 'leader');
        return;
      default:
        req.settle(fail(new RpcError(ErrorCode.INVALID_MEMBER, `the membership change was refused: ${message}`)));
    }
  }

  private createCluster(done: Done): void {
    if (!this.usable(done)) return;
    const rt = this.rt;
    const n = rt.node;
    if (n.lastLogIndex > 0 || n.snapshot !== null || n.config.voters.length > 0) {
      done(
        fail(
          new RpcError(
            ErrorCode.CLUSTER_ALREADY_CREATED,
            `server ${rt.id} already belongs to a cluster (members: ${membersOf(n.config).join(', ') || 'unknown yet'}); use AddServer on a member to grow it`,
          ),
        ),
      );
      return;
    }
    const r = n.createCluster([rt.id]);
    if (!r.ok) {
      done(
        fail(
          new RpcError(
            ErrorCode.CLUSTER_ALREADY_CREATED,
            `server ${rt.id} cannot create a cluster: ${r.error.message}; use AddServer on a member instead`,
          ),
        ),
      );
      return;
    }
    const req = this.track('CreateCluster', true, undefined, done);
    if (req === null) return;
    this.waitMembership(
      req,
      () => (rt.appliedIndex >= 1 && n.committedConfig.voters.includes(rt.id) ? this.membersResult() : null),
      true,
    );
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Forwarding
  // ---------------------------------------------------------------------------------------------------------------

  onForward(request: ForwardRequest, reply: (r: ForwardReply) => void): void {
    const [id, op, timeoutMs, hops] = request;
    const rt = this.rt;
    rt.counters.forwardedIn++;
    const done: Done = (o) => {
      if (o.ok) reply([id, 1, o.json ?? toJsonText(o.output)]);
      else reply([id, 0, o.error.code, o.error.message, (o.error.data as Record<string, unknown>) ?? null]);
    };
    const what = op.t === 'command' ? 'the command' : `the ${op.t} request`;
    const req = this.track(what, true, Math.min(timeoutMs, 10 * rt.o.requestTimeoutMs), done);
    if (req === null) return;
    if (op.t === 'command') this.submitCommand(req, { input: op.input, clientId: op.clientId, seq: op.seq }, hops);
    else this.submitMembership(req, op, hops);
  }

  onReplies(replies: readonly ForwardReply[]): void {
    for (const r of replies) {
      const req = this.forwards.get(r[0]);
      if (req === undefined) continue;
      this.forwards.delete(r[0]);
      if (r[1] === 1) req.settle({ ok: true, output: undefined, json: r[2] });
      else req.settle(fail(new RpcError(r[2], r[3], r[4] ?? undefined)));
    }
  }

  onLost(ids: readonly number[]): void {
    for (const id of ids) {
      const req = this.forwards.get(id);
      if (req === undefined) continue;
      this.forwards.delete(id);
      // It may have reached the leader and be applied: an idempotent request is retried (harmlessly), and is never
      // answered "not applied" from now on; any other is answered "outcome unknown".
      if (req.lost(this.rt.bugs.forgetLostAttempts === true)) this.waitLeader(req);
    }
  }

  onUnsent(requests: readonly ForwardRequest[]): void {
    for (const r of requests) {
      const req = this.forwards.get(r[0]);
      if (req === undefined) continue;
      this.forwards.delete(r[0]);
      // It certainly did not leave: retrying cannot apply it twice.
      this.waitLeader(req);
    }
  }
}

export type { NodeId };
