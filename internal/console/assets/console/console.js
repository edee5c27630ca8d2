// crmsync console: plain JavaScript over the public GraphQL API.
// Queries and mutations go to /graphql over HTTP; the overview is live
// over graphql-transport-ws (the graphql-ws client, bundled in
// /assets/dist). The token lives in sessionStorage only and travels only
// in the Authorization header and the websocket's connection_init.
import { createClient } from '/assets/dist/graphql-ws.js';

const TOKEN_KEY = 'crmsync.token';
const RECORD_TYPES = ['CONTACT', 'COMPANY', 'CAMPAIGN', 'CAMPAIGN_MEMBER', 'TASK'];
const PREF_TYPES = ['CONTACT', 'COMPANY', 'CAMPAIGN', 'CAMPAIGN_MEMBER'];
const MODES = {
  TWO_WAY: ['Two-way', 'The newer change wins, both ways.'],
  PREFER_SALESFORCE_UNLESS_EMPTY: ['Prefer Salesforce unless empty', 'Conversion writes only into a blank Salesforce field; Salesforce’s non-blank values come back.'],
  ALWAYS_PREFER_CONVERSION: ['Always prefer Conversion', 'Conversion always writes and never reads.'],
  ALWAYS_PREFER_SALESFORCE: ['Always prefer Salesforce', 'Conversion never writes and always reads.'],
  DO_NOT_SYNC: ['Do not sync', 'Never synced.'],
};
const PAUSE_WORDS = {
  SALESFORCE_LIMIT: 'Salesforce’s daily API allowance is used up. Syncing resumes by itself as the rolling 24-hour usage falls.',
  CRM_LIMIT: 'The CRM’s daily API allowance is used up. Syncing resumes by itself as the rolling 24-hour usage falls.',
  CONVERSION_LIMIT: 'crmsync’s own daily cap is reached. Raise or remove the cap to resume.',
  CONNECTION_EXPIRED: 'The Salesforce connection expired. Reconnect to resume.',
  PAUSED_BY_USER: 'Syncing was paused by a user.',
  NOT_CONNECTED: 'No CRM is connected yet.',
  CREDENTIALS_UNREADABLE: 'The stored credentials do not decrypt with this server’s secret key. Restore the key, or reconnect.',
  CONNECTOR_UNAVAILABLE: 'The connector cannot start. crmsync tries again with back-off and resumes by itself once it starts.',
};
const STATUS_WORDS = {
  CONNECTED: 'Connected', EXPIRED: 'Expired', CREDENTIALS_UNREADABLE: 'Credentials unreadable', CONNECTOR_UNAVAILABLE: 'Connector unavailable',
};
const OUTCOME_WORDS = {
  CREATED: 'created', UPDATED: 'updated', DELETED: 'deleted', SKIPPED: 'skipped',
  FAILED: 'failed', RETRYING: 'will be retried', WAITING: 'waiting',
};

const OVERVIEW = `fragment O on SyncOverview {
  conversionDailyLimit { used limit } crmDailyLimit { used max observedAt }
  queuedBatchItems queuedByRecordType { recordType queued } apiCallsByHour { hour calls }
  failedItems oldestQueuedAt paused pauseReason connectionStatus connectionStatusReason lastBatchAt
  progress { recordsDone recordsTotal recordsPerMinute eta since } }`;

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let ws = null;

// h builds an element: h('td', {class: 'x'}, 'text', child).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const when = (t) => (t ? new Date(t).toLocaleString() : '–');
const words = (s) => (s || '').toLowerCase().replaceAll('_', ' ');

class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
  }
}

// gql runs one operation and returns its data, or throws GraphQLError.
async function gql(query, variables) {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try {
    body = await res.json();
  } catch {
    throw new GraphQLError([{ message: `the server answered HTTP ${res.status}` }]);
  }
  if (res.status === 401) {
    signOut('The token was refused: it is missing, unknown or revoked.');
    throw new GraphQLError(body.errors || [{ message: 'unauthenticated' }]);
  }
  if (body.errors && body.errors.length) throw new GraphQLError(body.errors);
  return body.data;
}

// flash shows a message above the page: a problem, or (ok) good news.
function flash(msg, ok) {
  const el = $('flash');
  el.textContent = msg || '';
  el.hidden = !msg;
  el.classList.toggle('ok', !!ok);
}

function signOut(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  // dispose() waits for a connection still being made, and rejects (with
  // the CloseEvent) when that one closes before it is acknowledged: a
  // sign-out right after the page subscribed raced it into an
  // "Uncaught (in promise) CloseEvent".
  if (ws) Promise.resolve(ws.dispose()).catch(() => {});
  ws = null;
  for (const el of document.querySelectorAll('[data-panel], #admin, #tabs, #signout')) el.hidden = true;
  $('identity').textContent = '';
  $('live').textContent = '';
  $('signin').hidden = false;
  flash(msg);
  $('token').focus();
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  token = t;
  sessionStorage.setItem(TOKEN_KEY, t);
  $('token').value = '';
  start();
});
$('signout').addEventListener('click', () => signOut(''));

async function start() {
  flash('');
  $('signin').hidden = true;
  $('signout').hidden = false;
  let viewer;
  try {
    viewer = (await gql('{ viewer { id name } }')).viewer;
  } catch (err) {
    if (!token) return;
    if (err.errors && err.errors[0].extensions && err.errors[0].extensions.code === 'FORBIDDEN') return startAdmin();
    flash('Could not load the workspace: ' + err.message);
    return;
  }
  $('identity').textContent = `Workspace ${viewer.name} (#${viewer.id})`;
  $('tabs').hidden = false;
  subscribe();
  showTab();
}

// ---- Admin ----

async function startAdmin() {
  $('identity').textContent = 'Admin';
  $('admin').hidden = false;
  await loadWorkspaces();
}

async function loadWorkspaces() {
  const { workspaces } = await gql('{ workspaces { id name createdAt } }');
  $('workspaces').replaceChildren(...workspaces.map((w) => h('tr', {}, h('td', {}, w.id), h('td', {}, w.name), h('td', {}, when(w.createdAt)))));
}

$('create-workspace').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = e.target.elements.name.value;
  try {
    const { createWorkspace } = await gql('mutation($n: String!) { createWorkspace(name: $n) { workspace { id name } token } }', { n: name });
    const out = $('new-token');
    out.replaceChildren(
      `Workspace ${createWorkspace.workspace.name} created. Its token is shown only now: `,
      h('code', {}, createWorkspace.token), ' ',
      h('button', { type: 'button', onclick: () => { token = createWorkspace.token; sessionStorage.setItem(TOKEN_KEY, token); location.hash = '#overview'; location.reload(); } }, 'Open this workspace'),
    );
    e.target.reset();
    await loadWorkspaces();
  } catch (err) {
    $('new-token').textContent = err.message;
  }
});

// ---- Tabs ----

function showTab() {
  if (!token || $('tabs').hidden) return;
  flash('');
  const name = (location.hash || '#overview').slice(1);
  const tab = ['overview', 'logs', 'failed', 'prefs'].includes(name) ? name : 'overview';
  for (const p of document.querySelectorAll('[data-panel]')) p.hidden = p.id !== tab;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  ({ overview: loadOverview, logs: () => loadLogs(null), failed: () => loadFailed(false), prefs: loadPrefs })[tab]();
}
window.addEventListener('hashchange', showTab);

// ---- Overview ----

function subscribe() {
  const url = new URL('/graphql', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const live = $('live');
  // The client keeps the token it was made for: after a sign-out its
  // last connection attempt must not send "Bearer null".
  const bearer = 'Bearer ' + token;
  // A disposed client's last events must not touch the page.
  const current = () => ws === client;
  const client = createClient({
    url: url.href,
    connectionParams: () => ({ Authorization: bearer }),
    retryAttempts: Infinity,
    shouldRetry: () => true,
    on: {
      connected: () => { if (current()) { live.textContent = 'Live'; live.dataset.state = 'live'; } },
      closed: () => { if (current()) { live.textContent = 'Reconnecting…'; live.dataset.state = 'down'; } },
    },
  });
  ws = client;
  client.subscribe({ query: `subscription { syncOverviewUpdated { ...O } } ${OVERVIEW}` }, {
    next: (msg) => { if (current() && msg.data) renderOverview(msg.data.syncOverviewUpdated); },
    error: (err) => {
      if (current()) live.textContent = 'Live updates stopped: ' + (err.message || (Array.isArray(err) ? err.map((e) => e.message).join('; ') : 'closed'));
    },
    complete: () => {},
  });
}

async function loadOverview() {
  try {
    const d = await gql(`{ connection { connector status statusReason identity { username orgId instanceUrl } updatedAt } syncOverview { ...O } } ${OVERVIEW}`);
    renderConnection(d.connection);
    renderOverview(d.syncOverview);
  } catch (err) {
    flash('Could not load the overview: ' + err.message);
  }
}

function renderConnection(c) {
  const dl = $('conn');
  const actions = $('conn-actions');
  actions.replaceChildren();
  if (!c) {
    dl.replaceChildren(h('dt', {}, 'Status'), h('dd', { id: 'conn-status' }, 'Not connected'));
    actions.append(h('button', { type: 'button', id: 'connect', onclick: reconnect }, 'Connect Salesforce'));
    return;
  }
  dl.replaceChildren(
    h('dt', {}, 'Status'), h('dd', { id: 'conn-status' }, STATUS_WORDS[c.status] || words(c.status), c.statusReason ? ` – ${c.statusReason}` : ''),
    h('dt', {}, 'Connector'), h('dd', {}, c.connector),
    h('dt', {}, 'Acting as'), h('dd', {}, c.identity.username),
    h('dt', {}, 'Org'), h('dd', {}, c.identity.orgId),
    h('dt', {}, 'Instance'), h('dd', {}, c.identity.instanceUrl),
  );
  if (c.status === 'EXPIRED') actions.append(h('button', { type: 'button', id: 'connect', onclick: reconnect }, 'Reconnect'));
}

// reconnect starts the OAuth web flow. The start route answers JSON with
// the authorize URL when asked, so the token stays in a header.
async function reconnect() {
  try {
    const res = await fetch('/oauth/salesforce/start', { headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' } });
    if (res.status === 404) throw new Error('the Salesforce OAuth web flow is not configured on this server (see docs/salesforce.md)');
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.authorizeUrl) throw new Error(body.error || `HTTP ${res.status}`);
    location.assign(body.authorizeUrl);
  } catch (err) {
    flash('Cannot start the Salesforce connection: ' + err.message);
  }
}

function meter(id, label, used, max) {
  const pct = max ? Math.min(100, Math.round((100 * used) / max)) : 0;
  return h('div', { class: 'meter-row' },
    h('label', { for: id }, label),
    h('meter', { id, min: 0, max: max || 1, value: max ? used : 0, high: (max || 1) * 0.8, optimum: 0 }),
    h('span', { class: 'num', id: id + '-text' }, max != null ? `${used ?? '–'} of ${max} (${pct}%)` : `${used ?? '–'} (no limit set)`));
}

function sparkline(hours) {
  const w = 240, ht = 40;
  const peak = Math.max(0, ...hours.map((x) => x.calls));
  const max = Math.max(1, peak);
  const pts = hours.map((x, i) => `${((i * w) / Math.max(1, hours.length - 1)).toFixed(1)},${(ht - (x.calls / max) * (ht - 2) - 1).toFixed(1)}`).join(' ');
  const total = hours.reduce((s, x) => s + x.calls, 0);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${ht}`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `crmsync's calls per hour over the last 24 hours: ${total} in all, at most ${peak} in one hour`);
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', pts);
  svg.append(line);
  return h('figure', {}, svg, h('figcaption', {}, `crmsync's calls per hour, last 24 h (peak ${peak})`));
}

let lastFailed = null;

// renderProgress shows how far the backlog has come (docs/sync.md,
// "Progress"); hidden while nothing is queued.
function renderProgress(p) {
  const el = $('progress');
  el.hidden = !p;
  if (!p) { el.replaceChildren(); return; }
  const pct = p.recordsTotal ? Math.floor((100 * p.recordsDone) / p.recordsTotal) : 0;
  const rate = p.recordsPerMinute >= 10 ? Math.round(p.recordsPerMinute) : p.recordsPerMinute.toFixed(1);
  el.replaceChildren(
    h('label', { for: 'progress-bar' }, 'Progress of this backlog'),
    h('progress', { id: 'progress-bar', max: p.recordsTotal || 1, value: p.recordsDone }),
    h('span', { class: 'num', id: 'progress-text' }, `${p.recordsDone} of ${p.recordsTotal} records done (${pct}%)`),
    h('span', { class: 'hint', id: 'progress-eta' }, p.eta
      ? `${rate} records a minute; empty about ${when(p.eta)}`
      : 'No estimate yet: no records finished in the last 5 minutes.'),
  );
}

function renderOverview(o) {
  const sf = o.crmDailyLimit;
  const cv = o.conversionDailyLimit;
  $('usage').replaceChildren(
    meter('sf-usage', 'Salesforce daily allowance (whole org)', sf.used, sf.max),
    meter('cv-usage', 'crmsync’s calls against its own cap', cv.used, cv.limit),
    sparkline(o.apiCallsByHour),
    h('p', { class: 'hint' }, sf.observedAt ? `Salesforce usage as of ${when(sf.observedAt)}.` : 'Salesforce has not reported its usage yet.'),
  );
  const cap = $('cap');
  if (document.activeElement !== cap) cap.value = cv.limit ?? '';
  $('queued-total').textContent = o.queuedBatchItems;
  $('failed-total').textContent = o.failedItems;
  // The failed-items list follows the live count while it is open.
  if (lastFailed !== null && o.failedItems !== lastFailed && !$('failed').hidden) loadFailed(false);
  lastFailed = o.failedItems;
  $('queued-by-type').replaceChildren(...o.queuedByRecordType.map((q) =>
    h('tr', {}, h('th', { scope: 'row' }, words(q.recordType)), h('td', { id: 'queued-' + q.recordType }, q.queued))));
  $('queue-times').textContent = `Oldest waiting since ${when(o.oldestQueuedAt)}; last batch ${when(o.lastBatchAt)}.`;
  renderProgress(o.progress);

  const pause = $('pause');
  const actions = $('pause-actions');
  actions.replaceChildren();
  if (o.paused) {
    pause.hidden = false;
    pause.textContent = 'Paused: ' + (PAUSE_WORDS[o.pauseReason] || words(o.pauseReason)) +
      (o.pauseReason === 'CONNECTOR_UNAVAILABLE' && o.connectionStatusReason ? ` (${o.connectionStatusReason})` : '');
    if (o.pauseReason === 'PAUSED_BY_USER') actions.append(h('button', { type: 'button', id: 'resume', onclick: () => act('resumeSync') }, 'Resume'));
    if (o.pauseReason === 'CONVERSION_LIMIT') actions.append(h('button', { type: 'button', id: 'resume', onclick: () => setCap(null) }, 'Remove the cap and resume'));
    if (o.pauseReason === 'CONNECTION_EXPIRED') actions.append(h('button', { type: 'button', onclick: reconnect }, 'Reconnect'));
  } else {
    pause.hidden = true;
    actions.append(h('button', { type: 'button', id: 'pause-sync', onclick: () => act('pauseSync') }, 'Pause syncing'));
  }
}

async function act(mutation) {
  try {
    const d = await gql(`mutation { ${mutation} { ...O } } ${OVERVIEW}`);
    renderOverview(d[mutation]);
  } catch (err) {
    flash(err.message);
  }
}

async function setCap(limit) {
  $('cap-error').textContent = '';
  try {
    const d = await gql(`mutation($l: Int) { setConversionDailyLimit(limit: $l) { ...O } } ${OVERVIEW}`, { l: limit });
    renderOverview(d.setConversionDailyLimit);
  } catch (err) {
    $('cap-error').textContent = err.message;
  }
}
$('cap-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const v = $('cap').value.trim();
  setCap(v === '' ? null : Number(v));
});
$('cap-clear').addEventListener('click', () => setCap(null));

// ---- Forecast (docs/sync.md, "Forecast") ----

const FORECAST = `{ syncForecast { creates updates removes skipped apiCalls restApiCalls bulkApiCalls bulkJobs flushes callLatencySeconds callLatencyAssumed
  callLatencyCalls paced durationSeconds budgetLeft budgetSource fitsBudget finishesAt } }`;

// duration words a number of seconds: "45 s", "12 min", "3.5 h".
function duration(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

async function loadForecast() {
  $('forecast-error').textContent = '';
  try {
    const f = (await gql(FORECAST)).syncForecast;
    const latency = f.callLatencyAssumed
      ? `${f.callLatencySeconds.toFixed(2)} s a call, assumed (no calls measured in the last 24 h)`
      : `${f.callLatencySeconds.toFixed(2)} s a call, measured over ${f.callLatencyCalls} calls`;
    $('forecast').replaceChildren(h('dl', {},
      h('dt', {}, 'To write'), h('dd', { id: 'forecast-records' },
        `${f.creates} to create, ${f.updates} to update` + (f.removes ? `, ${f.removes} to remove` : '') + (f.skipped ? ` (${f.skipped} not written)` : '')),
      h('dt', {}, 'API calls'), h('dd', { id: 'forecast-calls' }, `${f.apiCalls} in ${f.flushes} flush${f.flushes === 1 ? '' : 'es'}` +
        (f.bulkJobs ? ` (${f.restApiCalls} REST, ${f.bulkApiCalls} Bulk API in ${f.bulkJobs} job${f.bulkJobs === 1 ? '' : 's'})` : '')),
      h('dt', {}, 'Duration'), h('dd', {}, `about ${duration(f.durationSeconds)} (${latency}; ${f.paced ? 'budget pacing' : 'fixed windows'})`),
      h('dt', {}, 'Budget'), h('dd', { id: 'forecast-budget' }, f.fitsBudget
        ? `fits today's budget (${f.budgetLeft} calls left: ${f.budgetSource})`
        : `does not fit today's budget (${f.budgetLeft} calls left: ${f.budgetSource}); done around ${when(f.finishesAt)}`),
    ));
  } catch (err) {
    $('forecast').replaceChildren();
    $('forecast-error').textContent = err.message;
  }
}
$('forecast-run').addEventListener('click', loadForecast);

// ---- Sync logs ----

for (const t of RECORD_TYPES) $('log-filter').elements.recordType.append(h('option', { value: t }, words(t)));
let logCursor = null;

$('log-filter').addEventListener('submit', (e) => {
  e.preventDefault();
  loadLogs(null);
});
$('logs-newest').addEventListener('click', () => loadLogs(null));
$('logs-older').addEventListener('click', () => loadLogs(logCursor));

function logFilter() {
  const f = $('log-filter').elements;
  const out = {};
  for (const k of ['direction', 'recordType', 'status']) if (f[k].value) out[k] = f[k].value;
  if (f.recordId.value.trim()) out.recordId = f.recordId.value.trim();
  if (f.from.value) out.from = new Date(f.from.value).toISOString();
  if (f.to.value) out.to = new Date(f.to.value).toISOString();
  return out;
}

let logsSeq = 0;

async function loadLogs(after) {
  $('logs-error').textContent = '';
  const seq = ++logsSeq;
  const list = $('batches');
  list.setAttribute('aria-busy', 'true');
  try {
    const { syncLogs } = await gql(`query($f: SyncLogFilter, $after: String) { syncLogs(filter: $f, first: 20, after: $after) {
      edges { node { id direction status message startedAt finishedAt created updated deleted skipped failed waiting apiCalls } }
      pageInfo { hasNextPage endCursor } } }`, { f: logFilter(), after });
    if (seq !== logsSeq) return; // a newer request is on its way
    logCursor = syncLogs.pageInfo.endCursor;
    $('logs-older').hidden = !syncLogs.pageInfo.hasNextPage;
    $('logs-newest').hidden = !after;
    list.replaceChildren(...syncLogs.edges.map((e) => batchItem(e.node)));
    if (!syncLogs.edges.length) list.append(h('li', {}, 'No batches match.'));
  } catch (err) {
    if (seq === logsSeq) $('logs-error').textContent = err.message;
  } finally {
    if (seq === logsSeq) list.removeAttribute('aria-busy');
  }
}

function counts(b) {
  return ['created', 'updated', 'deleted', 'skipped', 'failed', 'waiting'].filter((k) => b[k]).map((k) => `${b[k]} ${k}`).join(', ') || 'nothing to do';
}

function batchItem(b) {
  const details = h('details', { class: 'batch', 'data-batch': b.id },
    h('summary', {},
      h('span', { class: 'badge ' + b.status.toLowerCase() }, words(b.status)), ' ',
      h('strong', {}, b.direction === 'OUTBOUND' ? 'To Salesforce' : 'From Salesforce'), ` · ${when(b.finishedAt)} · ${counts(b)} · ${b.apiCalls} API calls`,
      b.message ? h('span', { class: 'msg' }, ' – ' + b.message) : null),
    h('div', { class: 'records' }, 'Loading…'));
  details.addEventListener('toggle', () => {
    if (!details.open || details.dataset.loaded) return;
    details.dataset.loaded = '1';
    const box = details.querySelector('.records');
    box.textContent = '';
    loadRecords(b.id, box, null);
  });
  return h('li', {}, details);
}

// loadRecords shows a batch's records a page at a time.
async function loadRecords(batchId, box, after) {
  try {
    const { syncBatch } = await gql(`query($id: ID!, $after: String) { syncBatch(id: $id) { records(first: 50, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { node { recordType recordId crmObject crmId outcome reason errorCode fields { field crmField mode value sent reason } } } } } }`,
    { id: batchId, after });
    const recs = syncBatch.records;
    let list = box.querySelector('ul.recs');
    if (!list) {
      list = h('ul', { class: 'recs' });
      box.replaceChildren(h('p', { class: 'hint' }, `${recs.totalCount} record(s)`), list);
    }
    list.append(...recs.edges.map((e) => recordItem(e.node)));
    const more = box.querySelector('button.more');
    if (more) more.remove();
    if (recs.pageInfo.hasNextPage) {
      box.append(h('button', { type: 'button', class: 'more', onclick: () => loadRecords(batchId, box, recs.pageInfo.endCursor) }, 'More records'));
    }
  } catch (err) {
    box.append(h('p', { class: 'error' }, err.message));
  }
}

function recordItem(r) {
  const target = r.crmId ? `${r.crmObject} ${r.crmId}` : r.crmObject || 'Salesforce';
  const title = `${words(r.recordType)} ${r.recordId} → ${target}: ${OUTCOME_WORDS[r.outcome] || words(r.outcome)}`;
  const why = [r.reason, r.errorCode ? `(${r.errorCode})` : ''].filter(Boolean).join(' ');
  return h('li', {}, h('details', { class: 'record' },
    h('summary', {}, title, why ? h('span', { class: 'msg' }, ' – ' + why) : null),
    r.fields.length ? h('ul', { class: 'fields' }, ...r.fields.map(fieldWords)) : h('p', {}, 'No field decisions.')));
}

// fieldWords says what happened to one field in plain words.
function fieldWords(f) {
  const mode = MODES[f.mode] ? MODES[f.mode][0].toLowerCase() : words(f.mode);
  const value = f.value === null || f.value === undefined ? 'blank' : JSON.stringify(f.value);
  const verb = f.sent ? `Sent ${value} to ${f.crmField}` : `Not sent to ${f.crmField}`;
  return h('li', { class: f.sent ? 'sent' : 'kept' }, h('strong', {}, f.field), `: ${verb} (${mode})`, f.reason ? ` – ${f.reason}` : '', '.');
}

// ---- Failed items ----

let failedCursor = null;

async function loadFailed(more) {
  try {
    const { failedItems } = await gql(`query($after: String) { failedItems(first: 50, after: $after) {
      edges { node { id recordType recordId errorCode errorMessage attempts createdAt } } pageInfo { hasNextPage endCursor } } }`, { after: more ? failedCursor : null });
    failedCursor = failedItems.pageInfo.endCursor;
    $('failed-more').hidden = !failedItems.pageInfo.hasNextPage;
    const rows = failedItems.edges.map(({ node: f }) => h('tr', { 'data-failed': f.id },
      h('td', {}, `${words(f.recordType)} ${f.recordId}`),
      h('td', {}, h('code', {}, f.errorCode), ' ', f.errorMessage),
      h('td', {}, f.attempts),
      h('td', {}, when(f.createdAt)),
      h('td', {},
        h('button', { type: 'button', 'aria-label': `Retry ${f.recordId}`, onclick: () => failedAction('retryFailedItems', [f.id]) }, 'Retry'), ' ',
        h('button', { type: 'button', 'aria-label': `Dismiss ${f.recordId}`, onclick: () => failedAction('dismissFailedItems', [f.id]) }, 'Dismiss'))));
    if (more) $('failed-items').append(...rows);
    else $('failed-items').replaceChildren(...rows);
    if (!more && !rows.length) $('failed-items').append(h('tr', {}, h('td', { colspan: 5 }, 'No failed items.')));
  } catch (err) {
    $('failed-status').textContent = err.message;
  }
}

async function failedAction(mutation, ids) {
  try {
    const d = await gql(`mutation($ids: [ID!]) { n: ${mutation}(ids: $ids) }`, { ids });
    $('failed-status').textContent = `${d.n} item(s) ${mutation === 'retryFailedItems' ? 're-queued' : 'dismissed'}.`;
    await loadFailed(false);
  } catch (err) {
    $('failed-status').textContent = err.message;
  }
}
$('failed-more').addEventListener('click', () => loadFailed(true));
$('retry-all').addEventListener('click', () => failedAction('retryFailedItems', null));
$('dismiss-all').addEventListener('click', () => {
  if (confirm('Dismiss every failed item? Their changes are dropped.')) failedAction('dismissFailedItems', null);
});

// ---- Preferences ----

for (const t of PREF_TYPES) $('field-type').append(h('option', { value: t }, words(t)));
$('field-type').addEventListener('change', () => loadFields());
$('mode-help').replaceChildren(...Object.values(MODES).flatMap(([name, help]) => [h('dt', {}, name), h('dd', {}, help)]));

async function loadPrefs() {
  try {
    const { objectSyncPreferences } = await gql('{ objectSyncPreferences { recordType writeEnabled readEnabled createAs } }');
    $('object-prefs').replaceChildren(...objectSyncPreferences.map(objectRow));
  } catch (err) {
    flash('Could not load the preferences: ' + err.message);
  }
  await loadFields();
}

function objectRow(p) {
  const id = p.recordType;
  const write = h('input', { type: 'checkbox', id: `write-${id}`, checked: p.writeEnabled });
  const read = h('input', { type: 'checkbox', id: `read-${id}`, checked: p.readEnabled });
  const createAs = id === 'CONTACT'
    ? h('select', { id: `createas-${id}`, 'aria-label': 'New contacts become' }, h('option', { value: 'LEAD', selected: p.createAs === 'LEAD' }, 'Lead'), h('option', { value: 'CONTACT', selected: p.createAs === 'CONTACT' }, 'Contact'))
    : null;
  const status = h('span', { role: 'status', class: 'status' });
  const save = async () => {
    status.textContent = '';
    try {
      await gql('mutation($in: ObjectSyncPreferenceInput!) { updateObjectSyncPreference(input: $in) { recordType } }',
        { in: { recordType: id, writeEnabled: write.checked, readEnabled: read.checked, createAs: createAs ? createAs.value : null } });
      status.textContent = 'Saved';
    } catch (err) {
      status.textContent = err.message;
      status.classList.add('error');
    }
  };
  return h('tr', {},
    h('th', { scope: 'row' }, words(id)),
    h('td', {}, write, h('label', { for: `write-${id}`, class: 'sr' }, `Write ${words(id)} to Salesforce`)),
    h('td', {}, read, h('label', { for: `read-${id}`, class: 'sr' }, `Read ${words(id)} from Salesforce`)),
    h('td', {}, createAs || '–'),
    h('td', {}, h('button', { type: 'button', onclick: save }, 'Save'), ' ', status));
}

async function loadFields() {
  const type = $('field-type').value;
  try {
    const { fieldSyncPreferences } = await gql('query($t: RecordType!) { fieldSyncPreferences(recordType: $t) { recordType field crmField mode } }', { t: type });
    $('field-prefs').replaceChildren(...fieldSyncPreferences.map((f) => fieldRow(type, f, false)), fieldRow(type, { field: '', crmField: '', mode: 'TWO_WAY' }, true));
  } catch (err) {
    flash('Could not load the field preferences: ' + err.message);
  }
}

function fieldRow(type, f, isNew) {
  const key = isNew ? 'new' : f.field;
  const errId = `field-error-${key}`;
  const field = isNew ? h('input', { id: 'field-new', 'aria-label': 'New Conversion field', placeholder: 'Conversion field' }) : null;
  const crm = h('input', { id: `crm-${key}`, value: f.crmField, 'aria-label': `Salesforce field for ${f.field || 'the new field'}`, 'aria-describedby': errId });
  const mode = h('select', { id: `mode-${key}`, 'aria-label': `Sync mode of ${f.field || 'the new field'}` },
    ...Object.entries(MODES).map(([v, [name]]) => h('option', { value: v, selected: v === f.mode }, name)));
  const err = h('p', { id: errId, class: 'error', role: 'alert' });
  const save = async () => {
    err.textContent = '';
    crm.removeAttribute('aria-invalid');
    try {
      await gql('mutation($in: FieldSyncPreferenceInput!) { updateFieldSyncPreference(input: $in) { field } }',
        { in: { recordType: type, field: isNew ? field.value.trim() : f.field, crmField: crm.value.trim(), mode: mode.value } });
      if (isNew) await loadFields();
      else err.textContent = 'Saved';
    } catch (e) {
      err.textContent = e.message;
      crm.setAttribute('aria-invalid', 'true');
    }
  };
  return h('tr', { 'data-field': key },
    h('th', { scope: 'row' }, isNew ? field : f.field),
    h('td', {}, crm, err),
    h('td', {}, mode),
    h('td', {}, h('button', { type: 'button', id: `save-${key}`, onclick: save }, isNew ? 'Add' : 'Save')));
}

// Back from the Salesforce OAuth web flow (CRMSYNC_SALESFORCE_RETURN_URL
// pointing here): say how it went, and drop the query from the address.
function oauthResult() {
  const q = new URLSearchParams(location.search);
  const result = q.get('salesforce');
  if (!result) return '';
  history.replaceState(null, '', location.pathname + location.hash);
  return result === 'connected' ? 'Salesforce connected.' : `Salesforce did not connect: ${q.get('error') || 'unknown error'}.`;
}

const back = oauthResult();
if (token) start().then(() => { if (back) flash(back, back.startsWith('Salesforce connected')); });
else signOut(back);
