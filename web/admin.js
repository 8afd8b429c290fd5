// Orrery admin page: polls the admin API (GET /admin/cluster and /admin/decisions every 2 s) and
// sends the scaling loop's overrides. Plain ES module, no build step, no dependencies.
//
// Hooks for automated browser tests (kept stable on purpose):
//   #token              the admin token (type=password, no name: never submitted, never in a URL);
//                       kept in sessionStorage under "orrery.admin.token"
//   #connect            saves the token and starts polling; #forget drops it and stops
//   #conn               data-state = idle | connecting | open | closed | unauthorized
//   #toasts .toast      one notice per API error (data-code = error code, e.g. unauthorized);
//                       .toast.ok for a confirmed action; .toast-close dismisses
//   #nodes-table        tbody tr[data-node][data-state]; .badge[data-state] = up|draining|joining|down;
//                       .chip[data-model] per loaded model; button.drain / button.undrain [data-node]
//   #models-table       tbody tr[data-model]; td.replicas-cell > .replicas (count of up nodes holding it),
//                       td.bounds, .badge.route[data-state] = local|fallback, form.set-form with
//                       input.replicas-input, button.set-replicas, button.clear-replicas
//   #load-chart         <canvas> of total active / total queued (+ dashed per-model queues);
//                       #chart-legend; #chart-per-model toggles the per-model lines
//   #decisions          <ol>, newest first; li.decision[data-action = load|unload|route|note]
//                       with time, .model, .act, .target and .reason; #decisions-actions-only
//   #scaling-state      .badge[data-state] = running | paused | unavailable | unknown
//   #pause, #resume     autoscaling buttons (the one matching the current state is disabled)
//   Buttons are disabled with aria-disabled="true" (not the attribute), so that focus stays on them.
//   #policy-form        six inputs #policy-<field> (name = the policy field), submit #policy-save
//                       sends PUT /admin/policy with all six; #policy-reset discards edits
//
// Everything from the server goes in through textContent; nothing reaches innerHTML.

const $ = (sel, root = document) => root.querySelector(sel);

const TOKEN_KEY = 'orrery.admin.token';
const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
const REQUEST_TIMEOUT_MS = 8000;
const MAX_POINTS = Math.ceil(WINDOW_MS / 500) + 10;
const MAX_TOASTS = 5;
const POLICY_FIELDS = [
  ['scale_up_queue_per_replica', 'float'],
  ['scale_up_ticks', 'ticks'],
  ['idle_keepalive_ms', 'ms'],
  ['cooldown_ms', 'ms'],
  ['fallback_wait_ms', 'ms'],
  ['fallback_clear_ticks', 'ticks'],
];

const els = {
  tokenForm: $('#token-form'),
  token: $('#token'),
  connect: $('#connect'),
  forget: $('#forget'),
  conn: $('#conn'),
  connLive: $('#conn-live'),
  toasts: $('#toasts'),
  chart: $('#load-chart'),
  chartLegend: $('#chart-legend'),
  chartPerModel: $('#chart-per-model'),
  scalingState: $('#scaling-state'),
  scalingTicks: $('#scaling-ticks'),
  scalingOverrides: $('#scaling-overrides'),
  pause: $('#pause'),
  resume: $('#resume'),
  policyForm: $('#policy-form'),
  policySave: $('#policy-save'),
  policyReset: $('#policy-reset'),
  policyHint: $('#policy-hint'),
  nodesBody: $('#nodes-table tbody'),
  nodesCount: $('#nodes-count'),
  modelsBody: $('#models-table tbody'),
  decisions: $('#decisions'),
  decisionsEmpty: $('#decisions-empty'),
  decisionsCount: $('#decisions-count'),
  actionsOnly: $('#decisions-actions-only'),
};

const state = {
  token: '',
  polling: false,
  gen: 0, // bumped on every connect/disconnect: answers of an older generation are dropped
  timer: 0,
  inflight: null, // the generation whose poll is in flight
  again: false,
  lastOkAt: 0,
  nodes: [],
  scaling: null,
  decisions: [],
  decisionsKey: '',
  newestSeenAt: null,
  points: [], // {t, active, queued, models: {model: queued}}
  policyDirty: false,
  busy: new Set(), // keys of actions in flight, e.g. "drain:node-1"
  nodeRows: new Map(),
  modelRows: new Map(),
  toastByKey: new Map(),
  mutedKeys: new Set(),
};

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token}` };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  init.signal = ctl.signal;
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    const timedOut = err && err.name === 'AbortError';
    throw new ApiError(0, timedOut ? 'timeout' : 'network',
      timedOut ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : 'the node could not be reached');
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : {};
    const code = typeof e.code === 'string' ? e.code : res.status === 401 ? 'unauthorized' : `http_${res.status}`;
    const message = typeof e.message === 'string' ? e.message : `${method} ${path}: HTTP ${res.status}`;
    throw new ApiError(res.status, code, message);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Connection and polling

function setConn(kind, text) {
  if (els.conn.dataset.state !== kind) {
    const spoken = { open: 'connected', closed: 'connection lost', unauthorized: 'token refused', idle: 'disconnected' };
    els.connLive.textContent = spoken[kind] ?? '';
  }
  els.conn.dataset.state = kind;
  els.conn.textContent = text;
}

function connect() {
  const token = els.token.value.trim();
  if (!token) {
    toast('no_token', 'Enter the admin token (ORRERY_ADMIN_TOKEN on the node) first.', { key: 'no-token' });
    els.token.focus();
    return;
  }
  dismissToast('no-token');
  dismissToast('auth');
  state.token = token;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage may be off (private mode); the token still works for this page.
  }
  els.forget.hidden = false;
  startPolling();
}

function forget() {
  stopPolling();
  state.token = '';
  els.token.value = '';
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  els.forget.hidden = true;
  setConn('idle', 'not connected');
  els.token.focus();
}

function startPolling() {
  stopPolling();
  state.polling = true;
  state.mutedKeys.clear();
  setConn('connecting', 'connecting…');
  poll();
}

function stopPolling() {
  state.gen += 1;
  state.polling = false;
  clearTimeout(state.timer);
  state.timer = 0;
}

async function poll() {
  const gen = state.gen;
  // One poll at a time per connection; a refresh asked for meanwhile runs right after it.
  if (state.inflight === gen) {
    state.again = true;
    return;
  }
  state.inflight = gen;
  state.again = false;
  const started = performance.now();
  try {
    const [c, d] = await Promise.allSettled([api('GET', '/admin/cluster'), api('GET', '/admin/decisions')]);
    if (gen !== state.gen) return;

    const failures = [c, d].filter((r) => r.status === 'rejected').map((r) => r.reason);
    const denied = failures.find((e) => e instanceof ApiError && e.status === 401);
    if (denied) {
      unauthorized(denied);
      return;
    }

    if (c.status === 'fulfilled') {
      dismissToast('poll-cluster', true);
      state.lastOkAt = Date.now();
      setConn('open', `live · ${clock(state.lastOkAt)}`);
      onCluster(c.value);
    } else {
      pollError('poll-cluster', c.reason, 'cluster');
      setConn('closed', 'no answer — retrying');
      drawChart();
    }
    if (d.status === 'fulfilled') {
      dismissToast('poll-decisions', true);
      onDecisions(d.value);
    } else {
      const e = asApiError(d.reason);
      // When the node is unreachable the cluster notice says it already.
      if (c.status === 'fulfilled' || asApiError(c.reason).code !== e.code) {
        pollError('poll-decisions', e, 'decision log');
      }
      state.decisionsKey = '';
      if (state.decisions.length === 0) {
        els.decisionsEmpty.hidden = false;
        els.decisionsEmpty.textContent = `The decision log is unavailable: ${e.message}`;
      }
    }
  } catch (err) {
    // A rendering bug must not stop the polling.
    console.error('admin page: could not show the answer', err);
  } finally {
    if (state.inflight === gen) state.inflight = null;
    if (gen === state.gen && state.polling) {
      const wait = state.again ? 150 : Math.max(250, POLL_MS - (performance.now() - started));
      clearTimeout(state.timer);
      state.timer = setTimeout(poll, wait);
    }
  }
}

// Refresh soon after an action, without waiting for the next tick (and without doubling up).
function pollSoon() {
  if (!state.polling) return;
  if (state.inflight === state.gen) {
    state.again = true;
    return;
  }
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, 150);
}

function pollError(key, err, what) {
  const e = asApiError(err);
  toast(e.code, `${what}: ${e.message}`, { key });
}

function unauthorized(err) {
  stopPolling();
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  dismissToast('poll-cluster');
  dismissToast('poll-decisions');
  setConn('unauthorized', 'token refused');
  toast('unauthorized', err?.message || 'missing or wrong admin bearer token', { key: 'auth' });
  els.token.focus();
  els.token.select();
}

function asApiError(err) {
  if (err instanceof ApiError) return err;
  return new ApiError(0, 'error', String(err?.message ?? err));
}

// Runs one admin action; the key keeps a double click from sending it twice.
async function act(key, method, path, body, okText, buttons = []) {
  if (!state.token) {
    toast('no_token', 'Connect with the admin token first.', { key: 'no-token' });
    els.token.focus();
    return null;
  }
  if (state.busy.has(key)) return null;
  state.busy.add(key);
  for (const b of buttons) setDisabled(b, true);
  try {
    const data = await api(method, path, body);
    toast('done', okText, { ok: true });
    pollSoon();
    return data;
  } catch (err) {
    const e = asApiError(err);
    if (e.status === 401) unauthorized(e);
    else toast(e.code, e.message);
    return null;
  } finally {
    state.busy.delete(key);
    for (const b of buttons) setDisabled(b, false);
    // Put the right enabled/disabled state back on the pause/resume pair.
    renderScaling();
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster

function onCluster(data) {
  const nodes = Array.isArray(data?.nodes) ? data.nodes.filter((n) => n && typeof n.node === 'string') : [];
  state.nodes = nodes;
  state.scaling = data && typeof data.scaling === 'object' ? data.scaling : null;
  recordPoint(nodes);
  renderNodes();
  renderModels();
  renderScaling();
  drawChart();
}

function drainedSet() {
  const d = state.scaling?.overrides?.drained;
  return new Set(Array.isArray(d) ? d : []);
}

function renderNodes() {
  const drained = drainedSet();
  const nodes = [...state.nodes].sort((a, b) => a.node.localeCompare(b.node));
  const up = nodes.filter((n) => n.state === 'up').length;
  els.nodesCount.textContent = nodes.length ? `${up} of ${nodes.length} up` : '';

  syncRows(els.nodesBody, state.nodeRows, nodes.map((n) => n.node), createNodeRow, 7, 'No nodes answered.');
  for (const n of nodes) updateNodeRow(state.nodeRows.get(n.node), n, drained.has(n.node));
}

function createNodeRow(name) {
  const tr = document.createElement('tr');
  tr.dataset.node = name;
  const th = document.createElement('th');
  th.scope = 'row';
  const nameEl = document.createElement('span');
  nameEl.className = 'mono';
  nameEl.textContent = name;
  th.append(nameEl);
  const cells = {
    state: td('State'),
    addr: td('Address', 'mono'),
    cpu: td('CPU', 'num'),
    mem: td('Free memory', 'num'),
    models: td('Models'),
    action: td('Actions'),
  };
  const badge = document.createElement('span');
  badge.className = 'badge';
  cells.state.append(badge);
  const drain = document.createElement('button');
  drain.type = 'button';
  drain.className = 'btn small danger drain';
  drain.dataset.node = name;
  cells.action.append(drain);
  tr.append(th, ...Object.values(cells));
  return { tr, cells, badge, drain, name };
}

function updateNodeRow(row, n, adminDrained) {
  const st = ['up', 'draining', 'joining', 'down'].includes(n.state) ? n.state : 'unknown';
  row.tr.dataset.state = st;
  row.badge.dataset.state = st;
  row.badge.textContent = adminDrained && st === 'up' ? 'up · drained' : st;
  setText(row.cells.addr, typeof n.addr === 'string' && n.addr ? n.addr : '—');

  // CPU
  const cpu = Number.isFinite(n.cpu_percent) ? n.cpu_percent : null;
  row.cells.cpu.replaceChildren();
  if (cpu == null) {
    row.cells.cpu.textContent = '—';
  } else {
    row.cells.cpu.append(`${cpu.toFixed(cpu < 10 ? 1 : 0)} %`, bar(cpu / 100, cpu >= 85));
  }

  // Memory: free of total, the bar shows what is used.
  const free = Number.isFinite(n.memory_available_bytes) ? n.memory_available_bytes : null;
  const total = Number.isFinite(n.memory_total_bytes) ? n.memory_total_bytes : null;
  row.cells.mem.replaceChildren();
  if (free == null) {
    row.cells.mem.textContent = '—';
  } else {
    row.cells.mem.append(total ? `${bytes(free)} of ${bytes(total)}` : bytes(free));
    if (total) row.cells.mem.append(bar(1 - free / total, free / total < 0.1));
  }

  // Models
  const models = Array.isArray(n.models) ? n.models.filter((m) => m && typeof m.model === 'string') : [];
  row.cells.models.replaceChildren();
  if (models.length === 0) {
    const none = document.createElement('span');
    none.className = 'muted';
    none.textContent = st === 'down' || st === 'joining' ? '—' : 'none loaded';
    row.cells.models.append(none);
  } else {
    const ul = document.createElement('ul');
    ul.className = 'chips';
    for (const m of models) ul.append(modelChip(m));
    row.cells.models.append(ul);
  }

  // Drain / undrain: one button whose meaning follows the state.
  const draining = st === 'draining' || adminDrained;
  const verb = draining ? 'undrain' : 'drain';
  const b = row.drain;
  b.className = `btn small ${draining ? 'undrain' : 'danger drain'}`;
  b.textContent = draining ? 'Undrain' : 'Drain';
  b.setAttribute('aria-label', `${draining ? 'Undrain' : 'Drain'} node ${row.name}`);
  b.hidden = st === 'down';
  row.cells.action.classList.toggle('no-action', b.hidden);
  setDisabled(b, state.busy.has(`drain:${row.name}`));
  b.onclick = () => {
    if (isDisabled(b)) return;
    const name = row.name;
    act(`drain:${name}`, 'POST', `/admin/nodes/${encodeURIComponent(name)}/${verb}`, undefined,
      draining ? `Node ${name} takes work again.` : `Node ${name} is draining.`, [b]);
  };
}

function modelChip(m) {
  const li = document.createElement('li');
  li.className = 'chip';
  li.dataset.model = m.model;
  const name = document.createElement('span');
  name.className = 'mono';
  name.textContent = m.model;
  const load = document.createElement('span');
  load.className = 'load';
  const active = count(m.active);
  const queued = count(m.queued);
  load.append(`${active}${Number.isFinite(m.max_sequences) ? `/${m.max_sequences}` : ''} active · `);
  const q = document.createElement('span');
  if (queued > 0) q.className = 'q';
  q.textContent = `${queued} queued`;
  load.append(q);
  if (active > 0 || queued > 0) li.dataset.busy = '';
  li.append(name, load);
  const bits = [];
  if (typeof m.kind === 'string' && m.kind) bits.push(m.kind);
  if (Number.isFinite(m.memory_bytes) && m.memory_bytes > 0) bits.push(bytes(m.memory_bytes));
  if (Number.isFinite(m.est_wait_ms) && m.est_wait_ms > 0) bits.push(`est. wait ${duration(m.est_wait_ms)}`);
  if (Number.isFinite(m.idle_since_ms) && m.idle_since_ms > 1e12) bits.push(`idle since ${clock(m.idle_since_ms)}`);
  if (bits.length) li.title = bits.join(' · ');
  return li;
}

// ---------------------------------------------------------------------------------------------
// Models

function renderModels() {
  const sc = state.scaling;
  const view = sc?.last_view && typeof sc.last_view === 'object' ? sc.last_view : null;
  const specs = new Map();
  for (const s of Array.isArray(view?.models) ? view.models : []) {
    if (s && typeof s.model === 'string' && !specs.has(s.model)) specs.set(s.model, s);
  }
  const fixed = sc?.overrides?.replicas && typeof sc.overrides.replicas === 'object' ? sc.overrides.replicas : {};
  const pinned = sc?.overrides?.pinned && typeof sc.overrides.pinned === 'object' ? sc.overrides.pinned : {};
  const routes = sc?.routes && typeof sc.routes === 'object' ? sc.routes : {};

  // Per model, from the live node list: the up nodes holding it and its load everywhere.
  const live = new Map();
  const entry = (name) => {
    if (!live.has(name)) live.set(name, { holders: [], active: 0, queued: 0, maxWait: 0, kind: '' });
    return live.get(name);
  };
  for (const n of state.nodes) {
    for (const m of Array.isArray(n.models) ? n.models : []) {
      if (!m || typeof m.model !== 'string') continue;
      const e = entry(m.model);
      if (n.state === 'up') e.holders.push(n.node);
      e.active += count(m.active);
      e.queued += count(m.queued);
      if (Number.isFinite(m.est_wait_ms)) e.maxWait = Math.max(e.maxWait, m.est_wait_ms);
      if (!e.kind && typeof m.kind === 'string') e.kind = m.kind;
    }
  }

  const names = [...new Set([...specs.keys(), ...live.keys(), ...Object.keys(fixed), ...Object.keys(routes)])]
    .sort((a, b) => a.localeCompare(b));
  syncRows(els.modelsBody, state.modelRows, names, createModelRow, 6,
    state.scaling ? 'No models configured.' : 'No models yet.');
  for (const name of names) {
    updateModelRow(state.modelRows.get(name), {
      spec: specs.get(name) ?? null,
      live: live.get(name) ?? { holders: [], active: 0, queued: 0, maxWait: 0, kind: '' },
      fixed: Number.isInteger(fixed[name]) ? fixed[name] : null,
      pinned: Array.isArray(pinned[name]) ? pinned[name] : [],
      route: routes[name] && typeof routes[name] === 'object' ? routes[name] : null,
    });
  }
}

function createModelRow(name) {
  const tr = document.createElement('tr');
  tr.dataset.model = name;
  const th = document.createElement('th');
  th.scope = 'row';
  const nameEl = document.createElement('span');
  nameEl.className = 'mono';
  nameEl.textContent = name;
  const kind = document.createElement('span');
  kind.className = 'sub-line';
  th.append(nameEl, kind);

  const cells = {
    replicas: td('Replicas', 'replicas-cell'),
    bounds: td('Bounds', 'bounds'),
    load: td('Load', 'num'),
    route: td('Route'),
    set: td('Fix replicas'),
  };
  const count = document.createElement('span');
  count.className = 'replicas';
  const holders = document.createElement('span');
  holders.className = 'sub-line mono';
  cells.replicas.append(count, holders);

  const route = document.createElement('span');
  route.className = 'badge route';
  const routeNote = document.createElement('span');
  routeNote.className = 'sub-line';
  cells.route.append(route, routeNote);

  const form = document.createElement('form');
  form.className = 'set-form';
  form.noValidate = true;
  const id = `replicas-${[...name].map((c) => (/[A-Za-z0-9_-]/.test(c) ? c : `_${c.codePointAt(0)}`)).join('')}`;
  const label = document.createElement('label');
  label.className = 'visually-hidden';
  label.htmlFor = id;
  label.textContent = `Fixed replica count for ${name}`;
  const input = document.createElement('input');
  input.type = 'number';
  input.id = id;
  input.className = 'replicas-input';
  input.min = '0';
  input.max = '64';
  input.step = '1';
  input.inputMode = 'numeric';
  const set = document.createElement('button');
  set.type = 'submit';
  set.className = 'btn small set-replicas';
  set.textContent = 'Set';
  set.setAttribute('aria-label', `Fix the replica count of ${name}`);
  const clear = document.createElement('button');
  clear.type = 'button';
  clear.className = 'btn small clear-replicas';
  clear.textContent = 'Clear';
  clear.setAttribute('aria-label', `Put ${name} back to its configured replica bounds`);
  form.append(label, input, set, clear);
  cells.set.append(form);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (isDisabled(set)) return;
    const raw = input.value.trim();
    const n = Number(raw);
    if (!raw || !Number.isInteger(n) || n < 0 || n > 64) {
      toast('invalid_params', `Replicas for ${name} must be a whole number from 0 to 64.`);
      input.focus();
      return;
    }
    const ok = await act(`replicas:${name}`, 'POST', `/admin/models/${encodeURIComponent(name)}/replicas`,
      { replicas: n }, `${name} fixed at ${n} ${n === 1 ? 'replica' : 'replicas'}.`, [set, clear]);
    if (ok) input.value = '';
  });
  clear.addEventListener('click', () => {
    if (isDisabled(clear)) return;
    act(`replicas:${name}`, 'POST', `/admin/models/${encodeURIComponent(name)}/replicas`,
      { replicas: null }, `${name} is back to its configured bounds.`, [set, clear]);
  });

  tr.append(th, ...Object.values(cells));
  return { tr, cells, kind, count, holders, route, routeNote, input, set, clear };
}

function updateModelRow(row, m) {
  const { spec, live, fixed, pinned, route } = m;
  row.kind.textContent = live.kind;
  row.kind.hidden = !live.kind;

  row.count.textContent = String(live.holders.length);
  row.holders.textContent = live.holders.length ? live.holders.join(', ') : 'on no up node';

  // Bounds, and the override that replaces them.
  row.cells.bounds.replaceChildren();
  if (fixed != null) {
    const b = document.createElement('span');
    b.className = 'badge';
    b.dataset.state = 'fixed';
    b.textContent = `fixed ${fixed}`;
    row.cells.bounds.append(b);
  }
  const bounds = document.createElement('span');
  if (spec) {
    const lo = count(spec.min_replicas);
    const hi = Math.max(lo, count(spec.max_replicas));
    bounds.textContent = `min ${lo} · max ${hi}`;
    if (fixed != null) bounds.className = 'sub-line';
    const low = fixed == null && live.holders.length < lo;
    const high = fixed == null && live.holders.length > hi;
    row.tr.dataset.outOfBounds = low ? 'below' : high ? 'above' : '';
  } else {
    bounds.textContent = 'not in the last view';
    bounds.className = 'sub-line';
  }
  row.cells.bounds.append(bounds);
  if (pinned.length) {
    const p = document.createElement('span');
    p.className = 'sub-line';
    p.textContent = `pinned: ${pinned.join(', ')}`;
    row.cells.bounds.append(p);
  }
  if (spec && Number.isFinite(spec.memory_bytes) && spec.memory_bytes > 0) {
    const mem = document.createElement('span');
    mem.className = 'sub-line';
    mem.textContent = `${bytes(spec.memory_bytes)} per replica`;
    row.cells.bounds.append(mem);
  }

  // Load
  row.cells.load.replaceChildren(`${live.active} active · ${live.queued} queued`);
  if (live.maxWait > 0) {
    const w = document.createElement('span');
    w.className = 'sub-line';
    w.textContent = `est. wait up to ${duration(live.maxWait)}`;
    row.cells.load.append(w);
  }

  // Route
  const fallbackNow = route?.kind === 'fallback';
  row.route.dataset.state = fallbackNow ? 'fallback' : 'local';
  row.route.textContent = fallbackNow
    ? `fallback → ${typeof route.backend === 'string' ? route.backend : '?'}`
    : 'local';
  const fb = typeof spec?.fallback === 'string' ? spec.fallback : null;
  row.routeNote.textContent = !fallbackNow && fb ? `fallback: ${fb}` : !fb && !fallbackNow ? 'no fallback' : '';
  row.routeNote.hidden = !row.routeNote.textContent;

  // The input keeps what the admin is typing; only the hint follows the data.
  row.input.placeholder = fixed != null ? String(fixed) : String(live.holders.length);
  const busy = state.busy.has(`replicas:${row.tr.dataset.model}`);
  setDisabled(row.set, busy);
  setDisabled(row.clear, busy || fixed == null);
}

// ---------------------------------------------------------------------------------------------
// Autoscaling and policy

function renderScaling() {
  const sc = state.scaling;
  const connected = Boolean(state.lastOkAt);
  let kind;
  if (!connected) kind = 'unknown';
  else if (!sc) kind = 'unavailable';
  else kind = sc.overrides?.paused ? 'paused' : 'running';
  els.scalingState.dataset.state = kind;
  els.scalingState.textContent = kind === 'unavailable' ? 'loop not answering' : kind;

  const busy = state.busy.has('pause');
  setDisabled(els.pause, busy || kind === 'paused');
  setDisabled(els.resume, busy || kind === 'running');

  if (sc) {
    const bits = [];
    if (Number.isFinite(sc.ticks)) bits.push(`tick ${sc.ticks}`);
    const now = sc.last_view?.now_ms;
    if (Number.isFinite(now) && now > 1e12) bits.push(`view ${clock(now)}`);
    els.scalingTicks.textContent = bits.join(' · ');

    const o = sc.overrides ?? {};
    const parts = [];
    const drained = Array.isArray(o.drained) ? o.drained : [];
    if (drained.length) parts.push(`drained: ${drained.join(', ')}`);
    const fixed = o.replicas && typeof o.replicas === 'object' ? Object.entries(o.replicas) : [];
    if (fixed.length) parts.push(`fixed: ${fixed.map(([k, v]) => `${k}=${v}`).join(', ')}`);
    const pinned = o.pinned && typeof o.pinned === 'object' ? Object.keys(o.pinned) : [];
    if (pinned.length) parts.push(`pinned: ${pinned.join(', ')}`);
    els.scalingOverrides.textContent = parts.length ? `Overrides — ${parts.join(' · ')}` : '';

    if (!state.policyDirty && sc.policy && typeof sc.policy === 'object') fillPolicy(sc.policy);
  } else {
    els.scalingTicks.textContent = '';
    els.scalingOverrides.textContent = connected
      ? 'The scaling loop did not answer (autoscaling may be off on this cluster).'
      : '';
  }
}

function fillPolicy(policy) {
  for (const [field] of POLICY_FIELDS) {
    const input = els.policyForm.elements.namedItem(field);
    if (!input || document.activeElement === input) continue;
    const v = policy[field];
    input.value = Number.isFinite(v) ? String(v) : '';
  }
}

function readPolicy() {
  const policy = {};
  const errors = [];
  for (const [field, kind] of POLICY_FIELDS) {
    const input = els.policyForm.elements.namedItem(field);
    const raw = input.value.trim();
    const n = Number(raw);
    const label = input.closest('label')?.firstChild?.textContent.trim() ?? field;
    if (!raw || !Number.isFinite(n)) {
      errors.push(`${label}: a number is needed`);
    } else if (kind === 'float' && n < 0) {
      errors.push(`${label}: must be 0 or more`);
    } else if (kind === 'ticks' && (!Number.isInteger(n) || n < 1 || n > 4294967295)) {
      errors.push(`${label}: a whole number, at least 1`);
    } else if (kind === 'ms' && (!Number.isSafeInteger(n) || n < 0)) {
      errors.push(`${label}: a whole number of milliseconds`);
    } else {
      policy[field] = n;
    }
  }
  return { policy, errors };
}

async function savePolicy() {
  const { policy, errors } = readPolicy();
  if (errors.length) {
    setPolicyHint(errors.join('; '), true);
    return;
  }
  setPolicyHint('saving…', false);
  const data = await act('policy', 'PUT', '/admin/policy', policy, 'Policy saved.', [els.policySave]);
  if (data) {
    state.policyDirty = false;
    setPolicyHint('', false);
    if (data.policy && typeof data.policy === 'object') fillPolicy(data.policy);
  } else {
    setPolicyHint(state.policyDirty ? 'not saved' : '', true);
  }
}

function setPolicyHint(text, isError) {
  els.policyHint.textContent = text;
  els.policyHint.classList.toggle('error', Boolean(isError));
}

// ---------------------------------------------------------------------------------------------
// Decisions

function onDecisions(data) {
  const list = Array.isArray(data?.decisions) ? data.decisions.filter((d) => d && typeof d === 'object') : [];
  const last = list[list.length - 1];
  const key = `${list.length}:${last?.at_ms}:${last?.reason}`;
  if (key === state.decisionsKey) return;
  state.decisionsKey = key;
  state.decisions = list;
  renderDecisions();
}

function actionOf(d) {
  switch (d.directive?.action) {
    case 'load': return 'load';
    case 'unload': return 'unload';
    case 'set_route': return 'route';
    default: return 'note';
  }
}

function renderDecisions() {
  const onlyActions = els.actionsOnly.checked;
  const prevNewest = state.newestSeenAt;
  const items = [];
  let shown = 0;
  let actions = 0;
  for (let i = state.decisions.length - 1; i >= 0; i -= 1) {
    const d = state.decisions[i];
    const action = actionOf(d);
    if (action !== 'note') actions += 1;
    if (onlyActions && action === 'note') continue;
    shown += 1;
    items.push(decisionItem(d, action, prevNewest != null && Number(d.at_ms) > prevNewest));
  }
  const newest = state.decisions[state.decisions.length - 1];
  if (newest && Number.isFinite(newest.at_ms)) state.newestSeenAt = newest.at_ms;

  const scroll = els.decisions.scrollTop;
  els.decisions.replaceChildren(...items);
  els.decisions.scrollTop = scroll;
  els.decisionsEmpty.hidden = shown > 0;
  els.decisionsEmpty.textContent = state.decisions.length && onlyActions ? 'Only notes so far.' : 'No decisions yet.';
  const n = state.decisions.length;
  els.decisionsCount.textContent = n ? `${n} ${n === 1 ? 'entry' : 'entries'} · ${actions} ${actions === 1 ? 'action' : 'actions'}` : '';
}

function decisionItem(d, action, fresh) {
  const li = document.createElement('li');
  li.className = fresh ? 'decision fresh' : 'decision';
  li.dataset.action = action;
  const at = Number(d.at_ms);
  const time = document.createElement('time');
  if (Number.isFinite(at) && at > 0) {
    const date = new Date(at);
    time.dateTime = date.toISOString();
    time.textContent = sameDay(date, new Date()) ? clock(at) : date.toLocaleString();
    time.title = date.toLocaleString();
  } else {
    time.textContent = '—';
  }

  const what = document.createElement('span');
  what.className = 'what';
  const actEl = document.createElement('span');
  actEl.className = 'act';
  actEl.textContent = action;
  const model = document.createElement('span');
  model.className = 'model';
  const modelName = typeof d.model === 'string' ? d.model : d.directive?.model;
  model.textContent = typeof modelName === 'string' ? modelName : 'cluster';
  if (typeof modelName !== 'string') model.classList.add('muted');
  what.append(actEl, model);

  const dir = d.directive;
  let target = '';
  if (action === 'load' && typeof dir.node === 'string') target = `→ ${dir.node}`;
  else if (action === 'unload' && typeof dir.node === 'string') target = `from ${dir.node}`;
  else if (action === 'route') {
    const r = dir.route;
    target = r?.kind === 'fallback' ? `→ fallback ${r.backend ?? '?'}` : `→ ${r?.kind ?? 'local'}`;
  }
  if (target) {
    const t = document.createElement('span');
    t.className = 'target';
    t.textContent = target;
    what.append(t);
  }

  const reason = document.createElement('span');
  reason.className = 'reason';
  reason.textContent = typeof d.reason === 'string' ? d.reason : '';
  li.append(time, what, reason);
  return li;
}

// ---------------------------------------------------------------------------------------------
// Load chart

function recordPoint(nodes) {
  let active = 0;
  let queued = 0;
  const models = {};
  for (const n of nodes) {
    for (const m of Array.isArray(n.models) ? n.models : []) {
      if (!m || typeof m.model !== 'string') continue;
      active += count(m.active);
      queued += count(m.queued);
      models[m.model] = (models[m.model] ?? 0) + count(m.queued);
    }
  }
  const t = Date.now();
  state.points.push({ t, active, queued, models });
  const cutoff = t - WINDOW_MS - 5000;
  while (state.points.length && (state.points[0].t < cutoff || state.points.length > MAX_POINTS)) state.points.shift();
}

const MODEL_COLORS = ['#0ea5a4', '#d946ef', '#f97316', '#22c55e', '#3b82f6', '#e11d48', '#a16207', '#64748b'];

function modelColor(name, names) {
  return MODEL_COLORS[names.indexOf(name) % MODEL_COLORS.length];
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function drawChart() {
  const canvas = els.chart;
  const rect = canvas.getBoundingClientRect();
  if (rect.width < 10 || rect.height < 10) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(rect.width * dpr);
  const h = Math.round(rect.height * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const W = rect.width;
  const H = rect.height;
  ctx.clearRect(0, 0, W, H);

  const colors = {
    text: cssVar('--muted', '#626a80'),
    grid: cssVar('--border', '#e1e4ee'),
    active: cssVar('--accent', '#5b4ef0'),
    queued: cssVar('--warn', '#a15c00'),
  };
  const font = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  const now = Date.now();
  const t0 = now - WINDOW_MS;
  const pts = state.points.filter((p) => p.t >= t0 - POLL_MS);
  const perModel = els.chartPerModel.checked;
  const modelNames = [...new Set(state.points.flatMap((p) => Object.keys(p.models)))].sort();

  let max = 0;
  for (const p of pts) {
    max = Math.max(max, p.active, p.queued);
    if (perModel) for (const v of Object.values(p.models)) max = Math.max(max, v);
  }
  const { step, top } = niceScale(max);

  const pad = { l: 40, r: 12, t: 14, b: 34 };
  const pw = Math.max(10, W - pad.l - pad.r);
  const ph = Math.max(10, H - pad.t - pad.b);
  const x = (t) => pad.l + ((t - t0) / WINDOW_MS) * pw;
  const y = (v) => pad.t + ph - (v / top) * ph;

  ctx.font = font;
  ctx.lineWidth = 1;
  // Horizontal grid and Y labels.
  ctx.fillStyle = colors.text;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = 0; v <= top + 1e-9; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.strokeStyle = colors.grid;
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(pad.l + pw, yy);
    ctx.stroke();
    ctx.fillText(String(v), pad.l - 6, yy);
  }
  // Vertical minute marks and X labels.
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let m = 5; m >= 0; m -= 1) {
    const xx = Math.round(x(now - m * 60000)) + 0.5;
    ctx.strokeStyle = colors.grid;
    ctx.setLineDash([2, 3]);
    ctx.beginPath();
    ctx.moveTo(xx, pad.t);
    ctx.lineTo(xx, pad.t + ph);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.textAlign = m === 5 ? 'left' : m === 0 ? 'right' : 'center';
    const label = m === 0 ? 'now' : pw < 420 ? `−${m}m` : `−${m} min`;
    ctx.fillText(label, m === 5 ? xx - 2 : m === 0 ? xx + 2 : xx, pad.t + ph + 5);
  }
  // Axis titles.
  ctx.textAlign = 'center';
  ctx.textBaseline = 'bottom';
  ctx.fillText('time', pad.l + pw / 2, H - 1);
  ctx.save();
  ctx.translate(11, pad.t + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('asks', 0, 0);
  ctx.restore();

  // Series. A gap of more than three polls (the node did not answer) breaks the lines.
  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.l, pad.t - 2, pw + 2, ph + 4);
  ctx.clip();
  const segments = [];
  for (let i = 0; i < pts.length; i += 1) {
    if (i === 0 || pts[i].t - pts[i - 1].t > POLL_MS * 3) segments.push([]);
    segments[segments.length - 1].push(pts[i]);
  }
  const line = (get, color, width, dash) => {
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = width;
    ctx.setLineDash(dash);
    ctx.lineJoin = 'round';
    for (const seg of segments) {
      if (seg.length === 1) {
        // A lone point (first answer, or one between gaps) still shows.
        ctx.beginPath();
        ctx.arc(x(seg[0].t), y(get(seg[0])), width, 0, Math.PI * 2);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      seg.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(get(p))) : ctx.moveTo(x(p.t), y(get(p)))));
      ctx.stroke();
    }
    ctx.setLineDash([]);
  };
  if (perModel) {
    for (const name of modelNames) line((p) => p.models[name] ?? 0, modelColor(name, modelNames), 1.5, [5, 4]);
  }
  // Queued with a soft fill under it, active on top.
  ctx.fillStyle = color2alpha(colors.queued, 0.12);
  for (const seg of segments) {
    if (seg.length < 2) continue;
    ctx.beginPath();
    ctx.moveTo(x(seg[0].t), y(0));
    for (const p of seg) ctx.lineTo(x(p.t), y(p.queued));
    ctx.lineTo(x(seg[seg.length - 1].t), y(0));
    ctx.closePath();
    ctx.fill();
  }
  line((p) => p.queued, colors.queued, 2, []);
  line((p) => p.active, colors.active, 2.25, []);
  ctx.restore();

  if (pts.length === 0) {
    ctx.fillStyle = colors.text;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.font = '13px system-ui, sans-serif';
    ctx.fillText(state.token ? 'waiting for data…' : 'connect to see the load', pad.l + pw / 2, pad.t + ph / 2);
  }

  renderLegend(colors, perModel ? modelNames : []);
  const last = pts[pts.length - 1];
  const peakQ = pts.reduce((a, p) => Math.max(a, p.queued), 0);
  const peakA = pts.reduce((a, p) => Math.max(a, p.active), 0);
  canvas.setAttribute('aria-label', last
    ? `Load over the last 5 minutes: now ${last.active} active and ${last.queued} queued; peaks ${peakA} active, ${peakQ} queued.`
    : 'Load chart: no data yet');
}

function renderLegend(colors, modelNames) {
  const last = state.points[state.points.length - 1];
  const items = [
    ['Active (total)', colors.active, false, last?.active],
    ['Queued (total)', colors.queued, false, last?.queued],
    ...modelNames.map((n) => [`${n} queued`, modelColor(n, modelNames), true, last?.models[n] ?? 0]),
  ];
  els.chartLegend.replaceChildren(...items.map(([label, color, dashed, value]) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = dashed ? 'swatch dashed' : 'swatch';
    sw.style.color = color;
    sw.setAttribute('aria-hidden', 'true');
    const text = document.createElement('span');
    text.textContent = label;
    li.append(sw, text);
    if (value != null) {
      const v = document.createElement('span');
      v.className = 'value';
      v.textContent = String(value);
      li.append(v);
    }
    return li;
  }));
}

function niceScale(peak) {
  if (peak <= 3) return { step: 1, top: 4 };
  const max = peak * 1.08; // headroom: the busiest line stays off the top edge
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw);
  return { step, top: Math.ceil(max / step) * step };
}

function color2alpha(color, alpha) {
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (!m) return `color-mix(in srgb, ${color} ${alpha * 100}%, transparent)`;
  const v = parseInt(m[1], 16);
  return `rgba(${(v >> 16) & 255}, ${(v >> 8) & 255}, ${v & 255}, ${alpha})`;
}

// ---------------------------------------------------------------------------------------------
// Notices

// An error notice stays until dismissed; one with a key replaces the notice of the same key
// (a failing poll shows one notice, not one every 2 s). ok notices go away on their own.
function toast(code, message, { key = null, ok = false } = {}) {
  // A keyed notice the admin dismissed stays away until its cause clears (dismissToast(key, true)).
  if (key && state.mutedKeys.has(key)) return;
  if (key && state.toastByKey.has(key)) {
    const t = state.toastByKey.get(key);
    if (t.isConnected) {
      t.dataset.code = code;
      t.querySelector('strong').textContent = code.replaceAll('_', ' ');
      t.querySelector('.toast-text').textContent = message;
      return;
    }
  }
  const t = document.createElement('div');
  t.className = ok ? 'toast ok' : 'toast';
  t.dataset.code = code;
  t.setAttribute('role', ok ? 'status' : 'alert');
  const body = document.createElement('div');
  body.className = 'toast-body';
  const title = document.createElement('strong');
  title.textContent = ok ? 'done' : code.replaceAll('_', ' ');
  const text = document.createElement('span');
  text.className = 'toast-text';
  text.textContent = message;
  body.append(title, text);
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => {
    if (key && key.startsWith('poll-')) state.mutedKeys.add(key);
    removeToast(t);
  });
  t.append(body, close);
  if (key) {
    t.dataset.key = key;
    state.toastByKey.set(key, t);
  }
  els.toasts.append(t);
  if (ok) setTimeout(() => removeToast(t), 4000);
  while (els.toasts.children.length > MAX_TOASTS) removeToast(els.toasts.firstElementChild);
}

function removeToast(t) {
  if (t.dataset.key && state.toastByKey.get(t.dataset.key) === t) state.toastByKey.delete(t.dataset.key);
  t.remove();
}

function dismissToast(key, cleared = false) {
  if (cleared) state.mutedKeys.delete(key);
  const t = state.toastByKey.get(key);
  if (t) removeToast(t);
}

// ---------------------------------------------------------------------------------------------
// Helpers

// Keeps one <tr> per key in `tbody`, in the order of `keys`, touching only rows that changed
// place (a focused button or a half-typed input survives the 2 s refresh).
function syncRows(tbody, rows, keys, create, colspan, emptyText) {
  const want = new Set(keys);
  for (const [k, row] of rows) {
    if (!want.has(k)) {
      row.tr.remove();
      rows.delete(k);
    }
  }
  const placeholder = tbody.querySelector('tr.placeholder');
  if (keys.length === 0) {
    if (placeholder) {
      placeholder.firstElementChild.textContent = emptyText;
    } else {
      const tr = document.createElement('tr');
      tr.className = 'placeholder';
      const cell = document.createElement('td');
      cell.colSpan = colspan;
      cell.className = 'empty-row';
      cell.textContent = emptyText;
      tr.append(cell);
      tbody.append(tr);
    }
    return;
  }
  if (placeholder) placeholder.remove();
  let cursor = tbody.firstElementChild;
  for (const k of keys) {
    let row = rows.get(k);
    if (!row) {
      row = create(k);
      rows.set(k, row);
    }
    if (row.tr !== cursor) tbody.insertBefore(row.tr, cursor);
    else cursor = cursor.nextElementSibling;
  }
}

function setDisabled(button, disabled) {
  if (disabled) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
}

function isDisabled(button) {
  return button.getAttribute('aria-disabled') === 'true';
}

function td(label, className) {
  const cell = document.createElement('td');
  cell.dataset.label = label;
  if (className) cell.className = className;
  return cell;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function bar(fraction, hot) {
  const outer = document.createElement('span');
  outer.className = hot ? 'bar hot' : 'bar';
  outer.setAttribute('aria-hidden', 'true');
  const inner = document.createElement('span');
  inner.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  outer.append(inner);
  return outer;
}

function count(n) {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function bytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function duration(ms) {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  return `${Math.round(ms / 60000)} min`;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// ---------------------------------------------------------------------------------------------
// Wiring

els.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  connect();
});
els.forget.addEventListener('click', forget);

els.pause.addEventListener('click', () => {
  if (isDisabled(els.pause)) return;
  act('pause', 'POST', '/admin/autoscaling/pause', undefined, 'Autoscaling paused.', [els.pause, els.resume]);
});
els.resume.addEventListener('click', () => {
  if (isDisabled(els.resume)) return;
  act('pause', 'POST', '/admin/autoscaling/resume', undefined, 'Autoscaling resumed.', [els.pause, els.resume]);
});

els.policyForm.addEventListener('input', () => {
  state.policyDirty = true;
  setPolicyHint('unsaved changes', false);
});
els.policyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  savePolicy();
});
els.policyReset.addEventListener('click', () => {
  state.policyDirty = false;
  setPolicyHint('', false);
  if (state.scaling?.policy) fillPolicy(state.scaling.policy);
});

els.actionsOnly.addEventListener('change', renderDecisions);
els.chartPerModel.addEventListener('change', drawChart);

if ('ResizeObserver' in window) {
  new ResizeObserver(() => drawChart()).observe(els.chart);
} else {
  window.addEventListener('resize', drawChart);
}
window.matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', drawChart);
// Coming back to the tab: catch up at once rather than at the next (throttled) tick.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') pollSoon();
});

renderScaling();
drawChart();
let saved = '';
try {
  saved = sessionStorage.getItem(TOKEN_KEY) ?? '';
} catch {
  saved = '';
}
if (saved) {
  els.token.value = saved;
  connect();
}
