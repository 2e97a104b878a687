// @ts-check
// The Playbooks tab: the list, the status switch, Create ▸ Playbook generator.

import { $, api, ApiError, el, hasRole, messageOf, show, timeEl, toast, viewSection } from './core.js';
import { startEditing } from './editor.js';
import { pendingVersion, statusLine } from './playbook-status.js';

// ---------------------------------------------------------------------------
// The status switch (also on the playbook page)

/**
 * Activates version (null: the latest) of playbook p, or deactivates it;
 * returns the server's Playbook. Only the automation role may: a save
 * never puts code live, activation does.
 * @param {{ id: string }} p
 * @param {boolean} activate
 * @param {number | null} [version]
 */
export function setActive(p, activate, version = null) {
  const path = `/api/playbooks/${encodeURIComponent(p.id)}/${activate ? 'activate' : 'deactivate'}`;
  return api(path, activate && version ? { method: 'POST', body: { version } } : { method: 'POST' });
}

export const ACTIVATE_ROLE = 'automation';
const NO_ROLE = 'Activating and deactivating playbooks needs the automation role.';

/**
 * The status line and, for the automation role, an "Activate vN" button
 * when a saved version is not live yet. onUpdated(playbook) runs with the
 * server's answer.
 * @param {{ id: string, name: string, status: string }} p
 * @param {{ onUpdated?: (playbook: object) => void }} [opts]
 */
export function statusDetail(p, { onUpdated } = {}) {
  const line = el('span', { class: 'muted small', 'data-testid': 'playbook-status-line' }, statusLine(p));
  const box = el('span', { class: 'status-detail' }, line);
  const pending = pendingVersion(p);
  if (pending !== null && hasRole(ACTIVATE_ROLE)) {
    const btn = el('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'activate-latest' }, `Activate v${pending}`);
    const err = el('span', { class: 'switch-error small', role: 'alert' });
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      err.textContent = '';
      try {
        const updated = await setActive(p, true, pending);
        toast(`Version ${pending} of “${p.name}” is now active.`);
        if (onUpdated) onUpdated({ ...p, ...updated });
      } catch (e) {
        err.textContent = messageOf(e);
        btn.disabled = false;
      }
    });
    box.append(' ', btn, err);
  }
  return box;
}

/**
 * A switch that activates (the latest version) or deactivates a playbook.
 * onUpdated(playbook) runs with the server's answer.
 * @param {{ id: string, name: string, status: string }} p
 * @param {{ onUpdated?: (playbook: object) => void, label?: string }} [opts]
 */
export function statusSwitch(p, { onUpdated, label } = {}) {
  const canChange = hasRole(ACTIVATE_ROLE);
  const word = el('span', { class: 'switch-word', 'aria-hidden': 'true' });
  const btn = el('button', {
    type: 'button',
    role: 'switch',
    class: 'switch',
    'data-testid': 'status-switch',
    'aria-label': label || `Active: ${p.name}`,
  }, el('span', { class: 'switch-track', 'aria-hidden': 'true' }, el('span', { class: 'switch-thumb' })), word);
  const err = el('span', { class: 'switch-error small', role: 'alert', 'data-testid': 'status-error' });
  const wrap = el('span', { class: 'switch-wrap' }, btn, err);

  let current = p;
  const paint = () => {
    const active = current.status === 'active';
    btn.setAttribute('aria-checked', String(active));
    btn.dataset.status = current.status;
    word.textContent = active ? 'Active' : 'Disabled';
  };
  paint();

  if (!canChange) {
    btn.disabled = true;
    btn.title = NO_ROLE;
  }
  btn.addEventListener('click', async () => {
    const activate = current.status !== 'active';
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    err.textContent = '';
    try {
      // The version this page shows, never "whatever is latest when the
      // request lands": a save made meanwhile stays unreviewed, not live.
      const shown = /** @type {any} */ (current).latestVersion || /** @type {any} */ (current).currentVersion || null;
      const updated = await setActive(current, activate, activate ? shown : null);
      current = { ...current, ...updated };
      paint();
      const v = /** @type {any} */ (current).activeVersion;
      toast(activate ? `“${current.name}” is now active${v ? ` at version ${v}` : ''}.` : `“${current.name}” is now disabled.`);
      if (onUpdated) onUpdated(current);
    } catch (e) {
      err.textContent = messageOf(e);
    } finally {
      btn.disabled = !canChange;
      btn.removeAttribute('aria-busy');
    }
  });
  return wrap;
}

// ---------------------------------------------------------------------------
// The list

let loadSeq = 0;

function savedCell(cell, v) {
  cell.replaceChildren();
  if (v.savedBy) cell.append(el('span', null, v.savedBy), el('span', { class: 'muted' }, ' · '));
  cell.append(timeEl(v.savedAt));
}

function row(p) {
  const name = el('a', { href: `/playbooks/${encodeURIComponent(p.id)}`, 'data-route': '', class: 'row-title', 'data-testid': 'playbook-link' }, p.name);
  const nameCell = el('td', null, name);
  if (p.description) nameCell.append(el('div', { class: 'muted small clamp' }, p.description));
  const when = el('td', { class: 'nowrap', 'data-testid': 'playbook-saved' }, el('span', { class: 'muted' }, '…'));
  // The switch stays put (and keeps the focus); the line under it follows.
  const detail = el('div', null);
  const paintDetail = (q) => detail.replaceChildren(statusDetail(q, { onUpdated: paintDetail }));
  paintDetail(p);
  const statusCell = el('td', null, statusSwitch(p, { onUpdated: paintDetail }), detail);
  const tr = el('tr', { 'data-testid': 'playbook-row', 'data-name': p.name, 'data-id': p.id },
    nameCell,
    statusCell,
    el('td', { class: 'num', 'data-testid': 'playbook-version' }, String(p.currentVersion ?? '')),
    when,
  );
  tr.savedCell = when;
  return tr;
}

// "Last saved" comes from each playbook's newest version, a few at a time.
async function fillSaved(rows, seq) {
  const queue = rows.slice();
  const worker = async () => {
    while (queue.length && seq === loadSeq) {
      const tr = queue.shift();
      try {
        const data = await api(`/api/playbooks/${encodeURIComponent(tr.dataset.id)}/versions`);
        const vs = Array.isArray(data?.versions) ? data.versions : [];
        const newest = vs.reduce((a, b) => (!a || b.number > a.number ? b : a), null);
        if (newest && seq === loadSeq) savedCell(tr.savedCell, newest);
      } catch (_) {
        tr.savedCell.replaceChildren(el('span', { class: 'muted' }, 'unknown'));
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

export async function loadPlaybooks() {
  const seq = ++loadSeq;
  show($('playbooks-error'), false);
  show($('playbooks-loading'), !$('playbooks-body').hasChildNodes());
  let list;
  try {
    const data = await api('/api/playbooks');
    list = Array.isArray(data?.playbooks) ? data.playbooks : [];
  } catch (e) {
    if (seq !== loadSeq) return;
    show($('playbooks-loading'), false);
    $('playbooks-error-text').textContent = `The playbooks could not be loaded: ${messageOf(e)}`;
    show($('playbooks-error'), true);
    return;
  }
  if (seq !== loadSeq) return;
  show($('playbooks-loading'), false);
  list.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const rows = list.map(row);
  $('playbooks-body').replaceChildren(...rows);
  fillSaved(rows, seq);
  show($('playbooks-table-card'), list.length > 0);
  show($('playbooks-empty'), list.length === 0);
  viewSection('playbooks').dataset.loaded = 'true';
}

// ---------------------------------------------------------------------------
// Create ▸ Playbook generator

function menuOpen(open) {
  const btn = $('create-menu', HTMLButtonElement);
  const menu = $('create-menu-list');
  btn.setAttribute('aria-expanded', String(open));
  menu.hidden = !open;
  if (open) $('create-generator').focus();
}

/** Validates a playbook name as the server does; returns a sentence or ''. */
export function nameProblem(raw) {
  const name = String(raw);
  if (name.trim() === '') return 'Give the playbook a name.';
  if (/\p{Cc}/u.test(name)) return 'A playbook name cannot hold control characters (tabs, line breaks).';
  const n = Array.from(name.trim()).length;
  if (n > 100) return `A playbook name has 1 to 100 characters; this one has ${n}.`;
  return '';
}

function setCreateError(message) {
  const input = $('create-name');
  $('create-error').textContent = message;
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

export function openCreateDialog() {
  if (!hasRole('author')) {
    toast('Creating playbooks needs the author role.', 'error');
    return;
  }
  const d = $('create-dialog', HTMLDialogElement);
  $('create-form', HTMLFormElement).reset();
  setCreateError('');
  $('create-continue', HTMLButtonElement).disabled = false;
  d.showModal();
  $('create-name').focus();
}

async function submitCreate(event) {
  event.preventDefault();
  const input = $('create-name', HTMLInputElement);
  const name = input.value;
  const problem = nameProblem(name);
  if (problem) {
    setCreateError(problem);
    input.focus();
    return;
  }
  setCreateError('');
  const btn = $('create-continue', HTMLButtonElement);
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  const request = { name: name.trim() };
  performance.mark('pbs:continue');
  try {
    const started = await api('/api/edit-sessions', { method: 'POST', body: request });
    $('create-dialog', HTMLDialogElement).close();
    startEditing(request, { started });
  } catch (e) {
    if (e instanceof ApiError && ['invalid_name', 'playbook_name_taken', 'playbook_limit', 'bad_request'].includes(e.code)) {
      setCreateError(messageOf(e));
      input.focus();
    } else {
      // Another session of yours, a lock, a busy server: the IDE view explains
      // and offers what can be done.
      $('create-dialog', HTMLDialogElement).close();
      startEditing(request, { error: e });
    }
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

export function initPlaybooks() {
  const btn = $('create-menu', HTMLButtonElement);
  const menu = $('create-menu-list');
  if (!hasRole('author')) {
    btn.disabled = true;
    $('create-hint').textContent = 'Creating playbooks needs the author role.';
    show($('create-hint'), true);
    $('empty-create', HTMLButtonElement).disabled = true;
  }
  btn.addEventListener('click', () => menuOpen(menu.hidden));
  btn.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      menuOpen(true);
    }
  });
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' || e.key === 'Tab') {
      if (e.key === 'Escape') e.preventDefault();
      menuOpen(false);
      if (e.key === 'Escape') btn.focus();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp' || e.key === 'Home' || e.key === 'End') {
      e.preventDefault(); // one item: it keeps the focus
    }
  });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !(e.target instanceof Element && e.target.closest('.menu-wrap'))) menuOpen(false);
  });
  $('create-generator').addEventListener('click', () => {
    menuOpen(false);
    openCreateDialog();
  });
  $('empty-create').addEventListener('click', openCreateDialog);
  $('create-form').addEventListener('submit', submitCreate);
  $('create-cancel').addEventListener('click', () => $('create-dialog', HTMLDialogElement).close());
  $('create-name').addEventListener('input', () => {
    if ($('create-error').textContent) setCreateError('');
  });
  $('playbooks-retry').addEventListener('click', loadPlaybooks);
}

export function showPlaybooks() {
  loadPlaybooks();
}
