/**
 * The playground page: draws a {@link Playground} (nodes on a ring, messages travelling along the links, election
 * timers as shrinking arcs, every node's log) and turns clicks into recorded user actions.
 *
 * Virtual time runs at `speed` virtual ms per real ms while not paused; the loop is driven by
 * `requestAnimationFrame`, and the simulation itself never reads the real clock, so frame timing cannot change a run.
 */
import type { NodeId } from '@raft/core';
import { h, s, setAttr, setText, termColor } from '../dom.js';
import {
  commandText,
  decodeReplay,
  encodeReplay,
  type Flight,
  type NodeView,
  Playground,
  type UserAction,
} from './engine.js';

const SPEEDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20];
const DEFAULT_SPEED = 0.25;
const SIZE = 520;
const CENTER = SIZE / 2;
const RING = 190;
const NODE_R = 34;
/** Log cells shown per node (the newest ones). */
const LOG_CELLS = 24;

interface NodeGfx {
  group: SVGGElement;
  circle: SVGCircleElement;
  timerArc: SVGCircleElement;
  label: SVGTextElement;
  term: SVGTextElement;
  cross: SVGPathElement;
  x: number;
  y: number;
}

interface CardGfx {
  card: HTMLElement;
  role: HTMLElement;
  term: HTMLElement;
  vote: HTMLElement;
  commit: HTMLElement;
  applied: HTMLElement;
  timer: HTMLElement;
  crash: HTMLButtonElement;
  isolate: HTMLButtonElement;
  transfer: HTMLButtonElement;
}

/** Mounts the playground into `root`, configured from the page's query (`seed`, `nodes`, `speed`, `replay`). */
export function startPlayground(root: HTMLElement, params: URLSearchParams): void {
  const seed = parseIntOr(params.get('seed'), 1);
  const nodes = parseIntOr(params.get('nodes'), 5);
  const replay = decodeReplay(params.get('replay') ?? '');
  const sim = new Playground({ seed, nodes }, replay);
  let speed = SPEEDS.includes(Number(params.get('speed'))) ? Number(params.get('speed')) : DEFAULT_SPEED;
  let paused = params.get('paused') === '1';
  let proposals = 0;

  // ---- toolbar -------------------------------------------------------------------------------------------------
  const clock = h('span', { id: 'pg-clock', class: 'mono' });
  const leaderOut = h('span', { id: 'pg-leader', class: 'mono' });
  const pauseBtn = h('button', { id: 'pg-pause', type: 'button' });
  const stepBtn = h('button', { id: 'pg-step', type: 'button', title: 'Run exactly one event (pauses time)' }, 'Step');
  const speedSel = h(
    'select',
    { id: 'pg-speed', title: 'Virtual milliseconds per real millisecond' },
    ...SPEEDS.map((v) => h('option', { value: String(v), selected: v === speed }, `${v}×`)),
  );
  const lossSel = h(
    'select',
    { id: 'pg-loss', title: 'Probability that a message is lost' },
    ...[0, 0.05, 0.1, 0.25, 0.5].map((v) => h('option', { value: String(v) }, `${v * 100}% loss`)),
  );
  const cmdInput = h('input', { id: 'pg-command', type: 'text', placeholder: 'command, e.g. x=1', size: 14 });
  const proposeBtn = h('button', { id: 'pg-propose', type: 'button' }, 'Propose');
  const healBtn = h('button', { id: 'pg-heal', type: 'button', title: 'Reconnect every cut link' }, 'Heal network');
  const replayLink = h(
    'a',
    { id: 'pg-replay', href: '#', title: 'This session as a link: same seed, same actions' },
    'Replay link',
  );
  const outcome = h('div', { id: 'pg-outcome', class: 'outcome', role: 'status' });
  const safety = h('div', {
    id: 'pg-safety',
    class: 'safety',
    title:
      "@raft/sim's SafetyChecker watches every action: election safety, leader append-only, log matching, leader completeness, state-machine safety, single config change",
  });
  const seedForm = h(
    'form',
    { class: 'inline', id: 'pg-new' },
    h('label', {}, 'seed ', h('input', { name: 'seed', type: 'number', value: seed, min: 0, class: 'num' })),
    h(
      'label',
      {},
      ' nodes ',
      h('input', { name: 'nodes', type: 'number', value: sim.ids.length, min: 3, max: 7, class: 'num' }),
    ),
    h('button', { type: 'submit' }, 'New session'),
  );

  // ---- cluster drawing -----------------------------------------------------------------------------------------
  const svg = s('svg', { id: 'pg-svg', viewBox: `0 0 ${SIZE} ${SIZE}`, class: 'cluster', role: 'img' });
  const linkLayer = s('g', { class: 'links' });
  const msgLayer = s('g', { class: 'messages' });
  const nodeLayer = s('g', { class: 'nodes' });
  svg.append(linkLayer, nodeLayer, msgLayer);

  const gfx = new Map<NodeId, NodeGfx>();
  sim.ids.forEach((id, i) => {
    const angle = (2 * Math.PI * i) / sim.ids.length - Math.PI / 2;
    const x = CENTER + RING * Math.cos(angle);
    const y = CENTER + RING * Math.sin(angle);
    const circumference = 2 * Math.PI * (NODE_R + 7);
    const timerArc = s('circle', {
      cx: x,
      cy: y,
      r: NODE_R + 7,
      class: 'timer-arc',
      'stroke-dasharray': `${circumference} ${circumference}`,
      transform: `rotate(-90 ${x} ${y})`,
    });
    const circle = s('circle', { cx: x, cy: y, r: NODE_R, class: 'node-circle' });
    const label = s('text', { x, y: y - 4, class: 'node-label', 'text-anchor': 'middle' }, id);
    const term = s('text', { x, y: y + 14, class: 'node-term', 'text-anchor': 'middle' });
    const cross = s('path', {
      d: `M${x - 18} ${y - 18} L${x + 18} ${y + 18} M${x + 18} ${y - 18} L${x - 18} ${y + 18}`,
      class: 'node-cross',
    });
    const group = s(
      'g',
      { class: 'node', 'data-node': id },
      timerArc,
      circle,
      // The crash mark goes under the texts: a crashed node must still show its name and term.
      cross,
      label,
      term,
      s('title', {}, `${id}: click to crash or restart`),
    );
    group.addEventListener('click', () =>
      act({ type: sim.view().find((v) => v.id === id)?.up ? 'crash' : 'restart', node: id }),
    );
    nodeLayer.append(group);
    gfx.set(id, { group, circle, timerArc, label, term, cross, x, y });
  });

  const links = new Map<string, SVGLineElement>();
  for (let i = 0; i < sim.ids.length; i++) {
    for (let j = i + 1; j < sim.ids.length; j++) {
      const a = sim.ids[i];
      const b = sim.ids[j];
      const ga = gfx.get(a)!;
      const gb = gfx.get(b)!;
      const line = s('line', { x1: ga.x, y1: ga.y, x2: gb.x, y2: gb.y, class: 'link', 'data-link': `${a}-${b}` });
      line.append(s('title', {}, `${a}–${b}: click to cut or heal this link`));
      line.addEventListener('click', () => act({ type: 'toggleLink', a, b }));
      linkLayer.append(line);
      links.set(`${a}|${b}`, line);
    }
  }
  const msgGfx = new Map<number, SVGCircleElement>();

  // ---- node cards ------------------------------------------------------------------------------------------------
  const cards = new Map<NodeId, CardGfx>();
  const cardList = h('div', { class: 'pg-cards' });
  for (const id of sim.ids) {
    const c: CardGfx = {
      card: h('div', { class: 'card pg-card', 'data-node': id }),
      role: h('span', { class: 'badge' }),
      term: h('span', { class: 'mono' }),
      vote: h('span', { class: 'mono' }),
      commit: h('span', { class: 'mono' }),
      applied: h('span', { class: 'mono applied' }),
      timer: h('span', { class: 'mono' }),
      crash: h('button', { type: 'button', 'data-act': 'crash', 'data-node': id }),
      isolate: h('button', { type: 'button', 'data-act': 'isolate', 'data-node': id }),
      transfer: h(
        'button',
        {
          type: 'button',
          'data-act': 'transfer',
          'data-node': id,
          title: 'Ask the leader to hand leadership to this node',
        },
        'Make leader',
      ),
    };
    c.crash.addEventListener('click', () =>
      act({ type: c.card.dataset.up === 'true' ? 'crash' : 'restart', node: id }),
    );
    c.isolate.addEventListener('click', () => act({ type: 'isolate', node: id }));
    c.transfer.addEventListener('click', () => act({ type: 'transfer', node: id }));
    c.card.append(
      h('div', { class: 'card-head' }, h('strong', {}, id), ' ', c.role),
      h(
        'dl',
        { class: 'kv' },
        h('dt', {}, 'term'),
        h('dd', {}, c.term),
        h('dt', {}, 'voted for'),
        h('dd', {}, c.vote),
        h('dt', {}, 'commit / last'),
        h('dd', {}, c.commit),
        h('dt', {}, 'timer'),
        h('dd', {}, c.timer),
        h('dt', {}, 'applied'),
        h('dd', {}, c.applied),
      ),
      h('div', { class: 'buttons' }, c.crash, c.isolate, c.transfer),
    );
    cardList.append(c.card);
    cards.set(id, c);
  }

  // ---- logs and events -------------------------------------------------------------------------------------------
  const logGrid = h('div', { id: 'pg-logs', class: 'log-grid' });
  let logKey = '';
  const events = h('ol', { id: 'pg-events', class: 'events' });
  let eventsShown = -1;

  root.replaceChildren(
    h(
      'section',
      { class: 'pg' },
      h(
        'div',
        { class: 'toolbar' },
        h('span', {}, 'virtual time ', clock),
        h('span', {}, 'leader ', leaderOut),
        pauseBtn,
        stepBtn,
        h('label', {}, 'speed ', speedSel),
        lossSel,
        healBtn,
        h('span', { class: 'inline' }, cmdInput, proposeBtn),
        replayLink,
        seedForm,
      ),
      outcome,
      safety,
      h(
        'div',
        { class: 'pg-main' },
        h(
          'div',
          { class: 'pg-left' },
          svg,
          h(
            'p',
            { class: 'legend muted' },
            'Click a node to crash/restart it, a link to cut/heal it, a moving message to drop it. Nodes: grey = follower, orange = candidate, ringed in white = leader (filled with its term’s colour), red cross = crashed, dashed = isolated. The arc around a node is its timer (orange: election timeout, green: heartbeat). Messages: ',
            legendDot('m-vote', 'vote request'),
            legendDot('m-vote-resp', 'vote reply'),
            legendDot('m-append', 'append (with entries)'),
            legendDot('m-heartbeat', 'heartbeat'),
            legendDot('m-append-resp', 'append reply'),
            legendDot('m-other', 'other'),
            legendDot('m-dropped', 'lost'),
          ),
        ),
        h('div', { class: 'pg-right' }, cardList),
      ),
      h(
        'h3',
        {},
        'Logs ',
        h('span', { class: 'muted small' }, '(colour = term; solid = committed on that node; newest entries)'),
      ),
      logGrid,
      h('h3', {}, 'Events'),
      events,
    ),
  );

  // ---- controls ---------------------------------------------------------------------------------------------------
  function act(a: UserAction): void {
    const r = sim.perform(a);
    outcome.className = `outcome ${r.ok ? 'ok' : 'err'}`;
    setText(outcome, r.ok ? r.detail : r.error);
    updateReplayLink();
    render();
  }
  function updateReplayLink(): void {
    const q = new URLSearchParams({ mode: 'playground', seed: String(seed), nodes: String(sim.ids.length) });
    const base = `?${q.toString()}`;
    replayLink.href =
      sim.recorded.length > 0 ? `${base}&replay=${encodeReplay(sim.recorded)}&paused=1` : `${base}&paused=1`;
  }
  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    render();
  });
  stepBtn.addEventListener('click', () => {
    paused = true;
    sim.step();
    render();
  });
  speedSel.addEventListener('change', () => {
    speed = Number(speedSel.value);
  });
  lossSel.addEventListener('change', () => act({ type: 'setLossRate', rate: Number(lossSel.value) }));
  healBtn.addEventListener('click', () => act({ type: 'heal' }));
  const propose = () => {
    proposals++;
    const command = cmdInput.value.trim() || `cmd${proposals}`;
    act({ type: 'propose', command });
    cmdInput.value = '';
  };
  proposeBtn.addEventListener('click', propose);
  cmdInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') propose();
  });
  seedForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(seedForm);
    const q = new URLSearchParams({
      mode: 'playground',
      seed: String(f.get('seed') ?? seed),
      nodes: String(f.get('nodes') ?? nodes),
    });
    location.search = q.toString();
  });
  msgLayer.addEventListener('click', (e) => {
    const id = Number((e.target as Element).getAttribute('data-flight'));
    if (id > 0) act({ type: 'drop', flightId: id });
  });
  updateReplayLink();

  // ---- rendering ----------------------------------------------------------------------------------------------
  function render(): void {
    const views = sim.view();
    setText(clock, `${(sim.now / 1000).toFixed(2)} s · ${sim.steps} events`);
    setText(leaderOut, sim.leaderId() ?? 'none');
    setText(pauseBtn, paused ? 'Resume' : 'Pause');
    const v = sim.violation;
    setAttr(safety, 'class', v === null ? 'safety ok' : 'safety violated');
    setText(
      safety,
      v === null
        ? '✓ safety checker: every Raft safety property holds so far'
        : `✗ SAFETY VIOLATION (simulation stopped): ${v.message}`,
    );
    setAttr(root.querySelector('.pg') ?? root, 'data-paused', String(paused));
    for (const v of views) renderNode(v);
    for (const [key, line] of links) {
      const [a, b] = key.split('|');
      setAttr(line, 'class', sim.linkCut(a, b) ? 'link cut' : 'link');
    }
    renderMessages(sim.inFlight());
    renderLogs(views);
    if (eventsShown !== sim.lines.length || sim.lines.length >= 300) renderEvents();
  }

  function renderNode(v: NodeView): void {
    const g = gfx.get(v.id)!;
    const state = v.up ? v.role : 'down';
    setAttr(g.group, 'class', `node ${state}${v.isolated ? ' isolated' : ''}`);
    // The leader wears its term's colour (the same colour its entries get in the log grid).
    const fill = v.up && v.role === 'leader' ? termColor(v.term) : '';
    if (g.circle.style.fill !== fill) g.circle.style.fill = fill;
    setText(g.term, `term ${v.term}`);
    const circumference = 2 * Math.PI * (NODE_R + 7);
    let frac = 0;
    if (v.timer !== null) {
      const total = v.timer.deadline - v.timer.setAt;
      frac = total > 0 ? Math.max(0, Math.min(1, (v.timer.deadline - sim.now) / total)) : 0;
    }
    setAttr(g.timerArc, 'stroke-dashoffset', String(circumference * (1 - frac)));
    setAttr(g.timerArc, 'class', `timer-arc ${v.timer?.kind ?? 'none'}`);

    const c = cards.get(v.id)!;
    c.card.dataset.role = state;
    c.card.dataset.up = String(v.up);
    c.card.dataset.term = String(v.term);
    setAttr(c.card, 'class', `card pg-card ${state}${v.isolated ? ' isolated' : ''}`);
    setText(c.role, v.up ? v.role : 'crashed');
    setAttr(c.role, 'class', `badge ${state}`);
    setText(c.term, String(v.term));
    setText(c.vote, v.votedFor ?? '—');
    setText(c.commit, v.up ? `${v.commitIndex} / ${v.lastLogIndex}` : `— / ${v.lastLogIndex}`);
    setText(
      c.timer,
      v.timer === null ? '—' : `${v.timer.kind} in ${Math.max(0, Math.round(v.timer.deadline - sim.now))} ms`,
    );
    const tail = v.applied.slice(-4);
    setText(
      c.applied,
      v.applied.length === 0 ? '—' : `${v.applied.length}: ${v.applied.length > 4 ? '… ' : ''}${tail.join(', ')}`,
    );
    setText(c.crash, v.up ? 'Crash' : 'Restart');
    // A crashed node cannot take over leadership (the leader would wait for it in vain): offer it only when up.
    c.transfer.disabled = !v.up;
    setAttr(
      c.transfer,
      'title',
      v.up ? 'Ask the leader to hand leadership to this node' : `${v.id} is crashed: restart it first`,
    );
    setText(c.isolate, v.isolated ? 'Reconnect' : 'Isolate');
  }

  function renderMessages(flights: Flight[]): void {
    const seen = new Set<number>();
    for (const f of flights) {
      const a = gfx.get(f.from);
      const b = gfx.get(f.to);
      if (a === undefined || b === undefined) continue;
      seen.add(f.id);
      let dot = msgGfx.get(f.id);
      if (dot === undefined) {
        dot = s('circle', { r: 6, 'data-flight': f.id, class: `msg ${messageClass(f)}` });
        dot.append(s('title', {}, describeMessage(f)));
        msgLayer.append(dot);
        msgGfx.set(f.id, dot);
      }
      const t = Math.max(0, Math.min(1, (sim.now - f.sentAt) / Math.max(1, f.deliverAt - f.sentAt)));
      // Offset perpendicular to the link so a request and its reply travelling the other way do not overlap.
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const len = Math.hypot(dx, dy) || 1;
      const ox = (-dy / len) * 7;
      const oy = (dx / len) * 7;
      // Travel from rim to rim, so dots never hide a node's name.
      const rim = Math.min(0.45, NODE_R / len);
      const u = rim + (1 - 2 * rim) * t;
      const x = a.x + dx * u + ox;
      const y = a.y + dy * u + oy;
      setAttr(dot, 'cx', x.toFixed(1));
      setAttr(dot, 'cy', y.toFixed(1));
      if (f.dropped !== null) setAttr(dot, 'class', 'msg m-dropped');
    }
    for (const [id, dot] of msgGfx) {
      if (!seen.has(id)) {
        dot.remove();
        msgGfx.delete(id);
      }
    }
  }

  function renderLogs(views: NodeView[]): void {
    const maxIndex = Math.max(0, ...views.map((v) => v.lastLogIndex));
    const key = `${maxIndex}|${views.map((v) => `${v.up}:${v.commitIndex}:${v.lastLogIndex}:${v.log.at(-1)?.term ?? 0}`).join(';')}`;
    if (key === logKey) return;
    logKey = key;
    const from = Math.max(1, maxIndex - LOG_CELLS + 1);
    const header = h('div', { class: 'log-row head' }, h('span', { class: 'log-id' }, 'index'));
    for (let i = from; i <= Math.max(from, maxIndex); i++) header.append(h('span', { class: 'log-cell idx' }, i));
    const rows: HTMLElement[] = [header];
    for (const v of views) {
      const row = h(
        'div',
        { class: `log-row${v.up ? '' : ' down'}`, 'data-node': v.id },
        h('span', { class: 'log-id' }, v.id),
      );
      for (let i = from; i <= Math.max(from, maxIndex); i++) {
        const e = v.log[i - 1];
        if (e === undefined || e.index !== i) {
          row.append(h('span', { class: 'log-cell empty' }));
          continue;
        }
        // A command entry holds the runtime's payload: the cell shows the command it carries.
        const text = e.type === 'command' ? commandText(e.command) : '';
        const cell = h(
          'span',
          {
            class: `log-cell ${e.index <= v.commitIndex ? 'committed' : 'uncommitted'} t-${e.type}`,
            title: `#${e.index} term ${e.term}: ${e.type === 'command' ? text : e.type}`,
          },
          e.type === 'command' ? text.slice(0, 4) : e.type === 'noop' ? '·' : 'cfg',
        );
        cell.style.borderColor = termColor(e.term);
        if (e.index <= v.commitIndex) cell.style.backgroundColor = termColor(e.term);
        row.append(cell);
      }
      rows.push(row);
    }
    logGrid.replaceChildren(...rows);
  }

  function renderEvents(): void {
    eventsShown = sim.lines.length;
    const last = sim.lines.slice(-40).reverse();
    events.replaceChildren(
      ...last.map((l) => h('li', {}, h('span', { class: 'mono muted' }, `${(l.at / 1000).toFixed(3)}s `), l.text)),
    );
  }

  // ---- the clock ------------------------------------------------------------------------------------------------
  let lastFrame = performance.now();
  const frame = (ts: number) => {
    // Cap a frame's real time so a background tab does not jump the simulation by minutes when it comes back.
    const dt = Math.min(100, Math.max(0, ts - lastFrame));
    lastFrame = ts;
    if (!paused) sim.advanceTo(sim.now + dt * speed);
    render();
    requestAnimationFrame(frame);
  };
  render();
  requestAnimationFrame(frame);
  // For tests and the curious: the simulation object, read-only use please.
  (window as unknown as { playground: Playground }).playground = sim;
}

function legendDot(cls: string, text: string): HTMLElement {
  return h('span', { class: 'legend-item' }, h('span', { class: `dot ${cls}` }), text);
}

function messageClass(f: Flight): string {
  if (f.kind !== 'message') return 'm-other';
  const m = f.message;
  switch (m.type) {
    case 'RequestVote':
      return 'm-vote';
    case 'RequestVoteResponse':
      return 'm-vote-resp';
    case 'AppendEntries':
      return m.entries.length > 0 ? 'm-append' : 'm-heartbeat';
    case 'AppendEntriesResponse':
      return 'm-append-resp';
    default:
      return 'm-other';
  }
}

function describeMessage(f: Flight): string {
  const route = `${f.from}→${f.to}`;
  if (f.kind === 'forward') {
    // A client request the node could not run itself (it is not the leader any more), on its way to the leader.
    const [id, op] = f.request;
    const what = op.t === 'command' ? `command ${JSON.stringify(commandText(op))}` : op.t;
    return `#${f.id} forwarded request ${id} ${route}: ${what} (click to drop)`;
  }
  if (f.kind === 'reply') {
    const r = f.reply;
    return `#${f.id} answer to forwarded request ${r[0]} ${route}: ${r[1] === 1 ? `ok ${r[2]}` : r[3]} (click to drop)`;
  }
  const m = f.message;
  let detail = '';
  if (m.type === 'RequestVote') detail = `${m.preVote ? 'pre-vote' : 'vote'} last ${m.lastLogIndex}/${m.lastLogTerm}`;
  else if (m.type === 'RequestVoteResponse')
    detail = `${m.preVote ? 'pre-vote' : 'vote'} ${m.granted ? 'granted' : 'refused'}`;
  else if (m.type === 'AppendEntries')
    detail = `prev ${m.prevLogIndex}/${m.prevLogTerm}, ${m.entries.length} entries, commit ${m.leaderCommit}`;
  else if (m.type === 'AppendEntriesResponse') detail = `${m.success ? 'ok' : 'rejected'} match ${m.matchIndex}`;
  return `#${f.id} ${m.type} ${route} term ${m.term}${detail ? `: ${detail}` : ''} (click to drop)`;
}

function parseIntOr(v: string | null, d: number): number {
  const n = Number(v);
  return v !== null && v !== '' && Number.isInteger(n) && n >= 0 ? n : d;
}
