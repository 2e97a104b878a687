// @ts-check
// The playbook page: documentation (Markdown, with its Mermaid diagram
// drawn), the code with line numbers, the versions, activation, Edit and
// Delete.

import { $, api, ApiError, confirmDialog, el, hasRole, messageOf, navigate, plural, show, timeEl, absTime, toast, viewSection } from './core.js';
import { loadRenderer, markdownFragment, README_OPTIONS } from './markdown-view.js';
import { diagramFigure } from './diagram.js';
import { statusSwitch } from './playbooks.js';
import { editorPath } from './editor.js';

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

function renderVersions() {
  const list = $('versions');
  list.replaceChildren(...page.versions.map((v) => {
    const current = v.number === page.playbook.currentVersion;
    const selected = v.number === page.selected;
    const warnings = Array.isArray(v.warnings) ? v.warnings.length : 0;
    const btn = el('button', { type: 'button', class: 'version', 'aria-pressed': String(selected), 'data-testid': 'version', 'data-number': String(v.number) },
      el('span', 'version-top',
        el('strong', null, `Version ${v.number}`),
        current ? el('span', 'badge', 'current') : null,
      ),
      el('span', 'muted small', v.savedBy || '', ' · ', timeEl(v.savedAt)),
      el('span', 'muted small', `${plural(v.lines ?? 0, 'line', 'lines')}${warnings ? ' · ' + plural(warnings, 'warning', 'warnings') : ''}`),
    );
    btn.addEventListener('click', () => selectVersion(v.number));
    return el('li', null, btn);
  }));
}

function renderAbout() {
  const p = page.playbook;
  const rows = [
    ['Status', p.status === 'active' ? 'Active' : 'Disabled'],
    ['Current version', String(p.currentVersion)],
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
  $('playbook-status-slot').replaceChildren(statusSwitch(p, {
    label: 'Active',
    onUpdated: (updated) => {
      page.playbook = { ...page.playbook, ...updated };
      renderAbout();
      renderDeleteButton();
    },
  }));
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
}
