// @ts-check
// Incidents: the list (incidents, and alerts that belong to none), the
// "Send sample alert" button for the automation role, and the incident
// page with its alerts and its Activity, where each run is a "run
// playbook" row that opens the run's details. Alert changes (status,
// assignment) need the automation role; anyone signed in may comment.

import { $, api, ApiError, el, hasRole, messageOf, plural, show, timeEl, toast, viewSection } from './core.js';
import {
  activityOldestFirst, activityText, ALERT_STATUSES, alertStatusWord, incidentCells, severityWord, sortAlerts,
} from './incident-model.js';
import { isEnded } from './run-model.js';
import { openRun, statusChip } from './run-details.js';
import { SAMPLE_ALERTS, sampleAlert } from './sample-alerts.js';

/** While a run of the incident has not ended, its Activity is asked again this often. */
const REFRESH_MS = 2000;

let seq = 0;
let sampleIndex = 0;
/** @type {{ id: string, alerts: any[], activity: any[], tab: 'alerts' | 'activity' } | null} */
let incident = null;
let refreshTimer = 0;
/** @type {any} */
let editing = null; // the alert in the alert dialog

const canChange = () => hasRole('automation');

// ---------------------------------------------------------------------------
// The list

function severityCell(s) {
  return el('span', { class: 'sev', 'data-severity': String(s || ''), 'data-testid': 'severity' }, severityWord(s));
}

function alertStatusCell(s) {
  return el('span', { class: 'chip', 'data-alert-status': String(s || ''), 'data-testid': 'alert-status' }, alertStatusWord(s));
}

function incidentRow(inc) {
  const c = incidentCells(inc);
  const href = `/incidents/${encodeURIComponent(inc.id)}`;
  return el('tr', { 'data-testid': 'incident-row', 'data-id': String(inc.id) },
    el('td', null, el('a', { class: 'row-title', href, 'data-route': true, 'data-testid': 'incident-link' }, c.title),
      el('div', 'muted small', `Incident ${inc.id}`)),
    el('td', null, severityCell(inc.severity)),
    el('td', null, alertStatusCell(inc.status)),
    el('td', { class: 'num', 'data-testid': 'incident-alerts' }, String(Number(inc.alertCount) || 0)),
    el('td', 'small', c.sources),
    el('td', 'small nowrap', c.lastAt ? timeEl(c.lastAt) : ''),
  );
}

function looseAlertRow(a) {
  return el('tr', { 'data-testid': 'alert-row', 'data-id': String(a.id) },
    el('td', null, el('div', 'row-title', String(a.title || a.id)), el('div', 'muted small mono', String(a.id))),
    el('td', null, severityCell(a.severity)),
    el('td', null, alertStatusCell(a.status)),
    el('td', 'small', a.source && a.source.name ? String(a.source.name) : ''),
    el('td', 'small nowrap', a.createdDateTime ? timeEl(a.createdDateTime) : ''),
  );
}

function setListError(message) {
  $('incidents-error-text').textContent = message;
  show($('incidents-error'), !!message);
}

async function loadList() {
  const my = ++seq;
  show($('incidents-loading'), true);
  let incidents, alerts;
  try {
    const [i, a] = await Promise.all([api('/api/incidents'), api('/api/alerts?limit=100')]);
    incidents = Array.isArray(i?.incidents) ? i.incidents : [];
    alerts = (Array.isArray(a?.alerts) ? a.alerts : []).filter((x) => !x.incidentId);
  } catch (e) {
    if (my !== seq) return;
    show($('incidents-loading'), false);
    setListError(e instanceof ApiError && e.status === 501
      ? 'This gateway does not take alerts.'
      : `The incidents could not be loaded: ${messageOf(e)}`);
    return;
  }
  if (my !== seq) return;
  show($('incidents-loading'), false);
  $('incidents-body').replaceChildren(...incidents.map(incidentRow));
  show($('incidents-table-card'), incidents.length > 0);
  $('loose-alerts-body').replaceChildren(...alerts.map(looseAlertRow));
  show($('loose-alerts'), alerts.length > 0);
  show($('incidents-empty'), incidents.length === 0 && alerts.length === 0);
  viewSection('incidents').dataset.loaded = 'true';
}

export function showIncidents() {
  stopRefresh();
  viewSection('incidents').dataset.loaded = 'false';
  show($('send-sample'), canChange());
  setListError('');
  loadList();
}

// The default source (created on a fresh gateway), else the first the
// user may post to.
async function sampleSource() {
  const data = await api('/api/sources');
  const list = Array.isArray(data?.sources) ? data.sources : [];
  const usable = list.filter((s) => s.accessible !== false);
  return usable.find((s) => s.name === 'default') || usable[0] || null;
}

async function sendSample() {
  const btn = $('send-sample', HTMLButtonElement);
  btn.disabled = true;
  setListError('');
  try {
    const src = await sampleSource();
    if (!src) {
      setListError('No alert source you may post to: an administrator creates sources.');
      return;
    }
    const alert = sampleAlert(sampleIndex++);
    await api(`/api/alerts?source=${encodeURIComponent(src.id)}`, { method: 'POST', body: alert });
    toast(`Sample alert “${alert.title}” sent to ${src.name}: incident ${alert.incidentId}.`);
    await loadList();
  } catch (e) {
    setListError(`The sample alert was not sent: ${messageOf(e)}`);
  } finally {
    btn.disabled = false;
  }
}

// ---------------------------------------------------------------------------
// One incident

function stopRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = 0;
}

function setPageError(message) {
  $('incident-error').textContent = message;
  show($('incident-error'), !!message);
}

function selectTab(tab, focus = false) {
  if (!incident) return;
  incident.tab = tab;
  for (const b of /** @type {NodeListOf<HTMLElement>} */ ($('incident-tabs').querySelectorAll('[role="tab"]'))) {
    const on = b.dataset.tab === tab;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    if (on && focus) b.focus();
  }
  show($('incident-alerts-panel'), tab === 'alerts');
  show($('incident-activity-panel'), tab === 'activity');
}

function alertRow(a) {
  const actions = el('td', { class: 'actions nowrap' });
  const open = el('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'alert-open', 'aria-label': `Change or comment on ${a.title || a.id}` }, canChange() ? 'Change…' : 'Comment…');
  open.addEventListener('click', () => openAlert(a));
  actions.append(open);
  return el('tr', { 'data-testid': 'incident-alert', 'data-id': String(a.id) },
    el('td', null, el('div', 'row-title', String(a.title || a.id)), el('div', 'muted small mono', String(a.id))),
    el('td', null, severityCell(a.severity)),
    el('td', null, alertStatusCell(a.status)),
    el('td', 'small', a.source && a.source.name ? String(a.source.name) : ''),
    el('td', 'small', a.assignedTo ? String(a.assignedTo) : el('span', 'muted', 'Unassigned')),
    el('td', 'small nowrap', a.createdDateTime ? timeEl(a.createdDateTime) : ''),
    actions,
  );
}

function activityItem(row) {
  const t = activityText(row);
  const head = el('div', 'activity-head',
    el('span', { class: 'badge', 'data-kind': t.kind }, t.label),
    ' ',
    el('span', 'muted small', t.actor),
    ' · ',
    t.at ? timeEl(t.at) : '');
  const li = el('li', { class: 'activity-row', 'data-testid': 'activity-row', 'data-kind': t.kind, 'data-run-id': t.runId || undefined });
  if (t.kind === 'run' && t.runId) {
    const btn = el('button', { type: 'button', class: 'activity-run', 'data-testid': 'activity-run' },
      el('span', 'activity-run-title', t.text),
      t.status ? statusChip(t.status) : null,
      t.duration ? el('span', { class: 'muted small', 'data-testid': 'activity-duration' }, t.duration) : null);
    const name = row.run && row.run.playbookName;
    btn.addEventListener('click', () => openRun(t.runId, { name, onUpdate: () => scheduleRefresh(0) }));
    li.append(head, btn);
  } else {
    li.append(head, el('p', t.kind === 'comment' ? 'activity-text activity-comment' : 'activity-text', t.text));
  }
  return li;
}

function renderIncident() {
  const inc = incident;
  const alerts = sortAlerts(inc.alerts);
  const top = alerts[0] || {};
  $('h-incident').textContent = String(top.title || `Incident ${inc.id}`);
  document.title = `${$('h-incident').textContent} · Playbook Studio`;
  $('incident-sub').replaceChildren(`Incident ${inc.id} · ${plural(alerts.length, 'alert', 'alerts')} · `, severityCell(top.severity));
  $('incident-alerts-body').replaceChildren(...alerts.map(alertRow));
  const rows = activityOldestFirst(inc.activity);
  $('incident-activity').replaceChildren(...rows.map(activityItem));
  show($('incident-activity-empty'), rows.length === 0);
  $('incident-activity-count').textContent = String(rows.length);
  if (rows.some((r) => r.kind === 'run' && r.run && !isEnded(r.run.status))) scheduleRefresh(REFRESH_MS);
}

function scheduleRefresh(ms) {
  if (!incident) return;
  stopRefresh();
  const id = incident.id;
  const my = seq;
  refreshTimer = setTimeout(() => {
    if (my === seq && incident && incident.id === id) loadIncident(id, true);
  }, ms);
}

async function loadIncident(id, quiet = false) {
  const my = seq;
  try {
    const inc = await api(`/api/incidents/${encodeURIComponent(id)}`);
    if (my !== seq) return;
    const tab = incident && incident.id === id ? incident.tab : 'alerts';
    incident = { id, alerts: Array.isArray(inc?.alerts) ? inc.alerts : [], activity: Array.isArray(inc?.activity) ? inc.activity : [], tab };
    show($('incident-loading'), false);
    renderIncident();
    selectTab(tab);
    show($('incident-content'), true);
    viewSection('incident').dataset.loaded = 'true';
  } catch (e) {
    if (my !== seq) return;
    show($('incident-loading'), false);
    if (quiet) return;
    if (e instanceof ApiError && e.status === 404) {
      $('h-incident').textContent = 'No such incident';
      setPageError('There is no such incident.');
    } else {
      setPageError(`The incident could not be loaded: ${messageOf(e)}`);
    }
  }
}

export function showIncident(params, search) {
  ++seq;
  stopRefresh();
  incident = null;
  setPageError('');
  show($('incident-content'), false);
  show($('incident-loading'), true);
  $('h-incident').textContent = 'Incident';
  $('incident-sub').replaceChildren();
  viewSection('incident').dataset.loaded = 'false';
  const tab = search && search.get('tab') === 'activity' ? 'activity' : 'alerts';
  incident = { id: params.id, alerts: [], activity: [], tab };
  loadIncident(params.id);
}

export function hideIncidents() {
  ++seq;
  stopRefresh();
}

// ---------------------------------------------------------------------------
// An alert: change (automation) and comment (anyone)

function openAlert(a) {
  editing = a;
  const d = $('alert-dialog', HTMLDialogElement);
  $('alert-dialog-title').textContent = String(a.title || a.id);
  $('alert-dialog-sub').textContent = `${severityWord(a.severity)} · ${alertStatusWord(a.status)} · ${a.source && a.source.name ? a.source.name : ''}`;
  $('alert-dialog-error').textContent = '';
  const status = $('alert-status', HTMLSelectElement);
  const values = ALERT_STATUSES.includes(a.status) ? ALERT_STATUSES : [...ALERT_STATUSES, String(a.status || '')].filter(Boolean);
  status.replaceChildren(...values.map((s) => el('option', { value: s }, alertStatusWord(s))));
  status.value = String(a.status || 'new');
  $('alert-assigned', HTMLInputElement).value = String(a.assignedTo || '');
  $('alert-comment', HTMLTextAreaElement).value = '';
  show($('alert-change'), canChange());
  d.showModal();
  (canChange() ? status : $('alert-comment')).focus();
}

async function saveAlert(event) {
  event.preventDefault();
  if (!editing) return;
  const a = editing;
  const body = {};
  const status = $('alert-status', HTMLSelectElement).value;
  const assigned = $('alert-assigned', HTMLInputElement).value.trim();
  if (status !== String(a.status || '')) body.status = status;
  if (assigned !== String(a.assignedTo || '')) body.assignedTo = assigned || null;
  if (Object.keys(body).length === 0) {
    $('alert-dialog-error').textContent = 'Nothing changed.';
    return;
  }
  await alertCall(() => api(`/api/alerts/${encodeURIComponent(a.id)}`, { method: 'PATCH', body }), 'The alert was changed.', 'The alert was not changed');
}

async function addComment() {
  if (!editing) return;
  const text = $('alert-comment', HTMLTextAreaElement).value.trim();
  if (!text) {
    $('alert-dialog-error').textContent = 'Write a comment first.';
    $('alert-comment').focus();
    return;
  }
  await alertCall(() => api(`/api/alerts/${encodeURIComponent(editing.id)}/comments`, { method: 'POST', body: { text } }), 'Comment added.', 'The comment was not added');
}

async function alertCall(call, done, failed) {
  $('alert-dialog-error').textContent = '';
  try {
    await call();
    $('alert-dialog', HTMLDialogElement).close();
    toast(done);
    if (incident) await loadIncident(incident.id);
  } catch (e) {
    $('alert-dialog-error').textContent = `${failed}: ${messageOf(e)}`;
  }
}

// ---------------------------------------------------------------------------

export function initIncidents() {
  $('send-sample').title = `Posts one of ${SAMPLE_ALERTS.length} sample alerts, with a new id, to the default source`;
  $('send-sample').addEventListener('click', sendSample);
  $('incidents-retry').addEventListener('click', () => { setListError(''); loadList(); });
  const tabs = /** @type {HTMLElement[]} */ ([...$('incident-tabs').querySelectorAll('[role="tab"]')]);
  tabs.forEach((b, i) => {
    b.addEventListener('click', () => selectTab(/** @type {any} */ (b.dataset.tab)));
    b.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      e.preventDefault();
      selectTab(/** @type {any} */ (tabs[(i + 1) % tabs.length].dataset.tab), true);
    });
  });
  $('incident-refresh').addEventListener('click', () => { if (incident) loadIncident(incident.id); });
  $('alert-form').addEventListener('submit', saveAlert);
  $('alert-comment-add').addEventListener('click', addComment);
  $('alert-cancel').addEventListener('click', () => $('alert-dialog', HTMLDialogElement).close());
}
