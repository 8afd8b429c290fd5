// Orrery web console, the Workflows tab: start an ask, a report, a multi-agent or a codegen
// workflow, list the user's workflows, and follow one as a tree of steps and child workflows
// (docs/workflows.md). app.js owns the socket and hands every frame to handleFrame first.
// Workflows this socket started follow its `workflow_progress` frames; others (from the list, or
// after the socket was lost) are polled from `GET /api/workflows/{id}/status`.
//
// Hooks for automated browser tests (kept stable on purpose):
//   #tab-asks, #tab-workflows  the two views' tabs (aria-selected); #workflows is this view
//   #wf-form                   input[name=wf-kind] (ask | report | multi-agent | codegen);
//                              #wf-prompt (ask, report), #wf-title (report), #wf-task, #wf-roles
//                              (multi-agent, roles comma-separated), #wf-requirements, #wf-language
//                              (codegen), #wf-max-tokens, #wf-priority; #wf-start submits.
//                              The model is the page's #model.
//   #wf-hint                   the form's message; class `error` when the start was refused
//   #wf-list li.wf-item        one workflow, newest first: data-workflow-id, data-kind,
//                              data-status; .selected when it is the one shown
//   #wf-detail                 the shown workflow: data-workflow-id, data-status
//   #wf-tree                   li.wf-root, li.wf-step[data-step][data-state],
//                              li.wf-child[data-workflow-id][data-state]; each row has
//                              a.wf-temporal (Temporal UI), .wf-model, .wf-node, .wf-dur
//   #wf-result .wf-part        the result, one per part (data-part)
//   #wf-pdf                    a report's PDF; a click downloads it with the page's API key;
//                              data-blob is then the downloaded file's object URL
//   #wf-cancel                 cancels the shown workflow while it runs

import { FINAL, el, renderResult, renderTree, shortId } from './wf-view.js';

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 1000;

export function createWorkflows(ctx) {
  // ctx: send(obj) → bool, isOpen() → bool, apiKey() → string|null, model() → string,
  // maxTokens() → the node's limit.
  const els = {
    tabs: [$('#tab-asks'), $('#tab-workflows')],
    asksView: $('#asks-view'),
    view: $('#workflows'),
    form: $('#wf-form'),
    start: $('#wf-start'),
    hint: $('#wf-hint'),
    list: $('#wf-list'),
    refresh: $('#wf-refresh'),
    detail: $('#wf-detail'),
    tree: $('#wf-tree'),
    result: $('#wf-result'),
    cancel: $('#wf-cancel'),
    bar: $('#wf-bar'),
    progress: $('#wf-progress-text'),
    modelNote: $('#wf-model-note'),
  };
  const st = {
    flows: new Map(), // workflow id → entry
    byClient: new Map(), // client id → {kind, title} until accepted
    byRequest: new Map(), // an ask's request id → entry
    selected: null,
    seq: 1,
    polling: false,
  };

  const headers = () => {
    const key = ctx.apiKey();
    return key ? { Authorization: `Bearer ${key}` } : {};
  };
  const api = async (path, opts = {}) => {
    const r = await fetch(path, { ...opts, headers: { ...headers(), ...(opts.headers ?? {}) } });
    let body = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    return { status: r.status, ok: r.ok, body };
  };

  function setHint(text, error) {
    els.hint.textContent = text;
    els.hint.classList.toggle('error', Boolean(error));
  }

  // ---------------------------------------------------------------------------------------------
  // Tabs

  function showTab(which) {
    const wf = which === 'workflows';
    els.tabs[0].setAttribute('aria-selected', String(!wf));
    els.tabs[1].setAttribute('aria-selected', String(wf));
    els.asksView.hidden = wf;
    els.view.hidden = !wf;
    if (wf) refreshList();
    if (location.hash !== (wf ? '#workflows' : '')) {
      history.replaceState(null, '', wf ? '#workflows' : location.pathname + location.search);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Starting

  function kind() {
    return els.form.querySelector('input[name="wf-kind"]:checked')?.value ?? 'report';
  }

  function showFields() {
    const k = kind();
    for (const f of els.form.querySelectorAll('[data-kinds]')) {
      f.hidden = !f.dataset.kinds.split(' ').includes(k);
    }
  }

  function readForm() {
    const k = kind();
    const v = (id) => $(id).value.trim();
    const body = { priority: $('#wf-priority').value || 'normal' };
    const model = ctx.model();
    if (model) body.model = model;
    const mt = v('#wf-max-tokens');
    if (mt) {
      const n = Number(mt);
      const max = ctx.maxTokens();
      if (!Number.isInteger(n) || n < 1 || n > max) {
        return { error: `max tokens must be a whole number from 1 to ${max}` };
      }
      body.max_tokens = n;
    }
    let title = '';
    if (k === 'ask' || k === 'report') {
      body.prompt = v('#wf-prompt');
      if (!body.prompt) return { error: 'write a prompt' };
      if (k === 'ask') body.temperature = 0;
      if (k === 'report' && v('#wf-title')) body.title = v('#wf-title');
      title = body.title ?? body.prompt;
    } else if (k === 'multi-agent') {
      body.task = v('#wf-task');
      if (!body.task) return { error: 'describe the task' };
      const roles = v('#wf-roles').split(',').map((r) => r.trim()).filter(Boolean);
      if (roles.length) body.roles = roles;
      title = body.task;
    } else {
      body.requirements = v('#wf-requirements');
      if (!body.requirements) return { error: 'write the requirements' };
      body.language = $('#wf-language').value;
      title = `${body.language}: ${body.requirements}`;
    }
    return { kind: k, body, title };
  }

  async function start() {
    const f = readForm();
    if (f.error) return setHint(f.error, true);
    const clientId = `w-${Date.now().toString(36)}-${st.seq++}`;
    const pending = { kind: f.kind, title: f.title, model: f.body.model };
    setHint(`starting the ${f.kind} workflow…`, false);
    if (ctx.isOpen()) {
      st.byClient.set(clientId, pending);
      ctx.send({ type: 'run_workflow', kind: f.kind, client_id: clientId, ...f.body });
      return;
    }
    // No socket: start it over REST and follow it by polling.
    const r = await api(`/api/workflows/${f.kind}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(f.body),
    });
    if (!r.ok) return setHint(r.body?.error?.message ?? `refused (${r.status})`, true);
    accepted(r.body.workflow_id, pending, r.body.workflow_url, false);
  }

  function accepted(id, pending, url, followed) {
    const f = entry(id, pending.kind);
    Object.assign(f, { title: pending.title, model: pending.model, url, followed, startedAt: Date.now() });
    setHint(`started ${id}`, false);
    select(id);
  }

  function entry(id, kind) {
    let f = st.flows.get(id);
    if (!f) {
      f = { id, kind, status: 'running', steps: [], children: [], startedAt: 0 };
      st.flows.set(id, f);
    }
    return f;
  }

  // ---------------------------------------------------------------------------------------------
  // Frames (true: this module owned it)

  function handleFrame(msg) {
    switch (msg.type) {
      case 'workflow_accepted': {
        const p = st.byClient.get(msg.client_id);
        if (!p) return false;
        st.byClient.delete(msg.client_id);
        accepted(msg.workflow_id, p, msg.workflow_url, true);
        return true;
      }
      case 'workflow_progress': {
        const f = st.flows.get(msg.workflow_id);
        if (!f) return false;
        applyStatus(f, msg);
        return true;
      }
      case 'workflow_done': {
        const f = st.flows.get(msg.workflow_id);
        if (!f) return false;
        Object.assign(f, { status: msg.status, result: msg.result ?? null, error: msg.error ?? null });
        f.resultLoaded = true;
        f.endedAt = Date.now();
        changed(f);
        return true;
      }
      case 'workflow_event': {
        const f = st.flows.get(msg.workflow_id);
        if (f && FINAL.has(msg.status) && !FINAL.has(f.status)) f.status = msg.status;
        if (!els.view.hidden) refreshList();
        return true;
      }
      case 'accepted': {
        const p = st.byClient.get(msg.client_id);
        if (!p) return false;
        st.byClient.delete(msg.client_id);
        accepted(msg.request_id, p, msg.workflow_url, true);
        const f = st.flows.get(msg.request_id);
        f.stage = 'queued';
        f.chars = [];
        st.byRequest.set(msg.request_id, f);
        changed(f);
        return true;
      }
      case 'status': case 'chunk': case 'done': case 'failed': case 'cancelled': {
        const f = st.byRequest.get(msg.request_id);
        if (!f) return false;
        onAskFrame(f, msg);
        return true;
      }
      case 'error': {
        // Refused starts are told here and (by app.js) as a notice too.
        if (st.byClient.delete(msg.client_id)) setHint(msg.message ?? 'refused', true);
        const f = st.byRequest.get(msg.request_id);
        if (f && !FINAL.has(f.status)) {
          Object.assign(f, { status: 'failed', error: msg, resultLoaded: true });
          changed(f);
        }
        return false;
      }
      default:
        return false;
    }
  }

  function onAskFrame(f, msg) {
    if (msg.type === 'status') {
      f.stage = msg.stage;
      if (msg.node) f.node = msg.node;
    } else if (msg.type === 'chunk') {
      if (Number.isInteger(msg.offset) && msg.offset <= f.chars.length) {
        f.chars.length = msg.offset;
        f.chars.push(...Array.from(msg.text ?? ''));
      }
      f.stage = 'generating';
    } else if (msg.type === 'done') {
      Object.assign(f, { status: 'completed', node: msg.node, model: msg.model, result: msg });
    } else if (msg.type === 'failed') {
      Object.assign(f, { status: 'failed', error: msg.error });
    } else {
      f.status = 'cancelled';
    }
    if (FINAL.has(f.status)) {
      f.resultLoaded = true;
      f.endedAt = Date.now();
    }
    changed(f);
  }

  // A progress frame, or the REST status of a workflow (not an ask).
  function applyStatus(f, s) {
    for (const k of ['status', 'current_step', 'percent', 'eta_ms', 'steps', 'children',
      'created_at', 'closed_at']) {
      if (s[k] !== undefined) f[k] = s[k];
    }
    if (s.model) f.model = s.model;
    if (s.workflow_url) f.url = s.workflow_url;
    f.statusLoaded = true;
    changed(f);
  }

  // An ask's REST status or result.
  function applyAsk(f, s) {
    if (s.status) f.status = s.status;
    if (s.stage) f.stage = s.stage;
    for (const k of ['node', 'model', 'created_at', 'closed_at']) if (s[k]) f[k] = s[k];
    if (s.workflow_url) f.url = s.workflow_url;
    if (typeof s.text_so_far === 'string') f.chars = Array.from(s.text_so_far);
    if (s.status === 'completed' && typeof s.text === 'string') f.result = s;
    if (s.error) f.error = s.error;
    f.statusLoaded = true;
    changed(f);
  }

  // ---------------------------------------------------------------------------------------------
  // Following what the socket does not tell

  async function poll() {
    const f = st.flows.get(st.selected);
    if (!f || st.polling || (f.followed && ctx.isOpen())) return;
    const ask = f.kind === 'ask';
    if (FINAL.has(f.status) && f.resultLoaded && f.statusLoaded) return;
    st.polling = true;
    try {
      if (!f.statusLoaded || !FINAL.has(f.status)) {
        const r = await api(`/api/workflows/${f.id}/status`);
        if (r.ok) (ask ? applyAsk : applyStatus)(f, r.body);
      } else {
        const r = await api(`/api/workflows/${f.id}/result${ask ? '' : '?format=json'}`);
        if (r.status === 200) {
          if (ask) applyAsk(f, r.body);
          else Object.assign(f, { result: r.body.result ?? null, error: r.body.error ?? null });
          f.resultLoaded = true;
          changed(f);
        }
      }
    } catch (e) {
      console.debug('workflow poll', e);
    } finally {
      st.polling = false;
    }
  }

  async function refreshList() {
    try {
      const r = await api('/api/workflows?limit=20');
      if (!r.ok) return;
      for (const w of r.body.workflows ?? []) {
        const f = entry(w.workflow_id, w.kind);
        if (!f.kind) f.kind = w.kind;
        // The socket's frames are fresher than the list while they come.
        if (!(f.followed && ctx.isOpen()) || FINAL.has(w.status)) f.status = w.status;
        f.created_at = f.created_at ?? w.created_at;
        f.closed_at = f.closed_at ?? w.closed_at;
        f.model = f.model ?? w.model;
      }
      renderList();
    } catch (e) {
      console.debug('workflow list', e);
    }
  }

  function onSocketClosed() {
    // Frames come to the socket that started a workflow: the rest is polled.
    st.byClient.clear();
    for (const f of st.flows.values()) f.followed = false;
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering

  function changed(f) {
    renderList();
    if (f.id === st.selected) renderDetail();
  }

  function sortKey(f) {
    return Date.parse(f.created_at ?? '') || f.startedAt || 0;
  }

  function renderList() {
    const items = [...st.flows.values()].sort((a, b) => sortKey(b) - sortKey(a));
    els.list.replaceChildren();
    if (!items.length) {
      els.list.append(el('li', 'wf-empty muted', 'No workflows yet: start one above.'));
    }
    for (const f of items) {
      const li = el('li', f.id === st.selected ? 'wf-item selected' : 'wf-item');
      Object.assign(li.dataset, { workflowId: f.id, kind: f.kind ?? '', status: f.status });
      const b = el('button', 'wf-pick');
      b.type = 'button';
      const top = el('span', 'wf-item-top');
      const dot = el('span', 'wf-dot');
      dot.dataset.state = f.status;
      top.append(dot, el('span', 'wf-item-kind', f.kind ?? '?'), el('span', 'wf-item-status muted', f.status));
      const title = el('span', 'wf-item-title', f.title ?? shortId(f.id));
      title.title = f.id;
      b.append(top, title);
      b.addEventListener('click', () => select(f.id));
      li.append(b);
      els.list.append(li);
    }
  }

  function select(id) {
    st.selected = id;
    renderList();
    renderDetail();
    poll();
  }

  function renderDetail() {
    const f = st.flows.get(st.selected);
    els.detail.hidden = !f;
    if (!f) return;
    els.detail.dataset.workflowId = f.id;
    els.detail.dataset.status = f.status;
    renderTree(els.tree, f, Date.now());
    const pct = FINAL.has(f.status) ? 100 : Number.isFinite(f.percent) ? f.percent : 0;
    els.bar.style.width = `${f.status === 'completed' ? 100 : pct}%`;
    els.bar.dataset.state = f.status;
    const eta = Number.isFinite(f.eta_ms) && !FINAL.has(f.status) ? ` · about ${Math.ceil(f.eta_ms / 1000)} s left` : '';
    const now = f.current_step && !FINAL.has(f.status) ? ` · ${f.current_step}` : '';
    els.progress.textContent = f.kind === 'ask'
      ? (FINAL.has(f.status) ? f.status : f.stage ?? 'running')
      : `${f.status}${now}${eta}`;
    els.cancel.hidden = FINAL.has(f.status);
    const key = `${f.id} ${f.status} ${Boolean(f.result)} ${f.chars?.length ?? 0}`;
    if (els.result.dataset.key !== key) {
      els.result.dataset.key = key;
      if (f.kind === 'ask' && !FINAL.has(f.status) && f.chars?.length) {
        renderResult(els.result, { ...f, result: { text: f.chars.join('') }, status: 'completed' });
      } else {
        renderResult(els.result, f, f.kind === 'report' && f.status === 'completed' ? pdfLink(f) : null);
      }
    }
  }

  function pdfLink(f) {
    const a = el('a', 'primary wf-pdf', 'Download PDF');
    a.id = 'wf-pdf';
    a.href = `/api/workflows/${encodeURIComponent(f.id)}/result`;
    a.download = `${f.id}.pdf`;
    // A plain link cannot carry the API key's header: fetch the file, then save it.
    a.addEventListener('click', async (e) => {
      if (a.dataset.blob) return; // the second click saves what the first fetched
      e.preventDefault();
      a.textContent = 'Downloading…';
      try {
        const r = await fetch(a.href, { headers: headers() });
        if (!r.ok || r.headers.get('content-type') !== 'application/pdf') {
          const body = await r.json().catch(() => null);
          throw new Error(body?.error?.message ?? `HTTP ${r.status}`);
        }
        const blob = await r.blob();
        a.href = URL.createObjectURL(blob);
        a.dataset.blob = a.href;
        a.textContent = `Download PDF (${Math.max(1, Math.round(blob.size / 1024))} KB)`;
        a.click();
      } catch (err) {
        a.textContent = 'Download PDF';
        setHint(`the PDF could not be downloaded: ${err.message}`, true);
      }
    });
    return a;
  }

  async function cancelSelected() {
    const f = st.flows.get(st.selected);
    if (!f || FINAL.has(f.status)) return;
    els.cancel.disabled = true;
    const r = await api(`/api/workflows/${encodeURIComponent(f.id)}`, { method: 'DELETE' });
    els.cancel.disabled = false;
    if (!r.ok) setHint(r.body?.error?.message ?? `not cancelled (${r.status})`, true);
    else setHint(`cancelling ${f.id}…`, false);
    poll();
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  els.tabs[0].addEventListener('click', () => showTab('asks'));
  els.tabs[1].addEventListener('click', () => showTab('workflows'));
  els.form.addEventListener('change', (e) => {
    if (e.target.name === 'wf-kind') showFields();
  });
  els.form.addEventListener('submit', (e) => {
    e.preventDefault();
    start();
  });
  els.refresh.addEventListener('click', refreshList);
  els.cancel.addEventListener('click', cancelSelected);
  showFields();
  renderList();
  setInterval(() => {
    poll();
    const model = ctx.model();
    els.modelNote.textContent = model ? `model ${model} (chosen at the top)` : 'the node\'s default model';
    const f = st.flows.get(st.selected);
    if (f && !FINAL.has(f.status)) renderTree(els.tree, f, Date.now()); // running durations
  }, POLL_MS);
  if (location.hash === '#workflows') showTab('workflows');

  return { handleFrame, onSocketClosed };
}
