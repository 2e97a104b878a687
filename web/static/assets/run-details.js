// @ts-check
// One run's details, shared by the incident page (its Activity's "run
// playbook" rows) and the playbook page (its Runs): status, times, the
// result (indented JSON, written as text, never as HTML), the log, the
// integration calls and the ctx actions, in the run dialog. A run that has
// not ended is followed until it does.

import { $, absTime, api, el, hasRole, messageOf, sleep } from './core.js';
import {
  durationText, isEnded, resultText, runDurationMs, runTitle, statusMeaning, statusTone, statusWord, triggerWord,
} from './run-model.js';

/** How often a run that has not ended is asked again. */
const FOLLOW_MS = 1000;

/** The status as a chip (its meaning as the title). @param {string} status */
export function statusChip(status) {
  return el('span', {
    class: 'chip run-status', 'data-tone': statusTone(status), 'data-status': String(status || ''),
    'data-testid': 'run-status', title: statusMeaning(status),
  }, statusWord(status));
}

/**
 * Asks GET /api/runs/{id} until the run ends (or signal aborts), calling
 * onRun with each answer; resolves to the last run.
 * @param {string} id
 * @param {(run: any) => void} onRun
 * @param {AbortSignal} [signal]
 */
export async function followRun(id, onRun, signal) {
  for (;;) {
    const run = await api(`/api/runs/${encodeURIComponent(id)}`, { signal });
    if (signal && signal.aborted) return run;
    onRun(run);
    if (isEnded(run.status)) return run;
    await sleep(FOLLOW_MS, signal);
    if (signal && signal.aborted) return run;
  }
}

/** "+1.234 s" from the run's start, for its log and its calls. */
function offset(at, start) {
  const t = Date.parse(String(at || ''));
  if (!Number.isFinite(t) || !Number.isFinite(start)) return '';
  return `+${((t - start) / 1000).toFixed(3)} s`;
}

function section(title, testid, ...body) {
  return el('section', { class: 'run-part', 'data-testid': testid }, el('h3', 'run-part-title', title), ...body);
}

function table(caption, head, rows, testid) {
  return el('div', 'run-table-wrap',
    el('table', { class: 'table table-compact', 'data-testid': testid },
      el('caption', 'sr-only', caption),
      el('thead', null, el('tr', null, ...head.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', null, ...rows)));
}

/**
 * The details of a Run of the API, as nodes.
 * @param {any} run
 */
export function runDetails(run) {
  const start = Date.parse(String(run.startedAt || run.queuedAt || ''));
  const about = [
    ['Status', el('span', null, statusChip(run.status), ' ', el('span', 'muted small', statusMeaning(run.status)))],
    ['Playbook', run.playbookId
      ? el('a', { href: `/playbooks/${encodeURIComponent(run.playbookId)}`, 'data-route': true }, run.playbookName || 'Open the playbook', run.playbookVersion ? ` v${run.playbookVersion}` : '')
      : ''],
    ['Trigger', triggerWord(run.trigger) + (run.dryRun ? ' (dry run)' : '')],
    ['Alert', run.alertId ? el('span', 'mono small', run.alertId) : ''],
    ['Incident', run.incidentId ? el('a', { href: `/incidents/${encodeURIComponent(run.incidentId)}`, 'data-route': true }, run.incidentId) : ''],
    ['Started by', run.startedBy || ''],
    ['Queued', absTime(run.queuedAt)],
    ['Started', absTime(run.startedAt)],
    ['Ended', absTime(run.endedAt)],
    ['Duration', durationText(runDurationMs(run))],
  ].filter(([, v]) => v !== '');
  const parts = [
    el('dl', { class: 'about run-about', 'data-testid': 'run-about' }, ...about.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, v)])),
  ];
  if (run.error) {
    parts.push(section('Error', 'run-error', el('pre', { class: 'run-pre run-pre-error', tabindex: '0' }, String(run.error))));
  }
  const result = resultText(run.result);
  parts.push(section('Result', 'run-result',
    result ? el('pre', { class: 'run-pre', tabindex: '0', 'aria-label': 'Result (JSON)' }, result)
      : el('p', 'muted small', isEnded(run.status) ? 'No result.' : 'No result yet.')));

  const log = Array.isArray(run.log) ? run.log : [];
  parts.push(section(`Log (${log.length})`, 'run-log',
    log.length ? el('ol', { class: 'run-log' }, ...log.map((l) => el('li', null,
      el('span', { class: 'run-log-at mono', title: absTime(l.at) }, offset(l.at, start)),
      el('span', 'run-log-msg', String(l.message ?? '')))))
      : el('p', 'muted small', 'Nothing was logged.')));

  const calls = Array.isArray(run.calls) ? run.calls : [];
  parts.push(section(`Integration calls (${calls.length})`, 'run-calls',
    calls.length ? table('Integration calls', ['Integration', 'Method', 'Path', 'Status', 'Duration', 'Error'], calls.map((c) => el('tr', { 'data-testid': 'run-call' },
      el('td', null, String(c.integration || '')),
      el('td', 'mono small', String(c.method || '')),
      el('td', 'mono small run-path', String(c.path || '')),
      el('td', 'mono small', Number(c.status) > 0 ? String(c.status) : '—'),
      el('td', 'small nowrap', durationText(c.durationMs)),
      el('td', 'small', String(c.error || '')))), 'run-calls-table')
      : el('p', 'muted small', 'No integration was called.')));

  const actions = Array.isArray(run.actions) ? run.actions : [];
  parts.push(section(`Actions (${actions.length})`, 'run-actions',
    actions.length ? table('Actions', ['When', 'Action', 'Detail', 'Error'], actions.map((a) => el('tr', { 'data-testid': 'run-action' },
      el('td', { class: 'mono small nowrap', title: absTime(a.at) }, offset(a.at, start)),
      el('td', 'mono small', String(a.type || '')),
      el('td', 'small', String(a.detail || '')),
      el('td', 'small', String(a.error || '')))), 'run-actions-table')
      : el('p', 'muted small', 'No ctx action was taken.')));
  return parts;
}

// ---------------------------------------------------------------------------
// The run dialog

/** @type {AbortController | null} */
let following = null;
/** @type {any} */
let shown = null;
/** @type {(run: any) => void} */
let onChange = () => {};

function render(run) {
  shown = run;
  $('run-title').textContent = runTitle(run);
  const box = $('run-details');
  box.dataset.status = String(run.status || '');
  box.replaceChildren(...runDetails(run));
  show$('run-cancel', hasRole('automation') && !isEnded(run.status));
}

function show$(id, on) {
  $(id).hidden = !on;
}

/**
 * Opens the run dialog on a run (its id, or the Run already fetched) and
 * follows it until it ends; onUpdate hears each new state (the page
 * behind refreshes its row).
 * @param {string | any} runOrId
 * @param {{ onUpdate?: (run: any) => void, name?: string }} [opts]
 */
export function openRun(runOrId, opts = {}) {
  const d = $('run-dialog', HTMLDialogElement);
  const id = typeof runOrId === 'string' ? runOrId : String(runOrId.id);
  onChange = opts.onUpdate || (() => {});
  following?.abort();
  const ctl = new AbortController();
  following = ctl;
  shown = null;
  $('run-error-line').textContent = '';
  show$('run-cancel', false);
  if (typeof runOrId === 'object' && runOrId) render(withName(runOrId, opts.name));
  else {
    $('run-title').textContent = 'Run';
    $('run-details').replaceChildren(el('p', { class: 'loading small', role: 'status' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), el('span', null, 'Loading the run…')));
  }
  if (!d.open) d.showModal();
  $('run-close').focus();
  followRun(id, (run) => {
    if (following !== ctl) return;
    render(withName(run, opts.name));
    onChange(run);
  }, ctl.signal).catch((e) => {
    if (ctl.signal.aborted || following !== ctl) return;
    $('run-error-line').textContent = `The run could not be loaded: ${messageOf(e)}`;
  });
}

/** The API's Run has no playbook name; the page that opens it may know it. */
function withName(run, name) {
  return name && !run.playbookName ? { ...run, playbookName: name } : run;
}

async function cancelShown() {
  if (!shown) return;
  const btn = $('run-cancel', HTMLButtonElement);
  btn.disabled = true;
  try {
    const run = await api(`/api/runs/${encodeURIComponent(shown.id)}/cancel`, { method: 'POST' });
    render(withName(run, shown.playbookName));
    onChange(run);
  } catch (e) {
    $('run-error-line').textContent = `The run was not canceled: ${messageOf(e)}`;
  } finally {
    btn.disabled = false;
  }
}

let ready = false;

export function initRunDetails() {
  if (ready) return;
  ready = true;
  const d = $('run-dialog', HTMLDialogElement);
  $('run-close').addEventListener('click', () => d.close());
  $('run-cancel').addEventListener('click', cancelShown);
  d.addEventListener('close', () => {
    following?.abort();
    following = null;
  });
  // A link in the details (the playbook, the incident) leaves the dialog.
  $('run-details').addEventListener('click', (e) => {
    const t = e.target instanceof Element ? e.target.closest('a[data-route]') : null;
    if (t) d.close();
  });
}
