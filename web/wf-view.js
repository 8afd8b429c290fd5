// Orrery web console: how one workflow looks — its tree of steps and child workflows, and its
// result part by part (docs/workflows.md). Pure DOM building from a workflow entry (see
// workflows.js); all server text goes in through textContent.

export const FINAL = new Set(['completed', 'failed', 'cancelled', 'terminated', 'timed_out']);

export const KINDS = { ask: 'Ask', report: 'Report', 'multi-agent': 'Multi-agent', codegen: 'Codegen' };

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
}

export function safeHttpUrl(s) {
  if (typeof s !== 'string') return null;
  try {
    const u = new URL(s, location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

export function ms(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)} s`;
  return `${Math.floor(n / 60000)} min ${Math.round((n % 60000) / 1000)} s`;
}

// The badge stage (style.css) that stands for a workflow or step state.
function stage(state) {
  switch (state) {
    case 'completed': case 'done': return 'done';
    case 'failed': case 'timed_out': case 'terminated': return 'failed';
    case 'cancelled': case 'skipped': return 'cancelled';
    case 'running': case 'generating': return 'generating';
    case 'planning': return 'planning';
    default: return 'queued';
  }
}

function badge(state) {
  const b = el('span', 'status', state.replaceAll('_', ' '));
  b.dataset.stage = stage(state);
  return b;
}

// A workflow id as shown: its 32-digit unique part cut to 8 (the whole id is in the title).
export function shortId(id) {
  return String(id).replace(/\b([0-9a-f]{8})[0-9a-f]{24}\b/, '$1…');
}

function temporalLink(url, id, text = shortId(id)) {
  const href = safeHttpUrl(url);
  const a = el(href ? 'a' : 'span', href ? 'wf-temporal wf-id' : 'wf-id', text);
  a.title = href ? `${id} in the Temporal UI` : id;
  if (!href) return a;
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  return a;
}

function facts(row, { model, node, dur, detail }) {
  if (model) row.append(el('span', 'wf-model', model));
  if (node) row.append(el('span', 'wf-node', `on ${node}`));
  if (dur) row.append(el('span', 'wf-dur', dur));
  if (detail) {
    const d = el('span', 'wf-detail-text muted', detail);
    d.title = detail;
    row.append(d);
  }
}

function stepDuration(s, now) {
  if (!Number.isFinite(s.started_ms)) return '';
  const end = Number.isFinite(s.ended_ms) ? s.ended_ms : s.status === 'running' ? now : null;
  return end == null ? '' : ms(end - s.started_ms);
}

function rootDuration(f, now) {
  const start = Date.parse(f.created_at ?? '') || f.startedAt;
  if (!start) return '';
  const end = Date.parse(f.closed_at ?? '') || (FINAL.has(f.status) ? f.endedAt : now);
  return end ? ms(end - start) : '';
}

// The tree: the workflow, its steps, and under each LLM step the child workflow that ran it.
export function renderTree(ul, f, now) {
  ul.replaceChildren();
  const root = el('li', 'wf-root');
  root.dataset.state = f.status;
  const row = el('div', 'wf-row');
  row.append(badge(f.kind === 'ask' && f.stage && !FINAL.has(f.status) ? f.stage : f.status));
  row.append(el('span', 'wf-name', KINDS[f.kind] ?? f.kind), temporalLink(f.url, f.id));
  facts(row, { model: f.model, node: f.node, dur: rootDuration(f, now) });
  if (Number.isFinite(f.percent) && f.kind !== 'ask') {
    row.append(el('span', 'wf-pct muted', `${f.percent}%`));
  }
  root.append(row);
  const steps = Array.isArray(f.steps) ? f.steps : [];
  if (steps.length) {
    const list = el('ul', 'wf-steps');
    const children = new Map((f.children ?? []).map((c) => [c.step, c]));
    for (const s of steps) list.append(stepItem(s, children.get(s.name), f, now));
    root.append(list);
  }
  ul.append(root);
}

function stepItem(s, child, f, now) {
  const li = el('li', 'wf-step');
  li.dataset.step = s.name;
  li.dataset.state = s.status;
  const row = el('div', 'wf-row');
  row.append(badge(s.status));
  // An LLM step links to its child workflow; activities and in-workflow steps are in the
  // parent's history, and link to it.
  const name = temporalLink(child?.workflow_url ?? f.url, child?.workflow_id ?? f.id, s.name);
  name.classList.remove('wf-id');
  name.classList.add('wf-name');
  row.append(name);
  facts(row, { model: s.model, node: s.node, dur: stepDuration(s, now), detail: child ? '' : s.detail });
  li.append(row);
  if (child || s.child) {
    const c = child ?? { workflow_id: s.child, status: s.status };
    const sub = el('ul', 'wf-children');
    const ci = el('li', 'wf-child');
    ci.dataset.workflowId = c.workflow_id;
    ci.dataset.state = c.status;
    const crow = el('div', 'wf-row');
    crow.append(el('span', 'wf-kind muted', 'child ask'), temporalLink(c.workflow_url, c.workflow_id));
    facts(crow, {
      model: c.model ?? s.model,
      node: c.node ?? s.node,
      dur: stepDuration(s, now),
      detail: s.status === 'failed' ? s.detail : '',
    });
    ci.append(crow);
    sub.append(ci);
    li.append(sub);
  }
  return li;
}

// ---------------------------------------------------------------------------------------------
// Results

function part(name, title, meta) {
  const sec = el('section', 'wf-part');
  sec.dataset.part = name;
  sec.append(el('h4', null, title));
  if (meta) sec.append(el('p', 'wf-part-meta muted', meta));
  return sec;
}

function textPart(name, title, text, meta, code) {
  const sec = part(name, title, meta);
  const pre = el('pre', code ? 'wf-text wf-code' : 'wf-text', text ?? '');
  sec.append(pre);
  return sec;
}

function note(n) {
  if (!n || typeof n !== 'object') return '';
  return n.ok ? `ok${n.detail ? ` · ${n.detail}` : ''}` : `failed${n.error ? `: ${n.error}` : ''}`;
}

function on(model, node) {
  return [model, node ? `on ${node}` : ''].filter(Boolean).join(' ');
}

// The result of `f`, part by part; `pdf` is the report's download link (made by workflows.js).
export function renderResult(box, f, pdf) {
  box.replaceChildren();
  if (f.status === 'failed' || f.error) {
    const e = f.error ?? {};
    const sec = part('error', 'Failed', e.code ?? '');
    sec.append(el('p', 'wf-error', e.message ?? 'the workflow failed'));
    box.append(sec);
    return;
  }
  if (f.status === 'cancelled') {
    box.append(part('cancelled', 'Cancelled', 'the workflow was cancelled; its children with it'));
    return;
  }
  const r = f.result;
  if (!r || typeof r !== 'object') return;
  switch (f.kind) {
    case 'report': {
      const t = r.timings ?? {};
      const sec = part('file', r.title ?? 'Report', [
        r.file ? `${r.file.pages} page(s), ${Math.round((r.file.bytes ?? 0) / 1024)} KB` : '',
        r.file?.node ? `rendered on ${r.file.node}` : '',
        t.total_ms != null ? `total ${ms(t.total_ms)}` : '',
      ].filter(Boolean).join(' · '));
      if (pdf) sec.append(pdf);
      box.append(sec);
      box.append(textPart('content', 'Content', r.content, [on(r.model, r.node),
        t.content_ms != null ? ms(t.content_ms) : ''].filter(Boolean).join(' · ')));
      box.append(part('metadata', 'Metadata', note(r.metadata)));
      box.append(part('notification', 'Notification', note(r.notification)));
      break;
    }
    case 'multi-agent': {
      for (const [role, a] of Object.entries(r.agents ?? {})) {
        const meta = [a.status, on(a.model, a.node), a.error].filter(Boolean).join(' · ');
        box.append(textPart(`agent-${role}`, role.replaceAll('_', ' '), a.text ?? '', meta));
      }
      const integ = textPart('integration', 'Integration', r.integration,
        r.failed?.length ? `failed: ${r.failed.join(', ')}` : 'every agent answered');
      box.append(integ);
      const rv = r.review ?? {};
      box.append(textPart('review', 'Senior review', rv.text ?? rv.error ?? '',
        [rv.status, on(rv.model, rv.node)].filter(Boolean).join(' · ')));
      box.append(part('notification', 'Notification', note(r.notification)));
      break;
    }
    case 'codegen': {
      box.append(textPart('code', `Code (${r.language})`, r.code,
        [on(r.model, r.node), r.fallback ? 'fallback model' : '', r.path].filter(Boolean).join(' · '), true));
      box.append(textPart('review', 'Review', r.review, r.review_status));
      box.append(part('notification', 'Notification', note(r.notification)));
      break;
    }
    case 'ask': {
      const u = r.usage ?? {};
      const t = r.timings ?? {};
      box.append(textPart('text', 'Answer', r.text, [on(r.model, r.node), r.finish_reason,
        u.completion_tokens != null ? `${u.completion_tokens} tokens` : '',
        t.total_ms != null ? ms(t.total_ms) : ''].filter(Boolean).join(' · ')));
      break;
    }
    default:
      box.append(textPart('result', 'Result', JSON.stringify(r, null, 2)));
  }
}
