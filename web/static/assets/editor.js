// @ts-check
// The IDE view: opens an edit session, follows its workspace's phases (as
// the server reports them), frames the IDE, and keeps the session alive
// with heartbeats; Save, Close editor, and a clear state for every refusal.

import { $, api, ApiError, el, messageOf, navigate, plural, show, sleep, state, absTime, toast } from './core.js';
import { send, onCommand } from './embed.js';

const HEARTBEAT_MS = 30_000;
const WATCH_MS = 3_000; // session ended? saved from the IDE's status bar?
const PHASE_MS = 150; // while the workspace starts
const TICKET_FRESH_MS = 50_000; // ideUrl's ticket is valid for 60 s
const OWN_KEY = 'pbs-own-sessions';

let pending = null; // what the dialog or a button already asked for
let cur = null; // the open editor

/** The path of the IDE view for a request ({playbookId} or {name}). */
export function editorPath(request) {
  if (request.playbookId) return `/playbooks/${encodeURIComponent(request.playbookId)}/edit`;
  return `/playbooks/new/edit?name=${encodeURIComponent(request.name)}`;
}

/**
 * Opens the IDE view; started or error are the answer to a POST made already.
 * @param {{ playbookId?: string, name?: string }} request
 * @param {{ started?: object, error?: unknown }} [answer]
 */
export function startEditing(request, { started, error } = {}) {
  pending = { request, started, error };
  if (cur) {
    cur.leave('opened another playbook');
    cur = null;
  }
  navigate(editorPath(request));
}

// Sessions this tab opened survive a reload in sessionStorage, so a reload
// takes its own session over instead of asking.
function ownSessions() {
  try {
    return JSON.parse(sessionStorage.getItem(OWN_KEY) || '[]');
  } catch (_) {
    return [];
  }
}
function rememberOwn(id) {
  try {
    sessionStorage.setItem(OWN_KEY, JSON.stringify([id, ...ownSessions().filter((x) => x !== id)].slice(0, 10)));
  } catch (_) {
    // storage may be unavailable
  }
}

function sameRequest(a, b) {
  return !!a && !!b && (a.playbookId ? a.playbookId === b.playbookId : !b.playbookId && a.name === b.name);
}

// ---------------------------------------------------------------------------

class Editor {
  constructor(request) {
    this.request = request;
    this.name = request.name || '';
    this.playbookId = request.playbookId || null;
    this.session = null;
    this.knownVersion = null;
    this.phase = 'opening';
    this.done = false;
    this.loops = new AbortController();
    this.frame = null;
    this.sentClosed = false;
    this.saving = false;
  }

  // --- opening -------------------------------------------------------------

  async begin(prefetched) {
    this.paintHeader();
    if (this.playbookId) this.loadBaseline();
    if (prefetched?.started) return this.attach(prefetched.started, performance.now());
    if (prefetched?.error) return this.refused(prefetched.error);
    return this.open(false);
  }

  async loadBaseline() {
    try {
      const p = await api(`/api/playbooks/${encodeURIComponent(this.playbookId)}`);
      if (this.done) return;
      if (this.knownVersion === null) this.knownVersion = p.currentVersion;
      if (!this.name) {
        this.name = p.name;
        this.paintHeader();
      }
    } catch (_) {
      // the session's answer names it too
    }
  }

  async open(takeover) {
    this.stateCard({ title: `Opening ${this.name ? '“' + this.name + '”' : 'the playbook'}…`, text: 'Asking for an edit session.', busy: true });
    const asked = performance.now();
    let started;
    try {
      started = await api('/api/edit-sessions', { method: 'POST', body: { ...this.request, ...(takeover ? { takeover: true } : {}) } });
    } catch (e) {
      if (this.done) return;
      // A reload of this very tab: its own session holds the playbook.
      const other = e instanceof ApiError && e.code === 'user_has_session' ? e.body?.session : null;
      if (!takeover && other && ownSessions().includes(other.id) && this.matches(other)) return this.open(true);
      return this.refused(e);
    }
    if (this.done) {
      api(`/api/edit-sessions/${encodeURIComponent(started.id)}`, { method: 'DELETE' }).catch(() => {});
      return;
    }
    return this.attach(started, asked);
  }

  matches(other) {
    if (this.playbookId) return other.playbookId === this.playbookId;
    return String(other.name).toLowerCase() === String(this.name).toLowerCase();
  }

  attach(started, askedAt) {
    performance.mark('pbs:session-created');
    this.session = started;
    this.ticketAt = askedAt;
    rememberOwn(started.id);
    this.name = started.name || this.name;
    if (started.playbookId && !this.playbookId) this.playbookId = started.playbookId;
    if (!this.playbookId && this.knownVersion === null) this.knownVersion = 0;
    this.paintHeader();
    this.showNotice(started.notice);
    if (started.takenOver) toast(`Your session on “${started.takenOver.name}” was closed; you edit “${this.name}” here now.`);
    send('session.opened', { sessionId: started.id, playbookId: this.playbookId, name: this.name });
    this.heartbeatLoop();
    this.followPhases();
  }

  // --- phases --------------------------------------------------------------

  async followPhases() {
    const signal = this.loops.signal;
    let s = this.session;
    for (;;) {
      if (signal.aborted) return;
      this.paintPhase(s.state);
      if (s.state === 'ready') return this.showIDE();
      if (s.state === 'failed') return this.failed();
      await sleep(PHASE_MS, signal);
      if (signal.aborted) return;
      try {
        s = await api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}`, { signal });
        this.absorb(s);
      } catch (e) {
        if (signal.aborted) return;
        if (this.isEnd(e)) return this.ended(e);
        // a blip: keep asking, a little slower
        await sleep(1000, signal);
      }
    }
  }

  absorb(s) {
    if (!s) return;
    if (s.notice && s.notice !== this.session.notice) this.showNotice(s.notice);
    this.session = { ...this.session, ...s, ideUrl: this.session.ideUrl };
    if (s.playbookId && !this.playbookId) this.learnId(s.playbookId);
  }

  learnId(id) {
    this.playbookId = id;
    this.request = { playbookId: id };
    if (location.pathname.startsWith('/playbooks/new/edit')) history.replaceState(null, '', editorPath(this.request));
    this.paintHeader();
  }

  paintPhase(phase) {
    this.phase = phase;
    const chip = $('editor-phase');
    const labels = { creating: 'Creating workspace', starting: 'Starting', ready: 'Ready', failed: 'Failed', stopped: 'Stopped', stopping: 'Stopping' };
    chip.textContent = labels[phase] || phase;
    chip.dataset.phase = phase;
    if (phase === 'ready' || phase === 'failed') return;
    const titles = {
      creating: 'Creating your workspace',
      starting: 'Starting your workspace',
    };
    this.stateCard({
      title: titles[phase] || 'Preparing your workspace',
      text: `Your own VS Code opens here with the playbook agent, in the folder of “${this.name}”.`,
      phases: phase,
      busy: true,
    });
  }

  showIDE() {
    if (this.done) return;
    if (performance.now() - this.ticketAt > TICKET_FRESH_MS) {
      // The ticket in ideUrl is nearly expired: ask again, taking over this
      // very session.
      this.loops.abort();
      this.loops = new AbortController();
      return this.open(true);
    }
    const wrap = $('ide-frame-wrap');
    const frame = el('iframe', {
      class: 'ide-frame',
      title: `VS Code: ${this.name}`,
      'data-testid': 'ide-frame',
      allow: 'clipboard-read; clipboard-write',
      referrerpolicy: 'no-referrer',
    });
    performance.mark('pbs:workspace-ready');
    frame.addEventListener('load', () => performance.mark('pbs:ide-loaded'), { once: true });
    frame.src = this.session.ideUrl;
    this.frame = frame;
    wrap.replaceChildren(frame);
    show(wrap, true);
    show($('editor-state'), false);
    $('editor-save', HTMLButtonElement).disabled = false;
    this.paintPhase('ready');
    this.watchLoop();
  }

  failed() {
    $('editor-save', HTMLButtonElement).disabled = true;
    this.stateCard({
      title: 'Your workspace could not start',
      text: 'The workspace failed to start in time. Your files are kept. Try again; if it keeps failing, tell your administrator.',
      kind: 'error',
      actions: [
        { label: 'Retry', primary: true, testid: 'retry', run: () => this.retry() },
        { label: 'Back to playbooks', href: '/playbooks' },
      ],
    });
  }

  async retry() {
    this.loops.abort();
    this.loops = new AbortController();
    if (this.session) {
      await api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}`, { method: 'DELETE' }).catch(() => {});
      this.session = null;
    }
    return this.open(false);
  }

  // --- refusals --------------------------------------------------------------

  refused(e) {
    const code = e instanceof ApiError ? e.code : 'error';
    const back = { label: 'Back to playbooks', href: '/playbooks' };
    $('editor-save', HTMLButtonElement).disabled = true;
    $('editor-phase').textContent = '';
    if (code === 'user_has_session') {
      const other = e.body?.session || {};
      const since = other.startedAt ? ` since ${absTime(other.startedAt)}` : '';
      return this.stateCard({
        title: 'You are already editing another playbook',
        text: `You have “${other.name || 'a playbook'}” open${since}, perhaps in another tab or on another device. You can edit one playbook at a time: take over here, and that editor closes (its files stay in your workspace).`,
        kind: 'warn',
        refusal: code,
        actions: [
          { label: `Take over and open “${this.name || 'this playbook'}”`, primary: true, testid: 'takeover', run: () => this.open(true) },
          back,
        ],
      });
    }
    if (code === 'playbook_locked') {
      return this.stateCard({
        title: 'Someone else is editing this playbook',
        text: `${e.message} One person edits a playbook at a time; try again when they have closed it.`,
        kind: 'warn',
        refusal: code,
        actions: [{ label: 'Try again', primary: true, testid: 'try-again', run: () => this.open(false) }, back],
      });
    }
    if (code === 'playbook_limit' || code === 'playbook_name_taken' || code === 'invalid_name') {
      return this.stateCard({ title: 'This playbook cannot be created', text: e.message, kind: 'error', refusal: code, actions: [back] });
    }
    if (code === 'too_many_spawns') {
      const after = Math.max(1, Math.min(120, parseInt(e.headers?.get('Retry-After') || '5', 10) || 5));
      return this.countdown(after, e.message);
    }
    if (code === 'not_found') {
      return this.stateCard({ title: 'There is no such playbook', text: 'It may have been deleted.', kind: 'error', refusal: code, actions: [back] });
    }
    if (code === 'forbidden') {
      return this.stateCard({ title: 'You cannot edit playbooks', text: e.message, kind: 'error', refusal: code, actions: [back] });
    }
    return this.stateCard({
      title: 'The editor could not be opened',
      text: messageOf(e),
      kind: 'error',
      refusal: code,
      actions: [{ label: 'Try again', primary: true, testid: 'try-again', run: () => this.open(false) }, back],
    });
  }

  async countdown(seconds, message) {
    const signal = this.loops.signal;
    for (let left = seconds; left > 0; left--) {
      if (signal.aborted || this.done) return;
      this.stateCard({
        title: 'Many workspaces are starting right now',
        text: `${message} Trying again in ${plural(left, 'second', 'seconds')}…`,
        kind: 'warn',
        refusal: 'too_many_spawns',
        busy: true,
        actions: [{ label: 'Try now', testid: 'try-again', run: () => { this.loops.abort(); this.loops = new AbortController(); this.open(false); } }],
      });
      await sleep(1000, signal);
    }
    if (!signal.aborted && !this.done) this.open(false);
  }

  // --- life ------------------------------------------------------------------

  isEnd(e) {
    return e instanceof ApiError && (e.status === 410 || e.status === 404);
  }

  async heartbeatLoop() {
    const signal = this.loops.signal;
    while (!signal.aborted) {
      await sleep(HEARTBEAT_MS, signal);
      if (signal.aborted) return;
      try {
        const s = await api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}/heartbeat`, { method: 'POST', signal });
        this.absorb(s);
      } catch (e) {
        if (signal.aborted) return;
        if (this.isEnd(e)) return this.ended(e);
      }
    }
  }

  async watchLoop() {
    const signal = this.loops.signal;
    while (!signal.aborted) {
      await sleep(WATCH_MS, signal);
      if (signal.aborted) return;
      try {
        const s = await api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}`, { signal });
        this.absorb(s);
      } catch (e) {
        if (signal.aborted) return;
        if (this.isEnd(e)) return this.ended(e);
        continue;
      }
      if (!this.playbookId) continue;
      try {
        const p = await api(`/api/playbooks/${encodeURIComponent(this.playbookId)}`, { signal });
        if (signal.aborted) return;
        if (this.knownVersion === null) this.knownVersion = p.currentVersion;
        else if (p.currentVersion > this.knownVersion) {
          this.knownVersion = p.currentVersion;
          this.announceSaved({ id: p.id, name: p.name, status: p.status, activeVersion: p.activeVersion }, p.currentVersion, 'the IDE');
        }
      } catch (_) {
        // not saved yet, or a blip
      }
    }
  }

  announceSaved(p, version, where) {
    // A save never goes live: an active playbook keeps running the version
    // that was activated.
    const status = p.status === 'active'
      ? `not live: version ${p.activeVersion ?? 'activated before'} runs until this one is activated`
      : 'disabled until activated';
    $('save-result').textContent = `Version ${version} saved from ${where} (${status}).`;
    $('save-result').dataset.kind = 'ok';
    show($('save-problems'), false);
    send('playbook.saved', { playbookId: p.id, name: p.name, version });
  }

  // --- actions ---------------------------------------------------------------

  async save() {
    if (!this.session || this.phase !== 'ready' || this.done) {
      throw Object.assign(new Error('No editor is open and ready.'), { code: 'not_ready' });
    }
    if (this.saving) throw Object.assign(new Error('A save is already running.'), { code: 'busy' });
    this.saving = true;
    const btn = $('editor-save', HTMLButtonElement);
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
    $('save-result').textContent = 'Saving…';
    $('save-result').dataset.kind = '';
    try {
      const saved = await api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}/save`, { method: 'POST' });
      const p = saved.playbook;
      const v = saved.version;
      if (!this.playbookId) this.learnId(p.id);
      this.knownVersion = Math.max(this.knownVersion || 0, v.number);
      this.announceSaved(p, v.number, 'the portal');
      const warnings = Array.isArray(v.warnings) ? v.warnings : [];
      if (warnings.length) this.showProblems(`Saved with ${plural(warnings.length, 'warning', 'warnings')}`, warnings, 'warn');
      return { playbookId: p.id, name: p.name, version: v.number };
    } catch (e) {
      if (e instanceof ApiError && e.code === 'validation_failed') {
        const problems = Array.isArray(e.body?.problems) ? e.body.problems : [];
        $('save-result').textContent = 'Not saved: the playbook has problems.';
        $('save-result').dataset.kind = 'error';
        this.showProblems(e.message, problems, 'error');
      } else if (this.isEnd(e)) {
        this.ended(e);
      } else {
        $('save-result').textContent = `Not saved: ${messageOf(e)}`;
        $('save-result').dataset.kind = 'error';
      }
      throw e;
    } finally {
      this.saving = false;
      btn.removeAttribute('aria-busy');
      btn.disabled = this.phase !== 'ready' || this.done;
    }
  }

  showProblems(title, problems, kind) {
    $('save-problems-title').textContent = title;
    $('save-problems').dataset.kind = kind;
    const list = $('save-problems-list');
    list.replaceChildren(...problems.map((p) => {
      const where = [p.path, p.line ? `line ${p.line}` : ''].filter(Boolean).join(', ');
      return el('li', { 'data-testid': 'save-problem' }, where ? el('span', 'problem-where', where) : null, el('span', null, String(p.message || '')));
    }));
    show($('save-problems'), true);
  }

  async close() {
    if (this.done) {
      navigate('/playbooks');
      return {};
    }
    const btn = $('editor-close', HTMLButtonElement);
    btn.disabled = true;
    try {
      if (this.session) await api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}`, { method: 'DELETE' });
    } catch (e) {
      if (!this.isEnd(e) && !(e instanceof ApiError && e.status === 403)) {
        btn.disabled = false;
        toast(`The editor could not be closed: ${messageOf(e)}`, 'error');
        throw e;
      }
    } finally {
      btn.disabled = false;
    }
    this.closedEvent('closed');
    this.teardown();
    cur = null;
    navigate('/playbooks');
    return {};
  }

  /** Leaving the view (another page, another playbook) closes the session. */
  leave(reason) {
    if (this.done) return;
    if (this.session) {
      api(`/api/edit-sessions/${encodeURIComponent(this.session.id)}`, { method: 'DELETE', keepalive: true }).catch(() => {});
      this.closedEvent(reason || 'closed');
    }
    this.teardown();
  }

  /** The page goes away (reload, tab closed): release the locks now. */
  unload() {
    if (this.done || !this.session) return;
    fetch(`/api/edit-sessions/${encodeURIComponent(this.session.id)}`, {
      method: 'DELETE', keepalive: true, credentials: 'same-origin', headers: { 'X-CSRF-Token': state.csrfToken },
    }).catch(() => {});
    this.closedEvent('page closed');
  }

  closedEvent(reason) {
    if (this.sentClosed || !this.session) return;
    this.sentClosed = true;
    send('session.closed', { sessionId: this.session.id, playbookId: this.playbookId, name: this.name, reason });
  }

  ended(e) {
    if (this.done) return;
    const reasonText = e instanceof ApiError && e.code === 'session_ended' ? e.message : 'This edit session ended: it is no longer live.';
    const reason = reasonText.replace(/^This edit session has ended: /, '').replace(/\.$/, '');
    this.closedEvent(reason);
    this.teardown();
    $('editor-phase').textContent = 'Ended';
    $('editor-phase').dataset.phase = 'ended';
    const request = this.playbookId ? { playbookId: this.playbookId } : this.request;
    this.stateCard({
      title: 'This edit session ended',
      text: `This edit session ended: ${reason}. Your files stay in your workspace.`,
      kind: 'warn',
      refusal: 'session_ended',
      actions: [
        { label: 'Open again', primary: true, testid: 'open-again', run: () => startEditing(request) },
        { label: 'Back to playbooks', href: '/playbooks' },
      ],
    });
  }

  teardown() {
    this.done = true;
    this.loops.abort();
    if (this.frame) {
      this.frame.remove();
      this.frame = null;
    }
    $('ide-frame-wrap').replaceChildren();
    show($('ide-frame-wrap'), false);
    $('editor-save', HTMLButtonElement).disabled = true;
  }

  // --- painting ----------------------------------------------------------------

  paintHeader() {
    $('editor-name').textContent = this.name || 'Playbook';
    document.title = `${this.name || 'Editor'} · Playbook Studio`;
    const link = $('editor-page-link', HTMLAnchorElement);
    if (this.playbookId) {
      link.href = `/playbooks/${encodeURIComponent(this.playbookId)}`;
      show(link, true);
    } else show(link, false);
  }

  showNotice(text) {
    if (!text) return;
    $('editor-notice-text').textContent = text;
    show($('editor-notice'), true);
  }

  /**
   * The card shown instead of the IDE: while it starts, or why it cannot.
   * @param {object} card
   * @param {string} card.title
   * @param {string} card.text
   * @param {string} [card.phases] the phase reached ('creating', 'starting' or 'ready'), to show the steps
   * @param {string} [card.kind] '' while it starts, else 'warn' or 'error'
   * @param {{ label: string, href?: string, primary?: boolean, testid?: string, run?: () => unknown }[]} [card.actions]
   *   links (href) or buttons (run)
   * @param {boolean} [card.busy]
   * @param {string} [card.refusal] the server's code when it refused
   */
  stateCard({ title, text, phases, kind = '', actions = [], busy = false, refusal = '' }) {
    show($('ide-frame-wrap'), false);
    show($('editor-state'), true);
    const card = $('state-card');
    card.dataset.kind = kind;
    card.dataset.refusal = refusal;
    card.setAttribute('aria-busy', String(busy));
    $('state-title').textContent = title;
    $('state-text').textContent = text;
    const list = $('state-phases');
    show(list, !!phases);
    if (phases) {
      const order = ['creating', 'starting', 'ready'];
      const at = order.indexOf(phases);
      for (const li of /** @type {HTMLCollectionOf<HTMLElement>} */ (list.children)) {
        const i = order.indexOf(li.dataset.phase);
        li.dataset.state = i < at ? 'done' : i === at ? 'current' : 'todo';
        if (i === at) li.setAttribute('aria-current', 'step');
        else li.removeAttribute('aria-current');
      }
    }
    const box = $('state-actions');
    const focusFirst = actions.length && !box.contains(document.activeElement) ? true : false;
    box.replaceChildren(...actions.map((a) => {
      if (a.href) return el('a', { class: 'btn btn-secondary', href: a.href, 'data-route': '' }, a.label);
      const b = el('button', { type: 'button', class: a.primary ? 'btn btn-primary' : 'btn btn-secondary', 'data-testid': a.testid ? 'state-' + a.testid : undefined }, a.label);
      b.addEventListener('click', () => { b.disabled = true; a.run(); });
      return b;
    }));
    if (focusFirst && kind) /** @type {HTMLElement} */ (box.firstElementChild).focus({ preventScroll: true });
  }
}

// ---------------------------------------------------------------------------
// The view

function requestFromRoute(params, search) {
  if (params.id === 'new') {
    const name = search.get('name') || '';
    return name ? { name } : null;
  }
  return { playbookId: params.id };
}

export function showEditor(params, search) {
  document.body.classList.add('editor-mode');
  const request = requestFromRoute(params, search);
  if (cur && !cur.done && request && sameRequest(cur.request, request)) return; // already open here
  if (cur) cur.leave('opened another playbook');
  cur = null;
  show($('save-problems'), false);
  show($('editor-notice'), false);
  $('save-result').textContent = '';
  $('editor-save', HTMLButtonElement).disabled = true;
  $('editor-phase').textContent = '';
  if (!request) {
    $('editor-name').textContent = 'New playbook';
    const ed = new Editor({ name: '' });
    ed.stateCard({ title: 'Nothing to open', text: 'Start a new playbook from Create ▸ Playbook generator.', actions: [{ label: 'Back to playbooks', href: '/playbooks' }] });
    return;
  }
  const prefetched = pending && sameRequest(pending.request, request) ? pending : null;
  pending = null;
  cur = new Editor(request);
  cur.begin(prefetched);
}

export function hideEditor() {
  document.body.classList.remove('editor-mode');
  if (cur) {
    cur.leave('closed');
    cur = null;
  }
}

export function initEditor() {
  $('editor-save').addEventListener('click', () => { cur?.save().catch(() => {}); });
  $('editor-close').addEventListener('click', () => {
    if (cur) cur.close().catch(() => {});
    else navigate('/playbooks');
  });
  $('editor-notice-dismiss').addEventListener('click', () => show($('editor-notice'), false));
  $('save-problems-dismiss').addEventListener('click', () => show($('save-problems'), false));
  window.addEventListener('pagehide', () => cur?.unload());

  onCommand('save', () => {
    if (!cur) throw Object.assign(new Error('No editor is open.'), { code: 'no_editor' });
    return cur.save();
  });
  onCommand('close', () => {
    if (!cur) throw Object.assign(new Error('No editor is open.'), { code: 'no_editor' });
    return cur.close();
  });
}
