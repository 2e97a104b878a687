// @ts-check
// The Sessions tab (admin): live edit sessions with Terminate, the
// tenant's workspaces with Stop, refreshed every 10 s while shown, and the
// audit log below them.

import { $, api, confirmDialog, el, hasRole, messageOf, show, timeEl, absTime, toast, viewSection } from './core.js';

const REFRESH_MS = 10_000;
let timer = 0;
let visible = false;
let seq = 0;

const STATE_LABELS = {
  creating: 'Creating', starting: 'Starting', ready: 'Ready', failed: 'Failed', stopping: 'Stopping', stopped: 'Stopped',
};

function sessionRow(s) {
  const state = s.workspace && s.workspace.state ? String(s.workspace.state) : 'unknown';
  const playbook = s.playbookId
    ? el('a', { href: `/playbooks/${encodeURIComponent(s.playbookId)}`, 'data-route': '' }, s.name)
    : el('span', null, s.name, el('span', 'muted small', ' (not saved yet)'));
  const btn = el('button', { type: 'button', class: 'btn btn-secondary btn-sm btn-danger-text', 'data-testid': 'terminate' }, 'Terminate');
  btn.setAttribute('aria-label', `Terminate the session of ${s.user} on ${s.name}`);
  btn.addEventListener('click', () => terminate(s, btn));
  return el('tr', { 'data-testid': 'session-row', 'data-user': s.user, 'data-name': s.name },
    el('td', null, s.user),
    el('td', null, playbook),
    el('td', { class: 'nowrap' }, timeEl(s.startedAt)),
    el('td', { class: 'nowrap' }, timeEl(s.lastActivityAt)),
    el('td', null, el('span', { class: 'chip', 'data-phase': state }, STATE_LABELS[state] || state)),
    el('td', { class: 'actions' }, btn),
  );
}

/** @param {{id: string, user: string, userName?: string, state: string, lastActivityAt?: string}} w */
function workspaceRow(w) {
  const state = String(w.state || 'unknown');
  const who = w.userName || w.user;
  const cells = [
    el('td', null, who),
    el('td', null, el('span', { class: 'chip', 'data-phase': state }, STATE_LABELS[state] || state)),
    el('td', { class: 'nowrap' }, w.lastActivityAt ? timeEl(w.lastActivityAt) : ''),
  ];
  const actions = el('td', { class: 'actions' });
  if (state === 'ready') {
    const btn = el('button', { type: 'button', class: 'btn btn-secondary btn-sm btn-danger-text', 'data-testid': 'stop-workspace' }, 'Stop');
    btn.setAttribute('aria-label', `Stop the workspace of ${who}`);
    btn.addEventListener('click', () => stopWorkspace(w, who, btn));
    actions.append(btn);
  }
  return el('tr', { 'data-testid': 'workspace-row', 'data-user': who }, ...cells, actions);
}

async function stopWorkspace(w, who, btn) {
  const yes = await confirmDialog({
    title: `Stop ${who}’s workspace?`,
    text: `Any edit session it serves ends at once. The files in it are kept; it starts again when ${who} next opens a playbook.`,
    ok: 'Stop workspace',
  });
  if (!yes) {
    btn.focus();
    return;
  }
  btn.disabled = true;
  try {
    await api(`/api/admin/workspaces/${encodeURIComponent(w.id)}`, { method: 'DELETE' });
    toast(`${who}’s workspace was stopped.`);
  } catch (e) {
    toast(`Not stopped: ${messageOf(e)}`, 'error');
  }
  await refresh();
  $('h-sessions').focus({ preventScroll: true });
}

function detailText(detail) {
  if (!detail || typeof detail !== 'object') return '';
  return Object.entries(detail).map(([k, v]) => `${k}: ${v}`).join(' · ');
}

function auditRow(ev) {
  return el('tr', { 'data-testid': 'audit-row' },
    el('td', { class: 'nowrap', title: absTime(ev.at) }, timeEl(ev.at)),
    el('td', null, String(ev.actor || '')),
    el('td', null, el('code', null, String(ev.action || ''))),
    el('td', { class: 'mono small clamp-1', title: String(ev.target || '') }, String(ev.target || '')),
    el('td', { class: 'small' }, detailText(ev.detail)),
  );
}

async function terminate(s, btn) {
  const yes = await confirmDialog({
    title: `Terminate ${s.user}’s session?`,
    text: `${s.user} is editing “${s.name}”. Their editor closes at once and their unsaved changes stay in their workspace. They can open it again.`,
    ok: 'Terminate session',
  });
  if (!yes) {
    btn.focus();
    return;
  }
  btn.disabled = true;
  try {
    await api(`/api/admin/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
    toast(`${s.user}’s session on “${s.name}” was terminated.`);
  } catch (e) {
    toast(`Not terminated: ${messageOf(e)}`, 'error');
  }
  await refresh();
  $('h-sessions').focus({ preventScroll: true });
}

async function refresh() {
  const my = ++seq;
  clearTimeout(timer);
  let sessions;
  let events;
  let workspaces;
  try {
    const [a, b, c] = await Promise.all([api('/api/admin/sessions'), api('/api/admin/audit?limit=100'), api('/api/admin/workspaces')]);
    sessions = Array.isArray(a?.sessions) ? a.sessions : [];
    events = Array.isArray(b?.events) ? b.events : [];
    workspaces = Array.isArray(c?.workspaces) ? c.workspaces : [];
  } catch (e) {
    if (my !== seq) return;
    $('sessions-error').textContent = `Sessions could not be loaded: ${messageOf(e)}`;
    show($('sessions-error'), true);
    schedule();
    return;
  }
  if (my !== seq || !visible) return;
  show($('sessions-error'), false);
  sessions.sort((x, y) => String(y.startedAt).localeCompare(String(x.startedAt)));
  $('sessions-body').replaceChildren(...sessions.map(sessionRow));
  show($('sessions-table-card'), sessions.length > 0);
  show($('sessions-empty'), sessions.length === 0);
  $('workspaces-body').replaceChildren(...workspaces.map(workspaceRow));
  show($('workspaces-table-card'), workspaces.length > 0);
  show($('workspaces-empty'), workspaces.length === 0);
  $('audit-body').replaceChildren(...events.map(auditRow));
  show($('audit-table-card'), events.length > 0);
  show($('audit-empty'), events.length === 0);
  $('sessions-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
  viewSection('sessions').dataset.loaded = 'true';
  schedule();
}

function schedule() {
  clearTimeout(timer);
  if (visible) timer = setTimeout(refresh, REFRESH_MS);
}

export function showSessions() {
  const admin = hasRole('admin');
  show($('sessions-forbidden'), !admin);
  show($('sessions-admin'), admin);
  show($('sessions-refresh'), admin);
  visible = admin;
  if (admin) refresh();
}

export function hideSessions() {
  visible = false;
  clearTimeout(timer);
}

export function initSessions() {
  $('sessions-refresh').addEventListener('click', refresh);
  document.addEventListener('visibilitychange', () => {
    if (visible && document.visibilityState === 'visible') refresh();
  });
}
