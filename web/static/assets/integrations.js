// @ts-check
// Automation ▸ Integration profiles: the list, the Create/Edit dialog (also
// opened over the IDE by its Add integration link, so the edit session and
// the framed IDE stay as they are), Delete with confirmation and Test
// connection. Secrets are typed into password inputs, sent once, and shown
// afterwards only as "set": nothing ever fills them back in.

import { $, api, ApiError, confirmDialog, el, hasRole, messageOf, show, timeEl, toast } from './core.js';
import {
  buildCreateBody, buildPatchBody, changedAt, changedBy, fieldOfError, fieldsFor, formValue, inUseText,
  METHOD_ORDER, methodLabel, missingField, secretSummary, testResultText,
} from './integration-model.js';

/** @typedef {{ id: string, name: string, description?: string, baseUrl: string, authMethod: string, config?: Record<string, unknown>, secretsSet?: string[], inUseBy?: string[], createdAt?: string, createdBy?: string, updatedAt?: string, updatedBy?: string }} Profile */

let seq = 0;
let visible = false;
/** @type {{ mode: 'create' | 'edit', profile: Profile | null }} */
let editing = { mode: 'create', profile: null };
/** @type {Profile | null} */
let testing = null;

const canChange = () => hasRole('automation');
const idOf = (key) => 'int-' + key.replace(/\./g, '-');

// ---------------------------------------------------------------------------
// The list

function setPageError(message) {
  $('integrations-error-text').textContent = message;
  show($('integrations-error'), !!message);
}

/** @param {Profile} p */
function row(p) {
  const actions = el('td', { class: 'actions nowrap' });
  if (canChange()) {
    const test = el('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'integration-test' }, 'Test');
    test.setAttribute('aria-label', `Test the connection of ${p.name}`);
    test.addEventListener('click', () => openTest(p));
    const edit = el('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'integration-edit' }, 'Edit');
    edit.setAttribute('aria-label', `Edit ${p.name}`);
    edit.addEventListener('click', () => openEdit(p));
    const del = el('button', { type: 'button', class: 'btn btn-secondary btn-sm btn-danger-text', 'data-testid': 'integration-delete' }, 'Delete');
    del.setAttribute('aria-label', `Delete ${p.name}`);
    del.addEventListener('click', () => remove(p, del));
    actions.append(test, ' ', edit, ' ', del);
  }
  const by = changedBy(p);
  return el('tr', { 'data-testid': 'integration-row', 'data-name': p.name, 'data-id': p.id },
    el('td', null,
      el('div', { class: 'row-title', 'data-testid': 'integration-name' }, p.name),
      p.description ? el('div', 'muted small clamp-1', p.description) : null),
    el('td', { class: 'mono small', 'data-testid': 'integration-baseurl' }, p.baseUrl),
    el('td', { 'data-testid': 'integration-method', 'data-method': p.authMethod }, methodLabel(p.authMethod)),
    el('td', { class: 'small' }, by ? el('div', null, by) : null, changedAt(p) ? timeEl(changedAt(p)) : null),
    el('td', { class: 'small', 'data-testid': 'integration-inuse' }, inUseText(p)),
    actions,
  );
}

async function load() {
  const my = ++seq;
  show($('integrations-loading'), true);
  let profiles;
  try {
    const data = await api('/api/integration-profiles');
    profiles = Array.isArray(data?.profiles) ? data.profiles : [];
  } catch (e) {
    if (my !== seq) return;
    show($('integrations-loading'), false);
    setPageError(`The integration profiles could not be loaded: ${messageOf(e)}`);
    return;
  }
  if (my !== seq) return;
  show($('integrations-loading'), false);
  profiles.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  $('integrations-body').replaceChildren(...profiles.map(row));
  show($('integrations-table-card'), profiles.length > 0);
  show($('integrations-empty'), profiles.length === 0);
}

async function remove(p, btn) {
  const yes = await confirmDialog({
    title: `Delete “${p.name}”?`,
    text: `Playbooks that call ${p.baseUrl} through this profile can no longer reach it. An active playbook’s profile cannot be deleted.`,
    ok: 'Delete profile',
  });
  if (!yes) {
    btn.focus();
    return;
  }
  setPageError('');
  try {
    await api(`/api/integration-profiles/${encodeURIComponent(p.id)}`, { method: 'DELETE' });
    toast(`“${p.name}” was deleted.`);
  } catch (e) {
    setPageError(`“${p.name}” was not deleted: ${messageOf(e)}`);
  }
  await load();
  $('h-integrations').focus({ preventScroll: true });
}

/** Shows the tab; /integrations?new=1 opens the Create dialog at once. */
export function showIntegrations(search) {
  visible = true;
  show($('integration-add'), canChange());
  show($('integrations-readonly'), !canChange());
  setPageError('');
  load();
  if (search && search.get('new') === '1') {
    history.replaceState(null, '', '/integrations');
    if (canChange()) openCreate();
  }
}

export function hideIntegrations() {
  visible = false;
  seq++;
}

// ---------------------------------------------------------------------------
// Create and edit

function clearErrors() {
  $('integration-error').textContent = '';
  for (const node of /** @type {NodeListOf<HTMLElement>} */ ($('integration-form').querySelectorAll('[aria-invalid]'))) {
    node.setAttribute('aria-invalid', 'false');
  }
  for (const node of $('integration-form').querySelectorAll('p.field-error[id^="int-err-"]')) node.textContent = '';
}

/** Puts an error next to its field (or at the top when no field is named) and focuses it. */
function showError(key, message) {
  const input = key ? document.getElementById(idOf(key)) : null;
  const slot = key ? document.getElementById('int-err-' + key.replace(/\./g, '-')) : null;
  if (input && slot && !input.closest('[hidden]')) {
    slot.textContent = message;
    input.setAttribute('aria-invalid', 'true');
    $('integration-error').textContent = 'Check the field marked below.';
    input.focus();
    return;
  }
  $('integration-error').textContent = message;
}

/** One field of a method: its label, input, hint and error slot. */
function fieldNode(f, value, profile) {
  const id = idOf(f.key);
  const errId = 'int-err-' + f.key.replace(/\./g, '-');
  const describedBy = [f.hint ? id + '-hint' : '', errId].filter(Boolean).join(' ');
  /** @type {HTMLInputElement | HTMLSelectElement} */
  let input;
  if (f.kind === 'select') {
    input = /** @type {HTMLSelectElement} */ (el('select', { class: 'input', id, name: f.key }));
    for (const o of f.options || []) input.append(el('option', { value: o.value }, o.label));
    input.value = value;
  } else {
    input = /** @type {HTMLInputElement} */ (el('input', {
      class: 'input', id, name: f.key,
      type: f.kind === 'secret' ? 'password' : f.kind === 'url' ? 'url' : 'text',
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: f.placeholder,
    }));
    input.value = value;
  }
  input.dataset.testid = 'integration-field-' + f.key;
  input.setAttribute('aria-describedby', describedBy);
  input.setAttribute('aria-invalid', 'false');
  if (f.required) input.required = true;
  const label = el('label', { class: 'field-label', for: id }, f.label);
  if (f.kind === 'secret' && profile) {
    label.append(' ', el('span', { class: 'badge secret-state', 'data-testid': 'secret-state-' + f.name }, secretSummary(profile).find((s) => s.name === f.name)?.state || 'not set'));
  }
  return el('div', { class: 'field', 'data-field': f.key },
    label, input,
    f.hint ? el('p', { class: 'field-hint', id: id + '-hint' }, f.hint) : null,
    el('p', { class: 'field-error', id: errId }));
}

function renderMethodFields(method, config, profile) {
  $('int-method-fields').replaceChildren(...fieldsFor(method).map((f) => fieldNode(f, formValue(f, config), profile)));
}

function formValues() {
  const form = /** @type {HTMLFormElement} */ ($('integration-form'));
  /** @type {Record<string, string>} */
  const values = {};
  for (const node of /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll('input[name], select[name], textarea[name]'))) {
    values[node.name] = node.value;
  }
  return values;
}

function resetDialog() {
  /** @type {HTMLFormElement} */ ($('integration-form')).reset();
  clearErrors();
  const save = /** @type {HTMLButtonElement} */ ($('integration-save'));
  save.disabled = false;
  save.removeAttribute('aria-busy');
}

/** Opens the Create dialog (from the tab, /integrations?new=1 or the IDE view). */
export function openCreate() {
  if (!canChange()) {
    toast('Creating integration profiles needs the automation role.', 'error');
    return;
  }
  editing = { mode: 'create', profile: null };
  resetDialog();
  $('integration-title').textContent = 'New integration profile';
  $('integration-desc').hidden = false;
  $('integration-save').textContent = 'Create';
  show($('int-create-only'), true);
  show($('int-edit-only'), false);
  show($('int-credentials'), true);
  const select = /** @type {HTMLSelectElement} */ ($('int-authMethod'));
  select.value = METHOD_ORDER[0];
  renderMethodFields(select.value, null, null);
  /** @type {HTMLDialogElement} */ ($('integration-dialog')).showModal();
  $('int-name').focus();
}

/** @param {Profile} p */
function openEdit(p) {
  editing = { mode: 'edit', profile: p };
  resetDialog();
  $('integration-title').textContent = `Edit “${p.name}”`;
  $('integration-desc').hidden = true;
  $('integration-save').textContent = 'Save';
  /** @type {HTMLInputElement} */ ($('int-name')).value = p.name;
  /** @type {HTMLTextAreaElement} */ ($('int-description')).value = p.description || '';
  show($('int-create-only'), false);
  show($('int-edit-only'), true);
  $('int-fixed').replaceChildren(
    el('dt', null, 'Base API URL'), el('dd', { class: 'mono' }, p.baseUrl),
    el('dt', null, 'Authentication method'), el('dd', null, methodLabel(p.authMethod)),
    el('dt', null, 'Changing them'), el('dd', 'muted', 'Not possible: create a new profile and delete this one.'),
  );
  $('int-secret-states').replaceChildren(...secretSummary(p).map((s) =>
    el('li', { 'data-testid': 'secret-summary-' + s.name }, s.label + ': ', el('span', { class: 'badge secret-state', 'data-state': s.state }, s.state))));
  /** @type {HTMLInputElement} */ ($('int-replace')).checked = false;
  show($('int-credentials'), false);
  renderMethodFields(p.authMethod, p.config || {}, p);
  /** @type {HTMLDialogElement} */ ($('integration-dialog')).showModal();
  $('int-name').focus();
}

async function submitProfile(event) {
  event.preventDefault();
  clearErrors();
  const values = formValues();
  const { mode, profile } = editing;
  const replacing = /** @type {HTMLInputElement} */ ($('int-replace')).checked;
  const method = mode === 'create' ? values.authMethod : profile?.authMethod || '';
  const methodKeys = fieldsFor(method).map((f) => f.key);
  const keys = mode === 'create' ? ['name', 'baseUrl', ...methodKeys] : ['name', ...(replacing ? methodKeys : [])];
  const missing = missingField(method, values, keys);
  if (missing) {
    showError(missing.key, missing.message);
    return;
  }
  const save = /** @type {HTMLButtonElement} */ ($('integration-save'));
  save.disabled = true;
  save.setAttribute('aria-busy', 'true');
  try {
    let saved;
    if (mode === 'create') {
      saved = await api('/api/integration-profiles', { method: 'POST', body: buildCreateBody(values) });
      toast(`“${saved?.name || values.name}” was created.`);
    } else if (profile) {
      const body = buildPatchBody(profile, values, replacing);
      if (Object.keys(body).length > 0) {
        saved = await api(`/api/integration-profiles/${encodeURIComponent(profile.id)}`, { method: 'PATCH', body });
        toast(`“${saved?.name || profile.name}” was saved.`);
      }
    }
    /** @type {HTMLDialogElement} */ ($('integration-dialog')).close('saved');
    if (visible) load();
  } catch (e) {
    const key = e instanceof ApiError ? fieldOfError(e, method) : null;
    showError(key, messageOf(e));
  } finally {
    save.disabled = false;
    save.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------------------
// Test connection

/** @param {Profile} p */
function openTest(p) {
  testing = p;
  $('integration-test-title').textContent = `Test “${p.name}”`;
  const result = $('int-test-result');
  result.textContent = '';
  delete result.dataset.ok;
  /** @type {HTMLDialogElement} */ ($('integration-test-dialog')).showModal();
  $('int-test-path').focus();
}

async function runTest(event) {
  event.preventDefault();
  if (!testing) return;
  const result = $('int-test-result');
  const btn = /** @type {HTMLButtonElement} */ ($('integration-test-run'));
  const body = {
    method: /** @type {HTMLSelectElement} */ ($('int-test-method')).value,
    path: /** @type {HTMLInputElement} */ ($('int-test-path')).value.trim() || '/',
  };
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  result.textContent = 'Testing…';
  delete result.dataset.ok;
  try {
    const r = await api(`/api/integration-profiles/${encodeURIComponent(testing.id)}/test`, { method: 'POST', body });
    result.textContent = testResultText(r || {});
    result.dataset.ok = r && r.ok ? 'true' : 'false';
    result.dataset.status = String(r?.status ?? '');
  } catch (e) {
    result.textContent = `Failed · ${messageOf(e)}`;
    result.dataset.ok = 'false';
    result.dataset.status = '';
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------------------

export function initIntegrations() {
  const select = /** @type {HTMLSelectElement} */ ($('int-authMethod'));
  select.replaceChildren(...METHOD_ORDER.map((m) => el('option', { value: m }, methodLabel(m))));
  select.addEventListener('change', () => {
    clearErrors();
    renderMethodFields(select.value, null, null);
  });
  $('int-replace').addEventListener('change', (e) => {
    const on = /** @type {HTMLInputElement} */ (e.target).checked;
    show($('int-credentials'), on);
    if (on) {
      const first = /** @type {HTMLElement | null} */ ($('int-method-fields').querySelector('input, select'));
      if (first) first.focus();
    }
  });
  $('integration-form').addEventListener('submit', submitProfile);
  $('integration-cancel').addEventListener('click', () => /** @type {HTMLDialogElement} */ ($('integration-dialog')).close('cancel'));
  // Typed secrets do not outlive the dialog.
  $('integration-dialog').addEventListener('close', () => {
    for (const input of /** @type {NodeListOf<HTMLInputElement>} */ ($('int-method-fields').querySelectorAll('input[type="password"]'))) input.value = '';
  });
  $('integration-add').addEventListener('click', () => openCreate());
  $('integration-test-form').addEventListener('submit', runTest);
  $('integration-test-close').addEventListener('click', () => /** @type {HTMLDialogElement} */ ($('integration-test-dialog')).close());
  $('integrations-error-dismiss').addEventListener('click', () => setPageError(''));

  // The IDE view's Add integration link: the dialog opens over the frame, so
  // the edit session and the IDE stay; a modified click still opens
  // /integrations?new=1 in a new tab.
  const link = $('editor-add-integration');
  show(link, canChange());
  link.addEventListener('click', (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    openCreate();
  });
}
