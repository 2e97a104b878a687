// The chat view's script (runs in the webview; bundled by esbuild). It draws
// the items the extension sends and posts the user's actions back. All text
// goes in through textContent, except Markdown, which the shared renderer
// turns into safe HTML (no raw HTML, allowed links only), and mermaid's
// sanitized SVG.
import type { FromWebview, Item, Mode, Status, TemplateInfo, ToWebview, ViewState } from '../agent/protocol';
import { MERMAID_SELECTOR, renderMarkdown } from '../../../../web/src/markdown.js';

interface VsCodeApi {
  postMessage(msg: FromWebview): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const post = (m: FromWebview) => vscode.postMessage(m);

let state: ViewState | undefined;
const itemEls = new Map<string, HTMLElement>();
/** Streamed text not drawn yet, by item id (drawn once per animation frame). */
const pendingDeltas = new Map<string, string>();

// ---- small DOM helpers ----

type Attrs = Record<string, string | boolean | undefined>;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string | undefined | false)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'testid') el.setAttribute('data-testid', String(v));
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

function button(label: string, testid: string, onClick: () => void, attrs: Attrs = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', testid, ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;

// ---- Markdown: the one dialect shared with the portal and the preview ----

// A README's # is an h3 here, as in the portal; a single newline in the
// model's text is a line break.
const CHAT_MARKDOWN = { headingOffset: 2, breaks: true };

function markdown(src: string, into: HTMLElement): void {
  // The renderer's HTML is safe to parse: raw HTML in the text is escaped,
  // links are http(s), mailto or relative only (see web/src/markdown.js).
  into.innerHTML = renderMarkdown(src, CHAT_MARKDOWN);
}

function drawDiagrams(root: HTMLElement): void {
  const m = window.playbookMermaid;
  if (m) void m.renderAll(root).then(() => stickToBottom());
}

function diagramBlock(source: string, testid: string): HTMLElement {
  return h('pre', { class: 'mermaid', testid }, source);
}

// ---- items ----

const CARD_TOOLS = new Set(['plan_respond', 'request_act_mode', 'ask_followup_question', 'validate', 'attempt_completion']);

function renderItem(item: Item): HTMLElement {
  const base = { 'data-item-id': item.id } as Attrs;
  switch (item.kind) {
    case 'user':
      return h('div', { ...base, class: 'msg user', testid: 'message-user', 'data-mode': item.mode }, h('div', { class: 'bubble' }, item.text));
    case 'assistant': {
      const body = h('div', { class: 'md' });
      markdown(item.text, body);
      return h('div', { ...base, class: 'msg assistant', testid: 'message-assistant', 'data-streaming': item.streaming ? 'true' : 'false' }, body);
    }
    case 'tool': {
      const icon = { preparing: '…', running: '⟳', done: '✓', error: '✗', refused: '⊘' }[item.status];
      // Tools whose result has its own card (plan, question, validation, completion) show no extra line once done.
      const quiet = item.status === 'done' && CARD_TOOLS.has(item.tool);
      const row = h('div', { ...base, class: `tool ${item.status}${quiet ? ' quiet' : ''}`, testid: 'tool', 'data-tool': item.tool, 'data-status': item.status, 'data-path': item.path },
        h('span', { class: 'icon' }, icon), ' ');
      if (item.path && (item.status === 'done') && item.tool !== 'list_files') {
        const link = button(item.title, 'open-file', () => post({ type: 'openFile', path: item.path! }), { class: 'linkish' });
        row.append(link);
      } else {
        row.append(h('span', {}, item.title));
      }
      if (item.detail) row.append(h('div', { class: 'detail' }, item.detail));
      return row;
    }
    case 'approval': {
      const card = h('div', { ...base, class: `card approval ${item.state}`, testid: 'approval', 'data-state': item.state, 'data-path': item.path, 'data-tool': item.tool },
        h('div', { class: 'card-title' }, item.summary));
      const pre = h('pre', { class: 'diff', testid: 'approval-preview' });
      for (const line of item.preview.split('\n')) {
        const cls = line.startsWith('+ ') ? 'add' : line.startsWith('- ') ? 'del' : line.startsWith('@@') ? 'fold' : '';
        pre.append(h('span', { class: cls }, line + '\n'));
      }
      card.append(pre);
      if (item.state === 'pending') {
        card.append(h('div', { class: 'buttons' },
          button('Approve', 'approve', () => post({ type: 'approve', id: item.id }), { class: 'primary' }),
          button('Reject', 'reject', () => post({ type: 'reject', id: item.id }), { class: 'secondary' })),
        h('div', { class: 'hint' }, 'Or type what you want instead below: sending it rejects this change with your comment.'));
      } else {
        const label = { approved: 'Approved', rejected: 'Rejected', auto: 'Approved automatically', cancelled: 'Cancelled', pending: '' }[item.state];
        card.append(h('div', { class: 'state' }, label + (item.feedback ? `: ${item.feedback}` : '')));
      }
      return card;
    }
    case 'plan': {
      const body = h('div', { class: 'md' });
      markdown(item.plan, body);
      const card = h('div', { ...base, class: 'card plan', testid: 'plan' },
        h('div', { class: 'card-title' }, 'Plan'), body,
        h('div', { class: 'diagram', testid: 'plan-diagram' }, diagramBlock(item.diagram, 'plan-mermaid')));
      return card;
    }
    case 'actRequest': {
      const card = h('div', { ...base, class: `card act ${item.state}`, testid: 'act-request', 'data-state': item.state }, h('div', {}, item.message));
      if (item.state === 'pending') {
        card.append(h('div', { class: 'buttons' }, button('Switch to Act mode', 'switch-to-act', () => post({ type: 'switchToAct', id: item.id }), { class: 'primary' })),
          h('div', { class: 'hint' }, 'Or reply below to change the plan.'));
      } else {
        card.append(h('div', { class: 'state' }, { switched: 'Switched to Act mode', declined: 'Stayed in Plan mode', cancelled: 'Cancelled', pending: '' }[item.state]));
      }
      return card;
    }
    case 'question': {
      const card = h('div', { ...base, class: `card question ${item.state}`, testid: 'question', 'data-state': item.state });
      const q = h('div', { class: 'md' });
      markdown(item.question, q);
      card.append(q);
      if (item.state === 'pending') {
        const opts = h('div', { class: 'buttons' });
        for (const o of item.options) opts.append(button(o, 'question-option', () => post({ type: 'answer', id: item.id, text: o }), { class: 'secondary' }));
        card.append(opts, h('div', { class: 'hint' }, 'Answer below, or pick a suggestion.'));
      } else if (item.answer) {
        card.append(h('div', { class: 'state' }, `Answer: ${item.answer}`));
      } else {
        card.append(h('div', { class: 'state' }, 'Not answered'));
      }
      return card;
    }
    case 'validation': {
      const card = h('div', { ...base, class: `card validation ${item.passed ? 'passed' : 'failed'}`, testid: 'validation', 'data-passed': String(item.passed) });
      card.append(h('div', { class: 'card-title' }, item.error ? 'Validation could not run' : item.passed
        ? `Validation passed${item.lines !== undefined ? ` (playbook.py: ${item.lines} lines)` : ''}: Save will accept it`
        : `Validation failed: ${item.errors.length} error${item.errors.length === 1 ? '' : 's'}`));
      if (item.error) card.append(h('div', {}, item.error));
      const list = (ps: typeof item.errors, cls: string) => {
        if (!ps.length) return;
        const ul = h('ul', { class: cls });
        for (const p of ps) {
          const where = `${p.path || 'playbook'}${p.line ? `:${p.line}` : ''}`;
          const li = h('li', { testid: cls === 'errors' ? 'validation-error' : 'validation-warning' });
          if (p.path) li.append(button(where, 'open-problem', () => post({ type: 'openFile', path: p.path, line: p.line }), { class: 'linkish' }));
          else li.append(where);
          li.append(`: ${p.message}`);
          ul.append(li);
        }
        card.append(ul);
      };
      list(item.errors, 'errors');
      list(item.warnings, 'warnings');
      return card;
    }
    case 'completion': {
      const body = h('div', { class: 'md' });
      markdown(item.result, body);
      return h('div', { ...base, class: 'card completion', testid: 'completion' }, h('div', { class: 'card-title' }, 'Task complete'), body,
        h('div', { class: 'buttons' },
          button('Open playbook.py', 'open-playbook', () => post({ type: 'openFile', path: 'playbook.py' }), { class: 'secondary' }),
          button('Preview README.md', 'preview-readme', () => post({ type: 'openPreview', path: 'README.md' }), { class: 'secondary' })),
        h('div', { class: 'hint' }, 'Review the files, then Save (bottom left). The playbook is saved disabled; activate it in the portal.'));
    }
    case 'checkpoint':
      return h('div', { ...base, class: 'checkpoint', testid: 'checkpoint', 'data-n': String(item.n) },
        h('span', {}, `Checkpoint ${item.n}: ${item.label} (${item.files} file${item.files === 1 ? '' : 's'})${item.restored ? ' · restored' : ''}`),
        button('Restore', 'restore', () => post({ type: 'restore', n: item.n }), { class: 'linkish', title: 'Put the files back as they were at this checkpoint (the present state is kept as a new checkpoint)' }));
    case 'error': {
      const card = h('div', { ...base, class: 'card error', testid: 'error', role: 'alert' },
        h('div', { class: 'card-title' }, item.title), h('div', {}, item.message));
      const b = h('div', { class: 'buttons' });
      if (item.retry) b.append(button('Retry', 'error-retry', () => post({ type: 'retry' }), { class: 'primary' }));
      if (item.newTask) b.append(button('New task', 'error-new-task', () => post({ type: 'newTask' }), { class: 'secondary' }));
      if (b.childElementCount) card.append(b);
      return card;
    }
    case 'notice':
      return h('div', { ...base, class: 'notice', testid: 'notice' }, item.text);
    case 'noModel': {
      const card = h('div', { ...base, class: 'card nomodel', testid: 'no-model' },
        h('div', { class: 'card-title' }, 'No AI model is configured'), h('div', {}, item.message));
      card.append(templateList(item.templates));
      return card;
    }
  }
}

function templateList(templates: TemplateInfo[]): HTMLElement {
  const list = h('div', { class: 'templates', testid: 'templates' });
  for (const t of templates) {
    list.append(h('div', { class: 'template', testid: 'template', 'data-template': t.id },
      h('div', { class: 'card-title' }, t.title),
      h('div', {}, t.description),
      h('div', { class: 'hint' }, `Integration profile${t.integrations.length === 1 ? '' : 's'}: ${t.integrations.join(', ')}`),
      button('Use this template', 'use-template', () => post({ type: 'useTemplate', id: t.id }), { class: 'primary' })));
  }
  return list;
}

// ---- the page ----

function nearBottom(): boolean {
  const log = $('#log');
  return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
}

let stick = true;
function stickToBottom(): void {
  if (!stick) return;
  const log = $('#log');
  log.scrollTop = log.scrollHeight;
}

function putItem(item: Item, fromDelta = false): void {
  // A whole item is the truth: deltas still queued for it are already in it.
  if (!fromDelta) pendingDeltas.delete(item.id);
  const log = $('#log');
  const el = renderItem(item);
  const old = itemEls.get(item.id);
  if (old) old.replaceWith(el);
  else log.append(el);
  itemEls.set(item.id, el);
  $('#empty').hidden = true;
  if (el.querySelector(MERMAID_SELECTOR)) drawDiagrams(el);
  if (state) {
    const i = state.items.findIndex((x) => x.id === item.id);
    if (i >= 0) state.items[i] = item;
    else state.items.push(item);
  }
  stickToBottom();
}

function renderAll(): void {
  if (!state) return;
  const log = $('#log');
  log.replaceChildren();
  itemEls.clear();
  for (const item of state.items) {
    const el = renderItem(item);
    itemEls.set(item.id, el);
    log.append(el);
  }
  $('#empty').hidden = state.items.length > 0;
  $('#task-title').textContent = state.title;
  renderGallery();
  setMode(state.mode);
  setStatus(state.status, state.statusText, state.canRetry);
  ($('#auto-approve') as HTMLInputElement).checked = state.autoApprove;
  drawDiagrams(log);
  stick = true;
  stickToBottom();
}

function renderGallery(): void {
  const gallery = $('#gallery');
  gallery.replaceChildren(h('div', { class: 'hint' }, 'Start from a complete, valid playbook. The current files are kept in a checkpoint first.'),
    templateList(state?.templates ?? []));
}

function setMode(mode: Mode): void {
  if (state) state.mode = mode;
  const group = $('#mode');
  group.setAttribute('data-mode', mode);
  for (const m of ['plan', 'act'] as const) {
    const b = $(`#mode-${m}`);
    b.setAttribute('aria-pressed', String(m === mode));
    b.classList.toggle('active', m === mode);
  }
  ($('#input') as HTMLTextAreaElement).placeholder = mode === 'plan'
    ? 'Describe the automation you want (Plan mode: the agent plans, no file changes)…'
    : 'Tell the agent what to build or change (Act mode: it writes files)…';
}

function setStatus(status: Status, text: string, canRetry: boolean): void {
  if (state) {
    state.status = status;
    state.statusText = text;
    state.canRetry = canRetry;
  }
  const el = $('#status');
  el.setAttribute('data-state', status);
  el.textContent = text || (status === 'idle' ? '' : status === 'waiting' ? 'Waiting for you…' : 'Working…');
  ($('#stop') as HTMLButtonElement).hidden = status === 'idle';
  ($('#retry') as HTMLButtonElement).hidden = !(status === 'idle' && canRetry);
  document.body.setAttribute('data-status', status);
}

let deltaFrame = 0;
function applyDelta(id: string, text: string): void {
  pendingDeltas.set(id, (pendingDeltas.get(id) ?? '') + text);
  if (deltaFrame) return;
  deltaFrame = requestAnimationFrame(() => {
    deltaFrame = 0;
    for (const [itemId, more] of pendingDeltas) {
      const item = state?.items.find((x) => x.id === itemId);
      if (item && item.kind === 'assistant') {
        item.text += more;
        putItem(item, true);
      }
    }
    pendingDeltas.clear();
  });
}

function send(): void {
  const input = $('#input') as HTMLTextAreaElement;
  const text = input.value.trim();
  if (!text) return;
  post({ type: 'send', text });
  input.value = '';
}

function build(): void {
  const app = $('#app');
  app.replaceChildren(
    h('header', { class: 'bar' },
      h('div', { id: 'mode', class: 'mode', role: 'group', 'aria-label': 'Mode', testid: 'mode', 'data-mode': 'plan' },
        button('Plan', 'mode-plan', () => post({ type: 'setMode', mode: 'plan' }), { id: 'mode-plan', title: 'Plan mode: the agent plans with you and cannot change files' }),
        button('Act', 'mode-act', () => post({ type: 'setMode', mode: 'act' }), { id: 'mode-act', title: 'Act mode: the agent writes the files (you approve each change)' })),
      h('span', { class: 'spacer' }),
      button('Templates', 'templates-button', () => { const g = $('#gallery'); g.hidden = !g.hidden; }, { class: 'secondary small', title: 'Start from a template' }),
      button('New task', 'new-task', () => post({ type: 'newTask' }), { class: 'secondary small', title: 'Start a new task (this one stays in the history)' })),
    h('div', { id: 'task-title', class: 'title', testid: 'task-title' }),
    h('section', { id: 'gallery', class: 'gallery', testid: 'template-gallery', hidden: true }),
    h('main', { id: 'log', class: 'log', testid: 'messages', 'aria-live': 'polite' }),
    h('div', { id: 'empty', class: 'empty', testid: 'empty' },
      h('p', {}, 'Describe the automation in plain words: what alerts it runs on, what data to take, what to check, what to do.'),
      h('p', { class: 'hint' }, 'Example: "When a phishing alert comes in, take the sender, check the user exists in our directory, disable the account and notify the SOC."'),
      h('p', { class: 'hint' }, 'The agent starts in Plan mode: it proposes a plan and a flow diagram. Switch to Act mode to let it write the files.')),
    h('footer', { class: 'composer' },
      h('div', { class: 'statusline' },
        h('span', { id: 'status', class: 'status', testid: 'status', 'data-state': 'idle' }),
        button('Stop', 'stop', () => post({ type: 'stop' }), { id: 'stop', class: 'secondary small', hidden: true }),
        button('Retry', 'retry', () => post({ type: 'retry' }), { id: 'retry', class: 'primary small', hidden: true })),
      h('textarea', { id: 'input', testid: 'chat-input', rows: '3', 'aria-label': 'Message to the agent' }),
      h('div', { class: 'row' },
        h('label', { class: 'auto' },
          h('input', { id: 'auto-approve', type: 'checkbox', testid: 'auto-approve' }), ' Auto-approve edits'),
        button('Send', 'send', send, { id: 'send', class: 'primary' }))),
  );
  ($('#auto-approve') as HTMLInputElement).addEventListener('change', (e) => post({ type: 'setAutoApprove', value: (e.target as HTMLInputElement).checked }));
  const input = $('#input') as HTMLTextAreaElement;
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('#log').addEventListener('scroll', () => { stick = nearBottom(); });
  setMode('plan');
}

window.addEventListener('message', (ev: MessageEvent<ToWebview>) => {
  const m = ev.data;
  if (!m || typeof m !== 'object') return;
  switch (m.type) {
    case 'init':
      state = m.state;
      renderAll();
      break;
    case 'item':
      putItem(m.item);
      break;
    case 'delta':
      applyDelta(m.id, m.text);
      break;
    case 'status':
      setStatus(m.status, m.statusText, m.canRetry);
      break;
    case 'mode':
      setMode(m.mode);
      break;
    case 'settings':
      if (state) state.autoApprove = m.autoApprove;
      ($('#auto-approve') as HTMLInputElement).checked = m.autoApprove;
      break;
  }
});

window.addEventListener('playbook-mermaid-ready', () => drawDiagrams($('#log')));

build();
post({ type: 'ready' });
