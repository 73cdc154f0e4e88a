// The routing playground. Plain JavaScript, no framework and no build step: the page is
// embedded in the hookline binary. Every change runs a dry run on the server
// (POST api/run), which routes the event with the rules in force, or with a draft of them
// when templates or routes are edited here. Event data is only ever put in the page as text.
'use strict';

const $ = (id) => document.getElementById(id);

const state = {
  rules: null, // GET api/rules: topics, examples, routes, templates, loaded_at
  edits: { templates: {}, routes: {} },
  editing: null, // { kind: 'template' | 'route', id }
  seq: 0, // the latest run; older answers are dropped
  timer: null,
};

// An element with attributes and children (strings become text, never HTML).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Calls the playground API. When the admin server asks for a token, asks the user once and
// sends it as a bearer token for the rest of the session.
async function api(path, body, retried = false) {
  const headers = {};
  const token = sessionStorage.getItem('hookline-admin-token');
  if (token) headers.authorization = `Bearer ${token}`;
  const init = { headers };
  if (body !== undefined) {
    init.method = 'POST';
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if ((res.status === 401 || res.status === 403) && !retried) {
    const given = window.prompt('This admin server needs a token to read its rules:');
    if (given) {
      sessionStorage.setItem('hookline-admin-token', given.trim());
      return api(path, body, true);
    }
  }
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

function setStatus(text, bad = false) {
  const s = $('status');
  s.textContent = text;
  s.style.color = bad ? '#ffb4ab' : '';
}

// ---- rules, examples, topics ------------------------------------------------------------

async function loadRules() {
  state.rules = await api('api/rules');
  const { topics, examples, routes, templates } = state.rules;

  $('topics').replaceChildren(...topics.map((t) => el('option', { value: t })));

  const groups = new Map();
  examples.forEach((e, i) => {
    if (!groups.has(e.group)) groups.set(e.group, []);
    groups.get(e.group).push(el('option', { value: String(i) }, `${e.name} — ${e.topic}`));
  });
  const exampleSelect = $('example');
  const keep = exampleSelect.value;
  exampleSelect.replaceChildren(
    el('option', { value: '' }, '(paste your own)'),
    ...[...groups].map(([g, options]) =>
      el('optgroup', { label: g === 'samples' ? 'Sample events' : `Routing cases: ${g}` }, options)),
  );
  exampleSelect.value = keep;

  const target = $('edit-target');
  const current = target.value;
  target.replaceChildren(
    el('option', { value: '' }, '(pick a template or a route)'),
    el('optgroup', { label: 'Templates' },
      templates.map((t) => el('option', { value: `template:${t.id}` },
        `${t.id} (used by ${t.subscriptions.join(', ')})`))),
    el('optgroup', { label: 'Routes' },
      routes.map((r) => el('option', { value: `route:${r.id}` }, `${r.id} (${r.place})`))),
  );
  target.value = current;
  const when = new Date(state.rules.loaded_at * 1000);
  setStatus(`A dry run of the rules in force (loaded ${when.toLocaleString()}): nothing is delivered and the rules do not change.`);
}

function loadExample(index) {
  const e = state.rules.examples[Number(index)];
  if (!e) return;
  $('topic').value = e.topic;
  $('event').value = JSON.stringify(e.event, null, 2);
  runSoon(0);
}

// ---- editing ----------------------------------------------------------------------------

function original(kind, id) {
  if (kind === 'template') {
    const t = state.rules.templates.find((x) => x.id === id);
    return t ? (t.text ?? '') : null;
  }
  const r = state.rules.routes.find((x) => x.id === id);
  return r ? r.text : null;
}

function editsOf(kind) {
  return kind === 'template' ? state.edits.templates : state.edits.routes;
}

function openEdit(kind, id, focus = true) {
  const text = original(kind, id);
  if (text === null) return;
  state.editing = { kind, id };
  $('edit-target').value = `${kind}:${id}`;
  const area = $('edit-text');
  area.disabled = false;
  area.value = editsOf(kind)[id] ?? text;
  area.classList.remove('has-error');
  if (focus) area.focus();
  $('edit-problems').replaceChildren();
  $('edit-reset').disabled = !(id in editsOf(kind));
  if (kind === 'template') {
    const t = state.rules.templates.find((x) => x.id === id);
    $('edit-info').textContent = t.text === null
      ? `Template ${id} is raw (the event unchanged), used by ${t.subscriptions.join(', ')}. Type a JMESPath expression to replace it.`
      : `Template ${id}, used by ${t.subscriptions.join(', ')}: a JMESPath expression over {event, hookline, vars}.`;
  } else {
    const r = state.rules.routes.find((x) => x.id === id);
    $('edit-info').textContent = `Route ${id}, defined at ${r.place}: its YAML entry (id, topics, match, to, stop, dedup).`;
  }
}

function closeEdit() {
  state.editing = null;
  $('edit-target').value = '';
  $('edit-text').value = '';
  $('edit-text').disabled = true;
  $('edit-reset').disabled = true;
  $('edit-info').textContent = '';
  $('edit-problems').replaceChildren();
}

function onEditInput() {
  if (!state.editing) return;
  const { kind, id } = state.editing;
  const text = $('edit-text').value;
  const edits = editsOf(kind);
  if (text === original(kind, id)) delete edits[id];
  else edits[id] = text;
  $('edit-reset').disabled = !(id in edits);
  showEdits();
  runSoon();
}

function resetEdit(kind, id) {
  delete editsOf(kind)[id];
  if (state.editing && state.editing.kind === kind && state.editing.id === id) openEdit(kind, id, false);
  showEdits();
  runSoon(0);
}

function showEdits() {
  const items = [];
  for (const kind of ['template', 'route']) {
    for (const id of Object.keys(editsOf(kind))) {
      items.push(el('li', {},
        `${kind} ${id} is edited `,
        el('button', { type: 'button', class: 'link', onclick: () => openEdit(kind, id) }, 'open'),
        el('button', { type: 'button', class: 'link', onclick: () => resetEdit(kind, id) }, 'reset')));
    }
  }
  $('edits').replaceChildren(...items);
}

// ---- running ----------------------------------------------------------------------------

function runSoon(delay = 250) {
  clearTimeout(state.timer);
  state.timer = setTimeout(run, delay);
}

async function run() {
  if (!state.rules) return;
  const seq = ++state.seq;
  const request = { topic: $('topic').value.trim(), event: $('event').value, edits: state.edits };
  if (request.event.trim() === '') {
    render({ problems: [{ kind: 'event', id: '', line: 0, col: 0, message: 'paste an event, or pick an example' }], events: [], case: null, draft: false });
    return;
  }
  let answer;
  try {
    answer = await api('api/run', request);
  } catch (e) {
    if (seq === state.seq) setStatus(String(e), true);
    return;
  }
  if (seq !== state.seq) return;
  render(answer);
  if (answer.loaded_at !== state.rules.loaded_at) {
    // The rules in force were reloaded: refresh what can be edited (edits stay).
    await loadRules();
  }
}

// Problems with their position, and the offending line with a caret under the column.
function problemList(problems, textOf) {
  return problems.map((p) => {
    const label = p.kind === 'template' || p.kind === 'route' ? `${p.kind} ${p.id}` : p.kind;
    const where = p.line > 0 ? `${label}, line ${p.line}, column ${p.col}` : label;
    const box = el('div', { class: 'problem', 'data-kind': p.kind, 'data-id': p.id, 'data-line': p.line, 'data-col': p.col },
      el('span', { class: 'where' }, where), `: ${p.message}`);
    const text = textOf(p);
    if (p.line > 0 && typeof text === 'string') {
      const line = text.split('\n')[p.line - 1];
      if (line !== undefined) {
        const shown = line.replace(/\t/g, ' ');
        box.append(el('pre', {}, `${shown}\n${' '.repeat(Math.max(0, p.col - 1))}^`));
      }
    }
    if ((p.kind === 'template' || p.kind === 'route') && !isEditing(p)) {
      box.append(' ', el('button', { type: 'button', class: 'link', onclick: () => openEdit(p.kind, p.id) }, 'open'));
    }
    return box;
  });
}

function isEditing(p) {
  return state.editing && state.editing.kind === p.kind && state.editing.id === p.id;
}

function render(answer) {
  const problems = answer.problems || [];
  const eventProblems = problems.filter((p) => p.kind === 'event' || p.kind === 'topic');
  const editing = problems.filter((p) => isEditing(p));
  const others = problems.filter((p) => !eventProblems.includes(p) && !editing.includes(p));
  $('event-problems').replaceChildren(...problemList(eventProblems, (p) => (p.kind === 'event' ? $('event').value : null)));
  $('event').classList.toggle('has-error', eventProblems.some((p) => p.kind === 'event'));
  $('edit-problems').replaceChildren(...problemList(editing, () => $('edit-text').value));
  $('edit-text').classList.toggle('has-error', editing.length > 0);
  $('run-problems').replaceChildren(...problemList(others, (p) => editsOf(p.kind)[p.id]));
  $('draft-badge').hidden = !answer.draft;

  const events = answer.events || [];
  $('events').replaceChildren(...events.map((e, i) => renderEvent(e, i, events.length)));
  if (events.length === 0 && problems.length > 0) {
    $('events').append(el('p', { class: 'note' }, 'Fix the problems above to see the result.'));
  }
  $('case').textContent = answer.case || '';
  $('copy-case').disabled = !answer.case;
  $('case-draft').hidden = !(answer.case && answer.draft);
}

function templateOf(subscription) {
  const t = state.rules.templates.find((x) => x.subscriptions.includes(subscription));
  return t ? t.id : null;
}

function renderEvent(e, i, n) {
  const node = $('event-template').content.firstElementChild.cloneNode(true);
  node.dataset.index = String(i);
  node.querySelector('.event-title').textContent = n > 1 ? `Event ${i + 1} of ${n}` : 'Classification';

  const chips = e.categories.map((c) => el('span', { class: c === e.category ? 'chip primary' : 'chip' }, c));
  const rows = [
    ['category', e.category, 'category'],
    ['categories', chips, 'categories'],
    ['severity', el('span', { class: `badge sev-${e.severity}` }, e.severity), 'severity'],
    ['raw severity', e.raw_severity ?? '—', 'raw-severity'],
    ['event id', e.event_id ?? '—', 'event-id'],
    ['source', e.source ?? '(none: the default extractors)', 'source'],
  ];
  node.querySelector('.classification').replaceChildren(
    ...rows.flatMap(([name, value, key]) => [el('dt', {}, name), el('dd', { 'data-field': key }, value)]));

  const reasons = new Map(e.not_matched.map((m) => [m.route, m.reason]));
  const order = state.rules.routes.map((r) => r.id);
  for (const id of [...e.routes, ...reasons.keys()]) if (!order.includes(id)) order.push(id);
  node.querySelector('.routes').replaceChildren(...order
    .filter((id) => e.routes.includes(id) || reasons.has(id))
    .map((id) => {
      const matched = e.routes.includes(id);
      return el('li', { class: matched ? 'matched' : 'not-matched', 'data-route': id },
        el('span', { class: 'mark', 'aria-label': matched ? 'matched' : 'not matched' }, matched ? '✓' : '✗'),
        el('span', { class: 'id' }, id),
        el('span', { class: 'reason' }, matched ? 'matched' : reasons.get(id)),
        el('button', { type: 'button', class: 'link', onclick: () => openEdit('route', id) }, 'edit'));
    }));

  node.querySelector('.suppressed').textContent = e.suppressed.length
    ? `Suppressed by a dedup window (already delivered): ${e.suppressed.join(', ')}`
    : 'Nothing suppressed.';

  const deliveries = node.querySelector('.deliveries');
  if (e.deliveries.length === 0) {
    deliveries.append(el('p', { class: 'note' }, e.routes.length
      ? 'No deliveries.'
      : 'No deliveries: no route matched, so the event would be settled as dropped by rule.'));
  }
  for (const d of e.deliveries) {
    const template = templateOf(d.subscription);
    const failed = d.body === null;
    deliveries.append(el('div', { class: failed ? 'delivery failed' : 'delivery', 'data-subscription': d.subscription },
      el('header', {},
        el('span', { class: 'sub' }, d.subscription),
        template && el('span', { class: 'tpl' }, `template ${template}`),
        template && el('button', { type: 'button', class: 'link', onclick: () => openEdit('template', template) }, 'edit')),
      el('pre', { class: 'body' }, failed ? `render error: ${d.error}` : JSON.stringify(d.body, null, 2))));
  }
  return node;
}

async function copyCase() {
  const text = $('case').textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard permission (plain http on another host): select it for Ctrl-C instead.
    const range = document.createRange();
    range.selectNodeContents($('case'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    document.execCommand('copy');
  }
  $('copied').hidden = false;
  setTimeout(() => { $('copied').hidden = true; }, 2000);
}

// ---- start ------------------------------------------------------------------------------

async function start() {
  $('example').addEventListener('change', (ev) => loadExample(ev.target.value));
  $('topic').addEventListener('input', () => runSoon());
  $('event').addEventListener('input', () => { $('example').value = ''; runSoon(); });
  $('edit-target').addEventListener('change', (ev) => {
    const [kind, ...rest] = ev.target.value.split(':');
    if (kind) openEdit(kind, rest.join(':'));
    else closeEdit();
  });
  $('edit-text').addEventListener('input', onEditInput);
  $('edit-reset').addEventListener('click', () => state.editing && resetEdit(state.editing.kind, state.editing.id));
  $('copy-case').addEventListener('click', copyCase);
  try {
    await loadRules();
  } catch (e) {
    setStatus(`Cannot read the rules: ${e}`, true);
    return;
  }
  const first = state.rules.examples.findIndex((e) => e.group === 'samples' && e.name === 'contrast');
  if (first >= 0) {
    $('example').value = String(first);
    loadExample(first);
  }
  document.body.dataset.ready = 'true';
}

start();
