/**
 * The live view: one WebSocket per node of a running cluster, `GetServerState` polled a few times per second, a
 * card per node, a rolling commits-per-second chart, and operator actions sent through the same JSON-RPC API the
 * CLI uses.
 */
import { h, setText } from '../dom.js';
import { RollingChart } from './chart.js';
import { NodeConnection, RpcCallError } from './rpc.js';
import { ago, followerLag, parseServerState, type ServerState } from './state.js';

/** How often each node is asked for its state. */
const POLL_MS = 250;
/** A node whose last answer is older than this is shown as unreachable even if its socket looks open. */
const STALE_MS = 2000;
/** Commits per second are measured over this window (smooths the polling jitter). */
const RATE_WINDOW_MS = 2000;
/**
 * A down node's match index, as its leader reports it, counts as a sign of life only once the node has been down
 * this long: acknowledgements it sent just before it went down may still reach the leader for a moment.
 */
const HINT_AFTER_DOWN_MS = 1000;

interface NodeSlot {
  readonly address: string;
  readonly conn: NodeConnection;
  state: ServerState | null;
  /** `performance.now()` of the last successful poll. */
  at: number;
  error: string;
  polling: boolean;
  /** `performance.now()` when the connection was lost (or first failed), null while open. */
  downSince: number | null;
  /** While down: the match index its leader last reported for it (see `hintRevivals`). */
  matchSeen: number | null;
}

/** Mounts the live view into `root`; nodes come from `?nodes=a,b,c` or else from the server's `/config.json`. */
export async function startLive(root: HTMLElement, params: URLSearchParams): Promise<void> {
  let nodes = splitNodes(params.get('nodes'));
  // The token travels in the URL's fragment (#token=...), which the browser never sends to any server; `?tls=1` means
  // the nodes have TLS (wss://).
  const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? undefined;
  const auth = { token: token === '' ? undefined : token, secure: params.get('tls') === '1' };
  if (nodes.length === 0) {
    try {
      const res = await fetch('config.json');
      if (res.ok) nodes = splitNodes(((await res.json()) as { nodes?: string[] }).nodes?.join(',') ?? null);
    } catch {
      // no server-side defaults (e.g. the page was opened from a file): ask the user below
    }
  }
  const nodesInput = h('input', {
    id: 'live-nodes',
    type: 'text',
    size: 60,
    value: nodes.join(','),
    placeholder: '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
  });
  const form = h(
    'form',
    { class: 'inline' },
    h('label', {}, 'nodes ', nodesInput),
    h('button', { type: 'submit' }, 'Connect'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams(location.search);
    q.set('nodes', splitNodes(nodesInput.value).join(','));
    location.search = q.toString();
  });
  if (nodes.length === 0) {
    root.replaceChildren(
      h(
        'section',
        { class: 'live' },
        h(
          'p',
          {},
          'Which nodes? Enter their addresses (host:port, the port each node serves JSON-RPC and WebSocket on).',
        ),
        form,
      ),
    );
    return;
  }

  const slots: NodeSlot[] = nodes.map((address) => {
    const slot: NodeSlot = {
      address,
      conn: new NodeConnection(
        address,
        (c) => {
          if (c.status === 'open') {
            slot.downSince = null;
            slot.matchSeen = null;
          } else if (slot.downSince === null) slot.downSince = performance.now();
          renderSoon();
        },
        auth,
      ),
      state: null,
      at: 0,
      error: '',
      polling: false,
      downSince: null,
      matchSeen: null,
    };
    return slot;
  });

  // ---- layout ------------------------------------------------------------------------------------------------
  const summary = {
    leader: h('span', { id: 'live-leader', class: 'mono' }),
    term: h('span', { id: 'live-term', class: 'mono' }),
    commit: h('span', { id: 'live-commit', class: 'mono' }),
    rate: h('span', { id: 'live-rate', class: 'mono' }),
    up: h('span', { id: 'live-up', class: 'mono' }),
  };
  const canvas = h('canvas', { id: 'live-chart', class: 'chart' });
  const chart = new RollingChart(canvas);
  const cardsBox = h('div', { id: 'live-nodes-grid', class: 'cards' });

  const targetSel = h('select', { id: 'op-target', title: 'The node the request is sent to' });
  const transferSel = h('select', { id: 'op-transfer-to' });
  const addInput = h('input', { id: 'op-add-addr', type: 'text', placeholder: '127.0.0.1:7004', size: 18 });
  const removeInput = h('input', { id: 'op-remove-addr', type: 'text', placeholder: '127.0.0.1:7003', size: 18 });
  const results = h('ol', { id: 'op-results', class: 'results' });
  const button = (id: string, text: string, onClick: () => void) => {
    const b = h('button', { id, type: 'button' }, text);
    b.addEventListener('click', onClick);
    return b;
  };

  root.replaceChildren(
    h(
      'section',
      { class: 'live' },
      h('div', { class: 'toolbar' }, form),
      h(
        'div',
        { class: 'summary' },
        h('span', {}, 'leader ', summary.leader),
        h('span', {}, 'term ', summary.term),
        h('span', {}, 'commit index ', summary.commit),
        h('span', {}, 'commits/s ', summary.rate),
        h('span', {}, 'reachable ', summary.up),
      ),
      canvas,
      cardsBox,
      h(
        'div',
        { class: 'card ops' },
        h('h3', {}, 'Operator actions'),
        h(
          'p',
          { class: 'muted small' },
          'Each goes through the node’s JSON-RPC API (the same calls as the CLI). Membership calls may be sent to any member: followers forward them to the leader.',
        ),
        h(
          'div',
          { class: 'op-row' },
          h('label', {}, 'send to ', targetSel),
          button('op-snapshot', 'Take snapshot', () => run('TakeSnapshot', undefined)),
        ),
        h(
          'div',
          { class: 'op-row' },
          h('label', {}, 'transfer leadership to ', transferSel),
          button('op-transfer', 'Transfer leadership', () => {
            const to = transferSel.value;
            run('TransferLeadership', to === '' ? {} : { addr: to }, leaderSlot()?.address);
          }),
        ),
        h(
          'div',
          { class: 'op-row' },
          addInput,
          button('op-add', 'Add server', () => {
            const addr = addInput.value.trim();
            if (addr === '') return note('AddServer', '—', false, 'enter the new server’s address (host:port)');
            run('AddServer', { addr }, undefined, 60_000);
          }),
        ),
        h(
          'div',
          { class: 'op-row' },
          removeInput,
          button('op-remove', 'Remove server', () => {
            const addr = removeInput.value.trim();
            if (addr === '') return note('RemoveServer', '—', false, 'enter the address of the server to remove');
            run('RemoveServer', { addr }, undefined, 60_000);
          }),
        ),
        h('h4', {}, 'Results'),
        results,
      ),
    ),
  );

  // ---- operator actions --------------------------------------------------------------------------------------
  function leaderSlot(): NodeSlot | undefined {
    const l = clusterLeader();
    return l === null ? undefined : slots.find((s) => s.address === l || s.state?.id === l);
  }

  function chooseTarget(): NodeSlot | undefined {
    if (targetSel.value !== '') return slots.find((s) => s.address === targetSel.value);
    return leaderSlot() ?? slots.find((s) => isFresh(s));
  }

  function run(method: string, params: unknown, preferAddress?: string, timeoutMs = 15_000): void {
    const slot =
      (targetSel.value === '' && preferAddress !== undefined
        ? slots.find((s) => s.address === preferAddress)
        : undefined) ?? chooseTarget();
    if (slot === undefined) {
      note(method, '—', false, 'no reachable node to send it to');
      return;
    }
    const started = performance.now();
    note(method, slot.address, null, 'sent…');
    const line = results.firstElementChild as HTMLElement;
    slot.conn.request(method, params, timeoutMs).then(
      (r) =>
        fill(line, method, slot.address, true, `${JSON.stringify(r)} (${Math.round(performance.now() - started)} ms)`),
      (e: unknown) => {
        const msg =
          e instanceof RpcCallError
            ? `${e.code}: ${e.message}${e.data === undefined ? '' : ` ${JSON.stringify(e.data)}`}`
            : String(e);
        fill(line, method, slot.address, false, msg);
      },
    );
  }

  function note(method: string, address: string, ok: boolean | null, text: string): void {
    const li = h('li', {});
    fill(li, method, address, ok, text);
    results.prepend(li);
    while (results.children.length > 30) results.lastElementChild?.remove();
  }

  function fill(li: HTMLElement, method: string, address: string, ok: boolean | null, text: string): void {
    li.className = ok === null ? 'pending' : ok ? 'ok' : 'err';
    li.dataset.method = method;
    li.replaceChildren(
      h('span', { class: 'mono muted' }, new Date().toLocaleTimeString()),
      ' ',
      h('strong', {}, method),
      ` → ${address}: `,
      h('span', { class: 'mono' }, ok === null ? text : `${ok ? 'ok' : 'error'} ${text}`),
    );
  }

  // ---- polling ---------------------------------------------------------------------------------------------------
  const history: { t: number; commit: number }[] = [];
  function poll(): void {
    for (const slot of slots) {
      if (slot.polling || slot.conn.status !== 'open') continue;
      slot.polling = true;
      slot.conn.request('GetServerState', undefined, STALE_MS).then(
        (r) => {
          slot.polling = false;
          slot.state = parseServerState(r, slot.address);
          slot.at = performance.now();
          slot.error = '';
        },
        (e: unknown) => {
          slot.polling = false;
          slot.error = e instanceof Error ? e.message : String(e);
        },
      );
    }
    const now = performance.now();
    const fresh = slots.filter(isFresh);
    hintRevivals(fresh, now);
    if (fresh.length > 0) {
      const commit = Math.max(...fresh.map((s) => s.state!.commitIndex));
      history.push({ t: now, commit });
      while (history.length > 2 && now - history[1].t > RATE_WINDOW_MS) history.shift();
      const first = history[0];
      const dt = (now - first.t) / 1000;
      chart.push(now, dt > 0.2 ? Math.max(0, (commit - first.commit) / dt) : 0);
    }
    render();
  }

  /**
   * Reconnection attempts to a down node are rare (see rpc.ts: each one costs a console error), so the page looks
   * for evidence that it is back instead: a leader reporting its match index growing means it is answering again,
   * and the page tries at once rather than at the next scheduled attempt (up to 30 s away).
   */
  function hintRevivals(fresh: NodeSlot[], now: number): void {
    for (const l of fresh) {
      if (l.state?.role !== 'leader' || l.state.followers === null) continue;
      for (const [id, p] of Object.entries(l.state.followers)) {
        const f = slotOf(id);
        if (f === undefined || f.downSince === null || now - f.downSince < HINT_AFTER_DOWN_MS) continue;
        if (f.matchSeen !== null && p.matchIndex > f.matchSeen) f.conn.hint();
        f.matchSeen = p.matchIndex;
      }
    }
  }

  function slotOf(id: string): NodeSlot | undefined {
    return slots.find((s) => s.address === id) ?? slots.find((s) => s.state?.id === id);
  }

  function isFresh(s: NodeSlot): boolean {
    return s.conn.status === 'open' && s.state !== null && performance.now() - s.at < STALE_MS;
  }

  /** The leader claimed by a reachable node in the highest term (followers' `leader` fields count too). */
  function clusterLeader(): string | null {
    let best: { term: number; id: string } | null = null;
    for (const s of slots) {
      if (!isFresh(s)) continue;
      const st = s.state!;
      const claim = st.role === 'leader' ? st.id : st.leader;
      if (claim !== null && (best === null || st.term > best.term || (st.term === best.term && st.role === 'leader'))) {
        best = { term: st.term, id: claim };
      }
    }
    return best?.id ?? null;
  }

  let renderQueued = false;
  function renderSoon(): void {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function render(): void {
    const fresh = slots.filter(isFresh);
    const leader = clusterLeader();
    setText(summary.leader, leader ?? 'none');
    setText(summary.term, fresh.length ? String(Math.max(...fresh.map((s) => s.state!.term))) : '—');
    setText(summary.commit, fresh.length ? String(Math.max(...fresh.map((s) => s.state!.commitIndex))) : '—');
    setText(summary.rate, chart.latest.toFixed(1));
    setText(summary.up, `${fresh.length} / ${slots.length}`);
    chart.draw(performance.now());
    cardsBox.replaceChildren(...slots.map((s) => nodeCard(s, leader)));
    syncOptions(targetSel, [['', 'auto (leader)'], ...slots.map((s) => [s.address, s.address] as [string, string])]);
    const voters = new Set<string>();
    for (const s of fresh) for (const v of s.state!.voters) voters.add(v);
    syncOptions(transferSel, [
      ['', 'most caught-up voter'],
      ...[...voters].sort().map((v) => [v, v] as [string, string]),
    ]);
  }

  function nodeCard(s: NodeSlot, leader: string | null): HTMLElement {
    const fresh = isFresh(s);
    const st = s.state;
    const role = fresh && st ? st.role : 'down';
    const card = h('div', {
      class: `card node-card ${role}${fresh ? '' : ' stale'}`,
      'data-node': s.address,
      'data-role': role,
      'data-status': fresh ? 'up' : 'down',
      'data-term': st?.term ?? '',
    });
    if (st !== null) card.dataset.lastRole = st.role;
    const now = performance.now();
    const c = s.conn;
    const status = fresh
      ? 'connected'
      : c.status === 'open'
        ? `not answering${s.error ? ` (${s.error})` : ''}`
        : `unreachable${c.lastError ? ` (${c.lastError})` : ''}`;
    // While down: how stale the state below is, and what the page does about it (see rpc.ts for the backoff).
    const seen =
      fresh || st === null
        ? null
        : `last seen ${ago(now - s.at)} ago, at ${new Date(Date.now() - (now - s.at)).toLocaleTimeString()}`;
    const retry =
      c.status === 'open' || fresh
        ? null
        : c.status === 'connecting'
          ? `reconnecting (attempt ${c.attempts})`
          : `${c.attempts === 0 ? 'connection lost' : `${c.attempts} reconnect attempt${c.attempts === 1 ? '' : 's'} failed`}${
              c.nextAttemptAt === null ? '' : `; next in ${ago(c.nextAttemptAt - now)}`
            }`;
    card.append(
      h(
        'div',
        { class: 'card-head' },
        h('strong', { class: 'mono' }, s.address),
        ' ',
        h('span', { class: `badge ${role}` }, fresh ? role : c.status === 'open' ? 'not answering' : 'unreachable'),
        // The last known role stays visible (greyed): "down" alone would hide that the node was, say, the leader.
        st && !fresh ? h('span', { class: `badge last ${st.role}`, title: 'last known role' }, `was ${st.role}`) : null,
        st && st.id === leader && fresh ? h('span', { class: 'crown', title: 'cluster leader' }, ' ★') : null,
      ),
      h('div', { class: 'muted small', 'data-field': 'status' }, status),
    );
    if (seen !== null) {
      card.append(
        h('div', { class: 'small stale-note', 'data-field': 'last-seen' }, seen, ' — last known state below'),
      );
    }
    if (retry !== null) card.append(h('div', { class: 'muted small', 'data-field': 'reconnect' }, retry));
    if (st === null) return card;
    const rows: [string, string][] = [
      ['term', String(st.term)],
      ['leader', st.leader ?? 'none'],
      ['membership', st.membership],
      ['commit / applied', `${st.commitIndex} / ${st.appliedIndex}`],
      [
        'log',
        st.lastLogIndex >= st.firstLogIndex
          ? `${st.firstLogIndex} … ${st.lastLogIndex} (last term ${st.lastLogTerm})`
          : `empty (next ${st.firstLogIndex})`,
      ],
      ['snapshot', st.snapshotIndex > 0 ? `index ${st.snapshotIndex} (term ${st.snapshotTerm})` : 'none'],
      ['voters', st.voters.join(', ') || '—'],
      ['learners', st.learners.join(', ') || '—'],
    ];
    if (st.oldVoters !== null) rows.push(['joint: old voters', st.oldVoters.join(', ')]);
    if (st.uptimeMs !== null) rows.push(['uptime', `${Math.round(st.uptimeMs / 1000)} s`]);
    const dl = h('dl', { class: 'kv state' });
    for (const [k, v] of rows) dl.append(h('dt', {}, k), h('dd', { class: 'mono', 'data-field': k }, v));
    card.append(dl);
    if (st.role === 'leader' && st.followers !== null && Object.keys(st.followers).length > 0) {
      const table = h(
        'table',
        { class: 'progress' },
        h(
          'thead',
          {},
          h('tr', {}, ...['follower', 'match', 'next', 'lag', 'state', 'inflight'].map((t) => h('th', {}, t))),
        ),
      );
      const body = h('tbody', {});
      for (const [id, p] of Object.entries(st.followers).sort(([a], [b]) => a.localeCompare(b))) {
        const follower = slotOf(id);
        const lag = followerLag(p, follower === undefined ? undefined : isFresh(follower));
        let lagCell: HTMLElement;
        if (lag.known) {
          const lagBar = h('span', { class: 'lagbar' });
          lagBar.style.width = `${Math.min(60, Math.log2(1 + lag.lag) * 6)}px`;
          lagCell = h('td', { class: 'mono', 'data-lag': lag.lag }, lag.lag, ' ', lagBar);
        } else {
          lagCell = h('td', { class: 'mono muted', 'data-lag': 'unknown', title: `unknown: ${lag.why}` }, 'unknown');
        }
        body.append(
          h(
            'tr',
            { 'data-follower': id },
            h('td', { class: 'mono' }, id),
            h('td', { class: 'mono' }, p.matchIndex),
            h('td', { class: 'mono' }, p.nextIndex),
            lagCell,
            h('td', {}, p.state),
            h('td', { class: 'mono' }, p.inflight),
          ),
        );
      }
      table.append(body);
      card.append(h('div', { class: 'small muted' }, 'replication progress'), h('div', { class: 'table-wrap' }, table));
    }
    return card;
  }

  render();
  setInterval(poll, POLL_MS);
}

function syncOptions(sel: HTMLSelectElement, options: [string, string][]): void {
  const key = options.map(([v]) => v).join('\n');
  if (sel.dataset.key === key) return;
  const current = sel.value;
  sel.dataset.key = key;
  sel.replaceChildren(...options.map(([v, t]) => h('option', { value: v, selected: v === current }, t)));
}

function splitNodes(v: string | null): string[] {
  return (v ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => /^[A-Za-z0-9.\-[\]:]+:\d+$/.test(x));
}
