// @ts-check
// The playbook page's Runs: the playbook's recent runs (each opens the
// shared run details) and, on an active playbook for the automation role,
// "Run on an alert…": pick a recent alert, start a manual run, follow it
// until it ends.

import { $, api, ApiError, el, hasRole, messageOf, relTime, show, timeEl } from './core.js';
import { alertLabel } from './incident-model.js';
import { durationText, isEnded, runDurationMs, statusWord, triggerWord } from './run-model.js';
import { followRun, openRun, statusChip } from './run-details.js';

const RUNS_LIMIT = 20;

let seq = 0;
/** @type {{ id: string, name: string, status: string } | null} */
let current = null;
/** @type {AbortController | null} */
let following = null;
/** @type {any} */
let started = null; // the run the dialog started

function runRow(run) {
  const open = el('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'run-open', 'aria-label': `Details of the run queued ${relTime(run.queuedAt)}` }, 'Details');
  open.addEventListener('click', () => openRun(run, { name: current?.name, onUpdate: () => loadRuns() }));
  return el('tr', { 'data-testid': 'run-row', 'data-id': String(run.id), 'data-status': String(run.status || '') },
    el('td', null, statusChip(run.status)),
    el('td', 'small', triggerWord(run.trigger)),
    el('td', 'small mono clamp-1', String(run.alertId || '')),
    el('td', 'num small', run.playbookVersion ? `v${run.playbookVersion}` : ''),
    el('td', 'small nowrap', timeEl(run.queuedAt)),
    el('td', 'small nowrap', durationText(runDurationMs(run))),
    el('td', 'actions', open),
  );
}

function note(text) {
  $('runs-note').textContent = text;
  show($('runs-note'), !!text);
}

/** Loads the current playbook's recent runs into the Runs section. */
export async function loadRuns() {
  if (!current) return;
  const my = ++seq;
  const id = current.id;
  try {
    const data = await api(`/api/runs?playbookId=${encodeURIComponent(id)}&limit=${RUNS_LIMIT}`);
    if (my !== seq) return;
    const runs = Array.isArray(data?.runs) ? data.runs : [];
    $('runs-body').replaceChildren(...runs.map(runRow));
    show($('runs-table-wrap'), runs.length > 0);
    note(runs.length ? '' : 'No runs yet. Automation rules run an active playbook on matching alerts; “Run on an alert…” runs it once by hand.');
  } catch (e) {
    if (my !== seq) return;
    show($('runs-table-wrap'), false);
    note(e instanceof ApiError && e.status === 501
      ? 'Runs are not available: this gateway has no sandbox to run playbooks in.'
      : `The runs could not be loaded: ${messageOf(e)}`);
  }
}

/**
 * Shows the Runs of a playbook (the page calls it when it loads one and
 * after its status changes).
 * @param {{ id: string, name: string, status: string }} p
 */
export function showRuns(p) {
  const changed = !current || current.id !== p.id;
  current = { id: p.id, name: p.name, status: p.status };
  const can = hasRole('automation');
  const btn = $('run-on-alert', HTMLButtonElement);
  show(btn, can);
  btn.disabled = p.status !== 'active';
  btn.title = p.status === 'active' ? 'Run the active version once on an alert you pick' : 'Only an active playbook runs: activate a version first.';
  if (changed) {
    $('runs-body').replaceChildren();
    show($('runs-table-wrap'), false);
    note('');
    loadRuns();
  }
}

export function hideRuns() {
  current = null;
  seq++;
}

// ---------------------------------------------------------------------------
// Run on an alert…

function progress(run) {
  const box = $('run-alert-progress');
  box.dataset.status = String(run.status || '');
  const took = durationText(runDurationMs(run));
  box.replaceChildren(
    statusChip(run.status), ' ',
    el('span', null, isEnded(run.status) ? `Run ${statusWord(run.status).toLowerCase()}${took ? ' in ' + took : ''}.` : `${statusWord(run.status)}…${took ? ' ' + took : ''}`),
    run.error ? el('pre', 'run-pre run-pre-error', String(run.error)) : null,
  );
  show(box, true);
}

async function openRunOnAlert() {
  if (!current) return;
  const d = $('run-alert-dialog', HTMLDialogElement);
  const pick = $('run-alert-pick', HTMLSelectElement);
  following?.abort();
  started = null;
  $('run-alert-title').textContent = `Run “${current.name}” on an alert`;
  $('run-alert-error').textContent = '';
  show($('run-alert-progress'), false);
  show($('run-alert-details'), false);
  const start = $('run-alert-start', HTMLButtonElement);
  start.disabled = true;
  pick.disabled = true;
  pick.replaceChildren(el('option', { value: '' }, 'Loading recent alerts…'));
  d.showModal();
  try {
    const data = await api('/api/alerts?limit=50');
    const alerts = Array.isArray(data?.alerts) ? data.alerts : [];
    if (alerts.length === 0) {
      pick.replaceChildren(el('option', { value: '' }, 'No alerts yet'));
      $('run-alert-error').textContent = 'There is no alert to run on: send a sample alert from the Incidents page first.';
      return;
    }
    pick.replaceChildren(...alerts.map((a) => el('option', { value: String(a.id) }, `${alertLabel(a)} · ${relTime(a.createdDateTime)}`)));
    pick.disabled = false;
    start.disabled = false;
    pick.focus();
  } catch (e) {
    pick.replaceChildren(el('option', { value: '' }, 'Alerts could not be loaded'));
    $('run-alert-error').textContent = `The alerts could not be loaded: ${messageOf(e)}`;
  }
}

async function startRun(event) {
  event.preventDefault();
  if (!current) return;
  const alertId = $('run-alert-pick', HTMLSelectElement).value;
  if (!alertId) {
    $('run-alert-error').textContent = 'Pick an alert.';
    return;
  }
  const start = $('run-alert-start', HTMLButtonElement);
  start.disabled = true;
  $('run-alert-error').textContent = '';
  try {
    const run = await api(`/api/playbooks/${encodeURIComponent(current.id)}/runs`, { method: 'POST', body: { alertId } });
    started = run;
    progress(run);
    show($('run-alert-details'), true);
    loadRuns();
    const ctl = new AbortController();
    following = ctl;
    const last = await followRun(run.id, (r) => {
      started = r;
      progress(r);
    }, ctl.signal);
    if (!ctl.signal.aborted) {
      started = last;
      loadRuns();
    }
  } catch (e) {
    if (!(e instanceof DOMException && e.name === 'AbortError')) {
      $('run-alert-error').textContent = `The run ${started ? 'could not be followed' : 'was not started'}: ${messageOf(e)}`;
    }
  } finally {
    start.disabled = false;
    if ($('run-alert-dialog', HTMLDialogElement).open) start.textContent = started ? 'Run again' : 'Run';
  }
}

export function initRuns() {
  const d = $('run-alert-dialog', HTMLDialogElement);
  $('run-on-alert').addEventListener('click', openRunOnAlert);
  $('runs-refresh').addEventListener('click', () => loadRuns());
  $('run-alert-form').addEventListener('submit', startRun);
  $('run-alert-close').addEventListener('click', () => d.close());
  $('run-alert-details').addEventListener('click', () => {
    if (!started) return;
    const run = started;
    d.close();
    openRun(run, { name: current?.name, onUpdate: () => loadRuns() });
  });
  d.addEventListener('close', () => {
    following?.abort();
    following = null;
    $('run-alert-start').textContent = 'Run';
  });
}
