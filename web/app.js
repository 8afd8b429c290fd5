// Orrery web console: a multi-user chat page over the node's `/ws` WebSocket
// (protocol: docs/websocket.md). Plain ES module, no build step, no dependencies.
//
// Hooks for automated browser tests (kept stable on purpose):
//   #conn            connection status text; contains "connected" only while the socket is open
//                    ("connecting…" / "offline — retrying in N s" otherwise); data-state is
//                    open | connecting | closed
//   #node-name       the node name from `hello`
//   #model           <select> of models (value = model id), defaults to hello.default_model
//   #models-refresh  button that sends a `models` frame
//   #prompt          the ask <textarea>: Enter sends, Shift+Enter inserts a newline
//   #ask             the send button (disabled while offline or the prompt is empty)
//   #settings        <details> holding #max-tokens, #temperature, #seed, #priority (empty = default)
//   #cards           the list of asks, oldest first, newest at the bottom
//   .ask-card        one ask; data-client-id (set at once), data-request-id (set on `accepted`),
//                    data-state = queued | planning | generating | done | failed | cancelled
//     .question      the question text
//     .answer        the answer text (streamed, then replaced by the `done` frame's text)
//     .status        badge text: queued | planning | generating | done | failed | cancelled,
//                    possibly followed by detail ("queued · sending" until `accepted`,
//                    "queued · position 2", "generating on node-1", "failed: <message>")
//     .cancel        Cancel button, present only while the ask is in flight
//     .wf-link       <a> to the Temporal workflow (target=_blank); hidden while workflow_url is null
//     .meta          node, model, finish reason, token usage and timings, shown on `done`
//   #toasts .toast   one notice per `error` frame; .toast-close dismisses it; data-code = error code
//   #nodes li.node   cluster panel entries, data-node = node name; the local one has .self;
//                    .node-name shows the name whole (its title too), wrapping the tag below it
//   the Workflows tab (#tab-workflows, #workflows): see workflows.js
//   #clear           removes finished cards
//
// All server and user text goes in through textContent; nothing from the wire reaches innerHTML.

import { createWorkflows } from './workflows.js';

const $ = (sel, root = document) => root.querySelector(sel);

const els = {
  conn: $('#conn'),
  connLive: $('#conn-live'),
  reconnect: $('#reconnect'),
  nodeName: $('#node-name'),
  nodeNameWrap: $('#node-name-wrap'),
  model: $('#model'),
  modelsRefresh: $('#models-refresh'),
  temporalUi: $('#temporal-ui'),
  cards: $('#cards'),
  empty: $('#empty'),
  listTools: $('#list-tools'),
  inflightCount: $('#inflight-count'),
  clear: $('#clear'),
  composer: $('#composer'),
  prompt: $('#prompt'),
  ask: $('#ask'),
  hint: $('#prompt-hint'),
  maxTokens: $('#max-tokens'),
  temperature: $('#temperature'),
  seed: $('#seed'),
  priority: $('#priority'),
  settings: $('#settings'),
  cluster: $('#cluster'),
  clusterCount: $('#cluster-count'),
  nodes: $('#nodes'),
  modelsList: $('#models-list'),
  toasts: $('#toasts'),
  cardTpl: $('#card-tpl'),
};

const FINAL = new Set(['done', 'failed', 'cancelled']);
const U64_MAX = 18446744073709551615n;
const MAX_TOASTS = 4;

const state = {
  ws: null,
  open: false,
  attempt: 0,
  retryTimer: 0,
  retryAt: 0,
  countdownTimer: 0,
  pingTimer: 0,
  pongDeadline: 0,
  lastPingAt: 0,
  rttMs: null,
  node: null,
  models: [],
  defaultModel: null,
  modelTouched: false,
  limits: { max_prompt_chars: null, max_tokens: 4096 },
  nextClientSeq: 1,
  byClient: new Map(),
  byRequest: new Map(),
  nodes: new Map(),
};

// ---------------------------------------------------------------------------------------------
// Connection

// A node with API keys needs one: open the page as /?api_key=KEY once; it is kept in this
// browser's local storage (a WebSocket cannot carry an Authorization header from a page).
function apiKey() {
  const fromUrl = new URLSearchParams(location.search).get('api_key');
  try {
    if (fromUrl) localStorage.setItem('orrery.api_key', fromUrl);
    return fromUrl || localStorage.getItem('orrery.api_key');
  } catch (_) {
    return fromUrl;
  }
}

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const key = apiKey();
  const query = key ? `?api_key=${encodeURIComponent(key)}` : '';
  return `${scheme}//${location.host}/ws${query}`;
}

function setConn(kind, text) {
  // Only changes of state are announced, not every tick of the retry countdown.
  if (els.conn.dataset.state !== kind || !els.connLive.textContent) {
    els.connLive.textContent = kind === 'open' ? 'connected' : kind === 'closed' ? 'connection lost' : '';
  }
  els.conn.dataset.state = kind;
  document.body.dataset.conn = kind;
  els.conn.textContent = text;
  els.reconnect.hidden = kind !== 'closed';
  updateAskEnabled();
  els.modelsRefresh.disabled = kind !== 'open';
}

function connect() {
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  state.retryTimer = 0;
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) return;

  setConn('connecting', 'connecting…');
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch (err) {
    console.error('websocket', err);
    scheduleReconnect();
    return;
  }
  state.ws = ws;

  ws.addEventListener('open', () => {
    if (state.ws !== ws) return;
    state.open = true;
    state.attempt = 0;
    setConn('open', 'connected');
    startPings();
  });
  ws.addEventListener('message', (ev) => {
    if (state.ws !== ws) return;
    if (typeof ev.data !== 'string') return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      console.warn('ignoring a frame that is not JSON');
      return;
    }
    if (msg && typeof msg === 'object') handleFrame(msg);
  });
  ws.addEventListener('close', () => dropSocket(ws));
  // An `error` event is always followed by `close`; the reconnect happens there.
}

// Forget a socket (closed, or silent past its pong deadline) and start the backoff. Runs once per
// socket: later events of a dropped socket are ignored by the `state.ws !== ws` checks.
function dropSocket(ws) {
  if (state.ws !== ws) return;
  state.ws = null;
  state.open = false;
  stopPings();
  orphanInFlight();
  workflows.onSocketClosed();
  scheduleReconnect();
  if (ws.readyState <= WebSocket.OPEN) ws.close();
}

function scheduleReconnect() {
  // Exponential backoff with full jitter: 0.5 s, 1 s, 2 s … capped at 15 s.
  const base = Math.min(15000, 500 * 2 ** state.attempt);
  const delay = Math.round(base / 2 + Math.random() * (base / 2));
  state.attempt += 1;
  state.retryAt = Date.now() + delay;
  state.retryTimer = setTimeout(connect, delay);
  const tick = () => {
    const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    setConn('closed', s > 0 ? `offline — retrying in ${s} s` : 'offline — retrying…');
  };
  tick();
  clearInterval(state.countdownTimer);
  state.countdownTimer = setInterval(tick, 1000);
}

function retryNow() {
  if (state.open) return;
  state.attempt = 0;
  connect();
}

function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  return true;
}

// Keep-alive: a socket that stops answering pings is treated as dead and replaced.
function startPings() {
  stopPings();
  state.pingTimer = setInterval(() => {
    if (state.pongDeadline && Date.now() > state.pongDeadline) {
      console.warn('no pong: reconnecting');
      if (state.ws) dropSocket(state.ws);
      return;
    }
    if (!state.pongDeadline) {
      state.lastPingAt = performance.now();
      state.pongDeadline = Date.now() + 10000;
      send({ type: 'ping' });
    }
  }, 20000);
}

function stopPings() {
  clearInterval(state.pingTimer);
  state.pingTimer = 0;
  state.pongDeadline = 0;
}

// Asks belong to the socket that sent them; the protocol has no way to re-attach to them from a
// new socket, so they are ended here. Their workflows may still finish: the link stays.
function orphanInFlight() {
  for (const card of state.byClient.values()) {
    if (FINAL.has(card.state)) continue;
    const why = card.requestId
      ? 'connection lost (the workflow may still finish in Temporal)'
      : 'connection lost before the ask was accepted';
    finish(card, 'failed', why);
  }
}

// ---------------------------------------------------------------------------------------------
// Frames from the server

function handleFrame(msg) {
  // Frames of what the Workflows tab started are its own (an error frame is also a notice).
  if (workflows.handleFrame(msg)) return;
  switch (msg.type) {
    case 'hello': return onHello(msg);
    case 'models': return setModels(msg.models, msg.default_model);
    case 'accepted': return onAccepted(msg);
    case 'status': return withCard(msg, onStatus);
    case 'chunk': return withCard(msg, onChunk);
    case 'done': return withCard(msg, onDone);
    case 'failed': return withCard(msg, onFailed);
    case 'cancelled': return withCard(msg, onCancelled);
    case 'error': return onError(msg);
    case 'pong': return onPong();
    case 'cluster': return onCluster(msg.nodes);
    default:
      console.debug('ignoring frame of unknown type', msg.type);
  }
}

function withCard(msg, fn) {
  const card = state.byRequest.get(msg.request_id);
  if (!card) {
    console.debug('frame for an unknown request', msg.type, msg.request_id);
    return;
  }
  fn(card, msg);
}

function onHello(msg) {
  state.node = typeof msg.node === 'string' ? msg.node : null;
  els.nodeName.textContent = state.node ?? '';
  els.nodeNameWrap.hidden = !state.node;

  if (typeof msg.temporal_ui === 'string' && safeHttpUrl(msg.temporal_ui)) {
    els.temporalUi.href = safeHttpUrl(msg.temporal_ui);
    els.temporalUi.hidden = false;
  } else {
    els.temporalUi.hidden = true;
  }

  const limits = msg.limits && typeof msg.limits === 'object' ? msg.limits : {};
  state.limits = {
    max_prompt_chars: Number.isInteger(limits.max_prompt_chars) ? limits.max_prompt_chars : null,
    max_tokens: Number.isInteger(limits.max_tokens) ? limits.max_tokens : 4096,
  };
  els.maxTokens.max = String(state.limits.max_tokens);

  setModels(msg.models, msg.default_model);
  if (state.node) upsertNode(state.node, { self: true });
  if (Array.isArray(msg.cluster)) onCluster(msg.cluster);
  updatePromptHint();
}

function setModels(models, defaultModel) {
  state.models = Array.isArray(models) ? models.filter((m) => m && typeof m.id === 'string') : [];
  state.defaultModel = typeof defaultModel === 'string' ? defaultModel : null;

  const previous = els.model.value;
  els.model.replaceChildren();
  if (state.models.length === 0) {
    els.model.append(new Option(state.defaultModel ?? 'node default', state.defaultModel ?? ''));
  }
  for (const m of state.models) {
    let label = m.id;
    if (m.kind) label += ` · ${m.kind}`;
    if (m.loaded === false) label += ' · not loaded';
    els.model.append(new Option(label, m.id));
  }
  const ids = new Set(state.models.map((m) => m.id));
  if (state.modelTouched && ids.has(previous)) {
    els.model.value = previous;
  } else if (state.defaultModel && ids.has(state.defaultModel)) {
    els.model.value = state.defaultModel;
  }
  els.model.disabled = false;
  renderModelsList();
}

function onAccepted(msg) {
  const card = state.byClient.get(msg.client_id);
  if (!card || typeof msg.request_id !== 'string') {
    console.debug('accepted for an unknown client id', msg.client_id);
    return;
  }
  card.requestId = msg.request_id;
  card.el.dataset.requestId = msg.request_id;
  state.byRequest.set(msg.request_id, card);

  const url = typeof msg.workflow_url === 'string' ? safeHttpUrl(msg.workflow_url) : null;
  card.wf.hidden = !url;
  if (url) {
    card.wf.href = url;
    card.wf.title = `Temporal workflow ${msg.workflow_id ?? msg.request_id}`;
  } else {
    card.wf.removeAttribute('href');
  }

  if (card.cancelWanted) {
    send({ type: 'cancel', request_id: card.requestId });
  } else if (card.state === 'queued' && !card.stageSeen) {
    setStatus(card, 'queued', '');
  }
}

function onStatus(card, msg) {
  if (FINAL.has(card.state)) return;
  card.stageSeen = true;
  switch (msg.stage) {
    case 'queued': {
      const pos = Number.isInteger(msg.queue_position) ? `position ${msg.queue_position}` : '';
      const wait = Number.isInteger(msg.estimated_wait_ms)
        ? `~${Math.max(1, Math.round(msg.estimated_wait_ms / 1000))} s`
        : '';
      const detail = [pos, wait].filter(Boolean).join(', ');
      setStatus(card, 'queued', detail ? `· ${detail}` : '');
      break;
    }
    case 'planning':
      setStatus(card, 'planning', '');
      break;
    case 'generating': {
      const node = typeof msg.node === 'string' ? msg.node : '';
      setStatus(card, 'generating', node ? `on ${node}` : '');
      if (node) upsertNode(node, {});
      break;
    }
    case 'reconnecting':
      // The node cannot reach Temporal for now; the answer goes on and its end will come.
      setStatus(card, 'reconnecting', '· the control plane is away; the answer goes on');
      break;
    default:
      console.debug('unknown stage', msg.stage);
  }
}

// Chunks are applied by offset, counted in Unicode code points (Array.from). A chunk whose text
// matches what is already shown at its offset is a replay and changes nothing (it may extend past
// the end: only the new part is added). A chunk that disagrees with what is shown at its offset
// replaces the tail from that offset: a resumed generation restarted there. A chunk past the end
// leaves a gap; it waits until the gap is filled (or `done` brings the full text).
function onChunk(card, msg) {
  if (FINAL.has(card.state)) return;
  if (!Number.isInteger(msg.offset) || msg.offset < 0 || typeof msg.text !== 'string') return;
  if (msg.offset > card.chars.length) {
    card.pending.set(msg.offset, msg.text);
    return;
  }
  applyChunk(card.chars, msg.offset, Array.from(msg.text));
  // Drain chunks that were waiting for this one.
  for (let guard = 0; card.pending.size && guard < 1000; guard += 1) {
    let next = null;
    for (const off of card.pending.keys()) {
      if (off <= card.chars.length && (next === null || off < next)) next = off;
    }
    if (next === null) break;
    const text = card.pending.get(next);
    card.pending.delete(next);
    applyChunk(card.chars, next, Array.from(text));
  }
  if (card.state === 'queued' || card.state === 'planning') {
    setStatus(card, 'generating', card.generatingOn ? `on ${card.generatingOn}` : '');
  }
  renderAnswer(card);
}

function applyChunk(chars, offset, add) {
  const overlap = Math.min(chars.length - offset, add.length);
  for (let i = 0; i < overlap; i += 1) {
    if (chars[offset + i] !== add[i]) {
      chars.length = offset;
      for (const c of add) chars.push(c);
      return;
    }
  }
  for (let i = overlap; i < add.length; i += 1) chars.push(add[i]);
}

function onDone(card, msg) {
  if (typeof msg.text === 'string') card.chars = Array.from(msg.text);
  renderAnswer(card);
  if (typeof msg.node === 'string') upsertNode(msg.node, {});
  finish(card, 'done', '');
  renderMeta(card, msg);
}

function onFailed(card, msg) {
  const err = msg.error && typeof msg.error === 'object' ? msg.error : {};
  const reason = err.message || err.code || 'unknown error';
  finish(card, 'failed', reason, err.code);
}

function onCancelled(card, msg) {
  if (typeof msg.text === 'string') card.chars = Array.from(msg.text);
  renderAnswer(card);
  finish(card, 'cancelled', '');
}

function onError(msg) {
  const code = typeof msg.code === 'string' ? msg.code : 'error';
  const message = typeof msg.message === 'string' ? msg.message : 'the server rejected a frame';
  const card =
    (msg.client_id != null && state.byClient.get(msg.client_id)) ||
    (msg.request_id != null && state.byRequest.get(msg.request_id)) ||
    null;
  // A late error about a finished ask (e.g. a cancel racing its `done`) changes nothing.
  if (card && !FINAL.has(card.state)) finish(card, 'failed', message, code);
  toast(code, message, card);
}

function onPong() {
  if (state.lastPingAt) state.rttMs = Math.round(performance.now() - state.lastPingAt);
  state.pongDeadline = 0;
  if (state.open && state.rttMs != null) els.conn.title = `round trip ${state.rttMs} ms`;
}

// ---------------------------------------------------------------------------------------------
// Cards

function newCard(prompt, params) {
  const frag = els.cardTpl.content.cloneNode(true);
  const el = frag.querySelector('.ask-card');
  const clientId = `c-${Date.now().toString(36)}-${state.nextClientSeq++}`;
  el.dataset.clientId = clientId;

  const card = {
    clientId,
    requestId: null,
    state: 'queued',
    stageSeen: false,
    cancelWanted: false,
    chars: [],
    pending: new Map(),
    generatingOn: '',
    el,
    status: el.querySelector('.status'),
    answer: el.querySelector('.answer'),
    meta: el.querySelector('.meta'),
    cancel: el.querySelector('.cancel'),
    wf: el.querySelector('.wf-link'),
  };

  el.querySelector('.question').textContent = prompt;
  const tags = [params.model || 'default model'];
  if (params.temperature != null) tags.push(`temp ${params.temperature}`);
  if (params.max_tokens != null) tags.push(`≤ ${params.max_tokens} tokens`);
  if (params.seed != null) tags.push(`seed ${params.seed}`);
  if (params.priority && params.priority !== 'normal') tags.push(`${params.priority} priority`);
  el.querySelector('.card-model').textContent = tags.join(' · ');
  card.answer.id = `answer-${clientId}`;
  card.cancel.setAttribute('aria-label', `Cancel: ${truncate(prompt, 60)}`);
  card.cancel.addEventListener('click', () => requestCancel(card));
  setStatus(card, 'queued', '· sending');

  state.byClient.set(clientId, card);
  const stick = nearBottom();
  els.cards.append(el);
  els.empty.hidden = true;
  updateListTools();
  if (stick) scrollToBottom();
  return card;
}

function setStatus(card, stage, detail) {
  card.state = stage;
  if (stage === 'generating' && detail.startsWith('on ')) card.generatingOn = detail.slice(3);
  card.el.dataset.state = stage;
  card.status.dataset.stage = stage;
  card.status.textContent = detail ? `${stage} ${detail}` : stage;
}

function finish(card, stage, reason, code) {
  const detail = stage === 'failed' ? `: ${reason}` : '';
  setStatus(card, stage, '');
  card.status.textContent = stage + detail;
  if (code) card.status.title = code;
  card.answer.setAttribute('aria-busy', 'false');
  card.cancel.remove();
  card.pending.clear();
  if (stage !== 'done' && card.chars.length === 0) card.answer.dataset.empty = 'true';
  updateListTools();
}

function requestCancel(card) {
  if (FINAL.has(card.state) || card.cancelWanted) return;
  card.cancelWanted = true;
  card.cancel.disabled = true;
  card.cancel.textContent = 'Cancelling…';
  // Not accepted yet: the cancel goes out with the `accepted` frame.
  if (card.requestId) send({ type: 'cancel', request_id: card.requestId });
}

function renderAnswer(card) {
  const stick = nearBottom();
  card.answer.textContent = card.chars.join('');
  delete card.answer.dataset.empty;
  if (stick) scrollToBottom();
}

function renderMeta(card, msg) {
  const parts = [];
  if (typeof msg.node === 'string') parts.push(['node', msg.node]);
  if (typeof msg.model === 'string') parts.push(['model', msg.model]);
  if (typeof msg.finish_reason === 'string') {
    parts.push(['finish', msg.finish_reason === 'length' ? 'length (hit max tokens)' : msg.finish_reason]);
  }
  const u = msg.usage && typeof msg.usage === 'object' ? msg.usage : null;
  if (u) parts.push(['tokens', `${num(u.prompt_tokens)} in · ${num(u.completion_tokens)} out`]);
  const t = msg.timings && typeof msg.timings === 'object' ? msg.timings : null;
  if (t) {
    parts.push(['queue', ms(t.queue_ms)]);
    parts.push(['first token', ms(t.first_token_ms)]);
    parts.push(['total', ms(t.total_ms)]);
  }
  card.meta.replaceChildren();
  for (const [k, v] of parts) {
    const item = document.createElement('span');
    item.className = 'meta-item';
    const key = document.createElement('span');
    key.className = 'meta-key';
    key.textContent = k;
    item.append(key, document.createTextNode(` ${v}`));
    card.meta.append(item);
  }
  card.meta.hidden = parts.length === 0;
}

function clearFinished() {
  for (const [clientId, card] of state.byClient) {
    if (!FINAL.has(card.state)) continue;
    card.el.remove();
    state.byClient.delete(clientId);
    if (card.requestId) state.byRequest.delete(card.requestId);
  }
  els.empty.hidden = state.byClient.size > 0;
  updateListTools();
}

function updateListTools() {
  let inflight = 0;
  let finished = 0;
  for (const card of state.byClient.values()) {
    if (FINAL.has(card.state)) finished += 1;
    else inflight += 1;
  }
  els.listTools.hidden = state.byClient.size === 0;
  els.inflightCount.textContent = inflight ? `${inflight} in flight` : 'nothing in flight';
  els.clear.hidden = finished === 0;
}

// ---------------------------------------------------------------------------------------------
// Asking

function readParams() {
  const params = { priority: els.priority.value || 'normal' };
  const errors = [];

  const model = els.model.value;
  if (model) params.model = model;

  const mt = els.maxTokens.value.trim();
  if (mt) {
    const n = Number(mt);
    if (!Number.isInteger(n) || n < 1 || n > state.limits.max_tokens) {
      errors.push(`max tokens must be a whole number from 1 to ${state.limits.max_tokens}`);
    } else params.max_tokens = n;
  }
  const temp = els.temperature.value.trim();
  if (temp) {
    const n = Number(temp);
    if (!Number.isFinite(n) || n < 0 || n > 2) errors.push('temperature must be between 0 and 2');
    else params.temperature = n;
  }
  const seed = els.seed.value.trim();
  if (seed) {
    // u64: kept as a digit string and written into the JSON verbatim, past 2^53 included.
    if (!/^\d{1,20}$/.test(seed) || BigInt(seed) > U64_MAX) errors.push('seed must be a whole number from 0 to 2^64-1');
    else params.seed = seed.replace(/^0+(?=\d)/, '');
  }
  return { params, errors };
}

function submitAsk() {
  const prompt = els.prompt.value;
  if (!prompt.trim()) return;
  if (!state.open) {
    setHint('offline: the question will be kept here until the connection is back', true);
    return;
  }
  const max = state.limits.max_prompt_chars;
  if (max != null && Array.from(prompt).length > max) {
    setHint(`the question is longer than this node accepts (${max} characters)`, true);
    return;
  }
  const { params, errors } = readParams();
  if (errors.length) {
    els.settings.open = true;
    setHint(errors.join('; '), true);
    return;
  }

  const card = newCard(prompt, params);
  const frame = { type: 'ask', client_id: card.clientId, prompt, priority: params.priority };
  if (params.model) frame.model = params.model;
  if (params.max_tokens != null) frame.max_tokens = params.max_tokens;
  if (params.temperature != null) frame.temperature = params.temperature;
  let text = JSON.stringify(frame);
  if (params.seed != null) text = `${text.slice(0, -1)},"seed":${params.seed}}`;

  if (!send(text)) {
    finish(card, 'failed', 'not connected');
    return;
  }
  els.prompt.value = '';
  autoGrow();
  updatePromptHint();
  updateAskEnabled();
}

function updateAskEnabled() {
  els.ask.disabled = !state.open || !els.prompt.value.trim();
}

function setHint(text, isError) {
  els.hint.textContent = text;
  els.hint.classList.toggle('error', Boolean(isError));
}

function updatePromptHint() {
  const max = state.limits.max_prompt_chars;
  const len = els.prompt.value ? Array.from(els.prompt.value).length : 0;
  if (max != null && len > max * 0.8) {
    setHint(`${len.toLocaleString()} / ${max.toLocaleString()} characters`, len > max);
  } else {
    setHint('', false);
  }
}

function autoGrow() {
  els.prompt.style.height = 'auto';
  els.prompt.style.height = `${Math.min(els.prompt.scrollHeight + 2, 240)}px`;
}

// ---------------------------------------------------------------------------------------------
// Cluster panel: the local node from `hello`, plus nodes seen serving asks. Later cluster events
// feed upsertNode as well.

// `cluster` frames carry the whole view: [{node, state: up|draining|joining|down, addr, models}].
function onCluster(nodes) {
  if (!Array.isArray(nodes)) return;
  const seen = new Set();
  for (const n of nodes) {
    if (!n || typeof n.node !== 'string') continue;
    seen.add(n.node);
    const models = Array.isArray(n.models) ? n.models : [];
    upsertNode(n.node, {
      state: typeof n.state === 'string' ? n.state : 'up',
      active: models.reduce((a, m) => a + (Number(m.active) || 0), 0),
      queued: models.reduce((a, m) => a + (Number(m.queued) || 0), 0),
      fromCluster: true,
    });
  }
  for (const [name, info] of [...state.nodes.entries()]) {
    if (info.fromCluster && !seen.has(name)) state.nodes.delete(name);
  }
  renderNodes();
}

function upsertNode(name, info) {
  const prev = state.nodes.get(name) ?? { self: false };
  state.nodes.set(name, { ...prev, ...info, self: prev.self || Boolean(info.self) });
  renderNodes();
}

function renderNodes() {
  els.nodes.replaceChildren();
  const entries = [...state.nodes.entries()].sort(([a, x], [b, y]) => (y.self - x.self) || a.localeCompare(b));
  for (const [name, info] of entries) {
    const li = document.createElement('li');
    li.className = info.self ? 'node self' : 'node';
    li.dataset.node = name;
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'node-name';
    label.textContent = name;
    label.title = name;
    li.append(dot, label);
    const tag = document.createElement('span');
    const st = info.state ?? 'up';
    li.dataset.state = st;
    tag.className = st === 'up' ? 'tag' : 'tag warn';
    const load = info.fromCluster && st === 'up' ? ` · ${info.active ?? 0} active, ${info.queued ?? 0} queued` : '';
    tag.textContent = (info.self ? 'this node' : st) + (st !== 'up' && info.self ? ` · ${st}` : '') + load;
    li.append(tag);
    els.nodes.append(li);
  }
  const n = state.nodes.size;
  els.clusterCount.textContent = n ? `${n} node${n === 1 ? '' : 's'}` : '';
}

function renderModelsList() {
  els.modelsList.replaceChildren();
  if (state.models.length === 0) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'none reported';
    els.modelsList.append(li);
    return;
  }
  for (const m of state.models) {
    const li = document.createElement('li');
    li.dataset.model = m.id;
    const name = document.createElement('span');
    name.className = 'model-id';
    name.textContent = m.id;
    const tag = document.createElement('span');
    tag.className = m.loaded ? 'tag ok' : 'tag';
    tag.textContent = [m.kind, m.loaded ? 'loaded' : 'not loaded'].filter(Boolean).join(' · ');
    li.append(name, tag);
    if (m.id === state.defaultModel) li.title = 'default model';
    els.modelsList.append(li);
  }
}

// ---------------------------------------------------------------------------------------------
// Notices

function toast(code, message, card) {
  const t = document.createElement('div');
  t.className = 'toast';
  t.dataset.code = code;
  t.setAttribute('role', 'alert');
  const body = document.createElement('div');
  body.className = 'toast-body';
  const title = document.createElement('strong');
  title.textContent = code.replaceAll('_', ' ');
  const text = document.createElement('span');
  text.textContent = message;
  body.append(title, text);
  if (card) {
    const jump = document.createElement('button');
    jump.type = 'button';
    jump.className = 'link-btn';
    jump.textContent = 'show the question';
    jump.addEventListener('click', () => {
      card.el.scrollIntoView({ behavior: 'smooth', block: 'center' });
      card.el.classList.add('flash');
      setTimeout(() => card.el.classList.remove('flash'), 1200);
    });
    body.append(jump);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => t.remove());
  t.append(body, close);
  els.toasts.append(t);
  while (els.toasts.children.length > MAX_TOASTS) els.toasts.firstElementChild.remove();
}

// ---------------------------------------------------------------------------------------------
// Helpers

function safeHttpUrl(s) {
  try {
    const u = new URL(s, location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

function num(n) {
  return Number.isFinite(n) ? n.toLocaleString() : '?';
}

function ms(n) {
  if (!Number.isFinite(n)) return '?';
  return n >= 1000 ? `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)} s` : `${Math.round(n)} ms`;
}

function truncate(s, n) {
  const a = Array.from(s);
  return a.length > n ? `${a.slice(0, n - 1).join('')}…` : s;
}

function nearBottom() {
  const doc = document.documentElement;
  return window.innerHeight + window.scrollY >= doc.scrollHeight - 120;
}

function scrollToBottom() {
  window.scrollTo({ top: document.documentElement.scrollHeight });
}

// ---------------------------------------------------------------------------------------------
// Wiring

els.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  submitAsk();
});
els.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    submitAsk();
  }
});
els.prompt.addEventListener('input', () => {
  autoGrow();
  updatePromptHint();
  updateAskEnabled();
});
els.model.addEventListener('change', () => {
  state.modelTouched = true;
});
els.modelsRefresh.addEventListener('click', () => send({ type: 'models' }));
els.reconnect.addEventListener('click', retryNow);
els.clear.addEventListener('click', clearFinished);
window.addEventListener('online', retryNow);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && !state.open && !state.ws) retryNow();
});
if (window.matchMedia('(max-width: 800px)').matches) els.cluster.open = false;

const workflows = createWorkflows({
  send,
  isOpen: () => state.open,
  apiKey,
  model: () => els.model.value,
  maxTokens: () => state.limits.max_tokens,
});

connect();
