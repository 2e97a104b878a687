// @ts-check
// The playbook page: documentation (Markdown, with its Mermaid diagram
// drawn), the code with line numbers, the versions, activation, Edit and
// Delete.

import { $, api, ApiError, confirmDialog, el, hasRole, messageOf, navigate, plural, show, timeEl, absTime, toast, viewSection } from './core.js';
import { loadRenderer, markdownFragment, README_OPTIONS } from './markdown-view.js';
import { diagramFigure } from './diagram.js';
import { ACTIVATE_ROLE, setActive, statusDetail, statusSwitch } from './playbooks.js';
import { statusLine, versionsOf } from './playbook-status.js';
import { editorPath } from './editor.js';
import { hideRuns, initRuns, showRuns } from './playbook-runs.js';

let seq = 0;
let page = null; // {playbook, versions, selected, files, activeFile}

const FILE_ORDER = ['playbook.py', 'README.md', 'manifest.json'];

function fileRank(path) {
  const i = FILE_ORDER.indexOf(path);
  return i < 0 ? FILE_ORDER.length : i;
}

// ---------------------------------------------------------------------------

let docsSeq = 0; // the latest renderDocs call; an older one that was waiting gives up

async function renderDocs(markdown, number) {
  const my = ++docsSeq;
  const box = $('playbook-docs');
  $('docs-version').textContent = number ? `README.md, version ${number}` : '';
  if (!markdown || !markdown.trim()) {
    box.replaceChildren(el('p', 'muted', 'This version has no README.md. Ask the agent to document the playbook, with a ```mermaid flow diagram, and save again.'));
    return;
  }
  const name = page ? page.playbook.name : '';
  const renderer = await loadRenderer().catch(() => null);
  if (my !== docsSeq) return;
  if (!renderer) {
    box.replaceChildren(
      el('p', 'muted small', 'The Markdown renderer could not be loaded: README.md is shown as it is.'),
      el('pre', { class: 'md-code', tabindex: '0' }, el('code', null, markdown)));
    return;
  }
  let diagrams = 0;
  const html = renderer.renderMarkdown(markdown, README_OPTIONS);
  box.replaceChildren(markdownFragment(html, renderer.MERMAID_SELECTOR, (src) => {
    diagrams++;
    return diagramFigure(src, diagrams === 1 ? `Flow diagram of ${name}` : 'Diagram');
  }));
  if (diagrams === 0) {
    box.append(el('p', 'muted small', 'No flow diagram: add a ```mermaid block to README.md.'));
  }
}

function codeView(file) {
  const content = String(file.content ?? '');
  const lines = content.replace(/\n$/, '').split('\n');
  const gutter = el('div', { class: 'code-gutter', 'aria-hidden': 'true' });
  const body = el('code', { class: 'code-body' });
  const nums = [];
  for (let i = 0; i < lines.length; i++) nums.push(String(i + 1));
  gutter.textContent = nums.join('\n');
  body.textContent = lines.join('\n');
  const pre = el('pre', { class: 'code', tabindex: '0', 'aria-label': `${file.path}, ${plural(lines.length, 'line', 'lines')}` }, gutter, body);
  return pre;
}

function renderFiles(version) {
  const files = (Array.isArray(version.files) ? version.files : []).slice()
    .sort((a, b) => fileRank(a.path) - fileRank(b.path) || String(a.path).localeCompare(String(b.path)));
  $('code-version').textContent = `version ${version.number} · ${plural(version.lines ?? 0, 'line', 'lines')} of Python`;
  const tabs = $('file-tabs');
  const panel = $('file-panel');
  if (files.length === 0) {
    tabs.replaceChildren();
    panel.replaceChildren(el('p', 'muted', 'This version has no files.'));
    return;
  }
  const select = (i, focus) => {
    const buttons = /** @type {HTMLElement[]} */ ([...tabs.children]);
    buttons.forEach((t, j) => {
      t.setAttribute('aria-selected', String(i === j));
      t.tabIndex = i === j ? 0 : -1;
    });
    const f = files[i];
    panel.setAttribute('aria-labelledby', buttons[i].id);
    panel.replaceChildren(codeView(f));
    if (focus) buttons[i].focus();
  };
  tabs.replaceChildren(...files.map((f, i) => {
    const t = el('button', { type: 'button', role: 'tab', class: 'file-tab', id: `file-tab-${i}`, 'aria-controls': 'file-panel', 'data-testid': 'file-tab' }, f.path);
    t.addEventListener('click', () => select(i, false));
    t.addEventListener('keydown', (e) => {
      let j = -1;
      if (e.key === 'ArrowRight') j = (i + 1) % files.length;
      else if (e.key === 'ArrowLeft') j = (i - 1 + files.length) % files.length;
      else if (e.key === 'Home') j = 0;
      else if (e.key === 'End') j = files.length - 1;
      if (j >= 0) {
        e.preventDefault();
        select(j, true);
      }
    });
    return t;
  }));
  select(0, false);
}

// Each version says whether it runs; the automation role may put any other
// one live (the latest, or back to an older one).
function renderVersions() {
  const list = $('versions');
  const { active, latest } = versionsOf(page.playbook);
  const canActivate = hasRole(ACTIVATE_ROLE);
  list.replaceChildren(...page.versions.map((v) => {
    const selected = v.number === page.selected;
    const warnings = Array.isArray(v.warnings) ? v.warnings.length : 0;
    const btn = el('button', { type: 'button', class: 'version', 'aria-pressed': String(selected), 'data-testid': 'version', 'data-number': String(v.number) },
      el('span', 'version-top',
        el('strong', null, `Version ${v.number}`),
        v.number === active ? el('span', { class: 'badge', 'data-testid': 'version-active' }, 'active') : null,
        v.number === latest ? el('span', 'badge', 'latest') : null,
      ),
      el('span', 'muted small', v.savedBy || '', ' · ', timeEl(v.savedAt)),
      el('span', 'muted small', `${plural(v.lines ?? 0, 'line', 'lines')}${warnings ? ' · ' + plural(warnings, 'warning', 'warnings') : ''}`),
    );
    btn.addEventListener('click', () => selectVersion(v.number));
    const item = el('li', null, btn);
    if (canActivate && v.number !== active) {
      const act = el('button', { type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'version-activate', 'aria-label': `Activate version ${v.number}` }, `Activate v${v.number}`);
      act.addEventListener('click', () => activateVersion(v.number, act));
      item.append(act);
    }
    return item;
  }));
}

async function activateVersion(n, btn) {
  const p = page.playbook;
  btn.disabled = true;
  try {
    const updated = await setActive(p, true, n);
    toast(`Version ${n} of “${p.name}” is now active.`);
    playbookUpdated(updated);
  } catch (e) {
    btn.disabled = false;
    showError(`Version ${n} was not activated: ${messageOf(e)}`);
  }
}

// playbookUpdated redraws what shows the status after an activation. The
// switch is redrawn only when something else changed the status: after
// its own click it is right already, and keeps the focus.
function playbookUpdated(updated, fromSwitch = false) {
  if (!page) return;
  const statusChanged = updated.status !== page.playbook.status;
  page.playbook = { ...page.playbook, ...updated };
  if (statusChanged && !fromSwitch) renderHeader();
  else renderStatusDetail();
  renderVersions();
  renderAbout();
  renderDeleteButton();
  showRuns(page.playbook);
}

let statusDetailSlot = el('span', null);

function renderStatusDetail() {
  statusDetailSlot.replaceChildren(statusDetail(page.playbook, { onUpdated: (updated) => playbookUpdated(updated) }));
}

function renderAbout() {
  const p = page.playbook;
  const { active, latest } = versionsOf(p);
  const rows = [
    ['Status', statusLine(p)],
    ['Active version', active === null ? 'none' : String(active)],
    ['Latest version', String(latest)],
    ['Created', `${p.createdBy || ''}, ${absTime(p.createdAt)}`],
    ['Last change', `${p.updatedBy || ''}, ${absTime(p.updatedAt)}`],
  ];
  $('playbook-about').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, v)]));
}

function renderWarnings(warnings) {
  const list = Array.isArray(warnings) ? warnings : [];
  show($('warnings-card'), list.length > 0);
  $('playbook-warnings').replaceChildren(...list.map((w) => {
    const where = [w.path, w.line ? `line ${w.line}` : ''].filter(Boolean).join(', ');
    return el('li', null, where ? el('span', 'problem-where', where) : null, el('span', null, String(w.message || '')));
  }));
}

function renderHeader() {
  const p = page.playbook;
  $('h-playbook').textContent = p.name;
  $('playbook-description').textContent = p.description || '';
  document.title = `${p.name} · Playbook Studio`;
  statusDetailSlot = el('span', null);
  $('playbook-status-slot').replaceChildren(
    statusSwitch(p, { label: 'Active', onUpdated: (updated) => playbookUpdated(updated, true) }),
    ' ',
    statusDetailSlot,
  );
  renderStatusDetail();
  const edit = $('playbook-edit', HTMLAnchorElement);
  edit.href = editorPath({ playbookId: p.id });
  if (!hasRole('author')) {
    edit.removeAttribute('href');
    edit.setAttribute('aria-disabled', 'true');
    edit.title = 'Editing needs the author role.';
  } else {
    edit.removeAttribute('aria-disabled');
    edit.title = '';
  }
  const editing = $('playbook-editing');
  if (p.editedBy) {
    editing.textContent = `${p.editedBy} is editing this playbook now.`;
    show(editing, true);
  } else show(editing, false);
  renderDeleteButton();
}

function renderDeleteButton() {
  const p = page.playbook;
  const del = $('playbook-delete', HTMLButtonElement);
  const can = hasRole('author') && p.status !== 'active';
  del.disabled = !can;
  del.title = p.status === 'active' ? 'Only a disabled playbook can be deleted: deactivate it first.' : (hasRole('author') ? 'Delete this playbook and all its versions' : 'Deleting needs the author role.');
}

async function selectVersion(n) {
  const my = seq;
  page.selected = n;
  renderVersions();
  try {
    const v = await api(`/api/playbooks/${encodeURIComponent(page.playbook.id)}/versions/${n}`);
    if (my !== seq) return;
    void renderDocs(v.documentation, v.number);
    renderFiles(v);
    renderWarnings(v.warnings);
  } catch (e) {
    if (my !== seq) return;
    showError(`Version ${n} could not be loaded: ${messageOf(e)}`);
  }
}

function showError(text) {
  $('playbook-error').textContent = text;
  show($('playbook-error'), true);
}

export async function showPlaybook(params) {
  const my = ++seq;
  const id = params.id;
  page = null;
  hideRuns();
  show($('playbook-error'), false);
  show($('playbook-content'), false);
  show($('playbook-editing'), false);
  show($('playbook-loading'), true);
  $('h-playbook').textContent = 'Playbook';
  $('playbook-description').textContent = '';
  $('playbook-status-slot').replaceChildren();
  viewSection('playbook').dataset.loaded = 'false';
  try {
    const [p, vs] = await Promise.all([
      api(`/api/playbooks/${encodeURIComponent(id)}`),
      api(`/api/playbooks/${encodeURIComponent(id)}/versions`),
    ]);
    if (my !== seq) return;
    const versions = (Array.isArray(vs?.versions) ? vs.versions : []).slice().sort((a, b) => b.number - a.number);
    page = { playbook: p, versions, selected: p.currentVersion };
    show($('playbook-loading'), false);
    renderHeader();
    renderVersions();
    renderAbout();
    const docs = renderDocs(p.documentation, p.currentVersion);
    renderWarnings(p.warnings);
    showRuns(p);
    show($('playbook-content'), true);
    await docs;
    if (my !== seq) return;
    viewSection('playbook').dataset.loaded = 'true';
    const v = await api(`/api/playbooks/${encodeURIComponent(id)}/versions/${p.currentVersion}`);
    if (my !== seq) return;
    renderFiles(v);
  } catch (e) {
    if (my !== seq) return;
    show($('playbook-loading'), false);
    if (e instanceof ApiError && e.status === 404) {
      $('h-playbook').textContent = 'No such playbook';
      showError('There is no such playbook: it may have been deleted.');
    } else {
      showError(`The playbook could not be loaded: ${messageOf(e)}`);
    }
  }
}

async function deletePlaybook() {
  if (!page) return;
  const p = page.playbook;
  const yes = await confirmDialog({
    title: `Delete “${p.name}”?`,
    text: `This deletes the playbook and its ${plural(page.versions.length, 'version', 'versions')} for everyone. It cannot be undone.`,
    ok: 'Delete playbook',
  });
  if (!yes) return;
  try {
    await api(`/api/playbooks/${encodeURIComponent(p.id)}`, { method: 'DELETE' });
    toast(`“${p.name}” was deleted.`);
    navigate('/playbooks');
  } catch (e) {
    showError(`Not deleted: ${messageOf(e)}`);
  }
}

export function initPlaybookPage() {
  $('playbook-delete').addEventListener('click', deletePlaybook);
  initRuns();
}
