// @ts-check
// Playbook Studio portal: boot, header and routing. Plain ES modules, no
// framework. All user-supplied text is written with textContent; never use
// innerHTML with data. The one exception is Markdown (a playbook's README):
// the shared renderer escapes raw HTML and allows only safe links, and
// markdown-view.js parses its output in an inert document.

import { $, api, ApiError, el, hasRole, PRODUCT, setNavigator, state } from './core.js';
import { framed, initEmbed, send } from './embed.js';
import { initPlaybooks, showPlaybooks } from './playbooks.js';
import { initPlaybookPage, showPlaybook } from './playbook-page.js';
import { hideEditor, initEditor, showEditor } from './editor.js';
import { hideSessions, initSessions, showSessions } from './sessions.js';
import { hideIntegrations, initIntegrations, showIntegrations } from './integrations.js';
import { hideIncidents, initIncidents, showIncident, showIncidents } from './incidents.js';
import { initRunDetails } from './run-details.js';

export { api, ApiError, csrfToken } from './core.js';

// Routes: [pattern, view]. "/" is an alias of "/playbooks".
/** @type {[RegExp, string][]} */
const ROUTES = [
  [/^\/$/, 'playbooks'],
  [/^\/playbooks$/, 'playbooks'],
  [/^\/playbooks\/([^/]+)\/edit$/, 'editor'],
  [/^\/playbooks\/([^/]+)$/, 'playbook'],
  [/^\/incidents$/, 'incidents'],
  [/^\/incidents\/([^/]+)$/, 'incident'],
  [/^\/integrations$/, 'integrations'],
  [/^\/rules$/, 'rules'],
  [/^\/sessions$/, 'sessions'],
];

const TITLES = {
  playbooks: 'Playbooks',
  playbook: 'Playbook',
  editor: 'Editor',
  incidents: 'Incidents',
  incident: 'Incident',
  integrations: 'Integration profiles',
  rules: 'Automation rules',
  sessions: 'Sessions',
  notfound: 'Page not found',
  signin: 'Sign in',
};

// Which tab is current for each view.
const TAB_OF = { playbooks: 'playbooks', playbook: 'playbooks', editor: 'playbooks', incidents: 'incidents', incident: 'incidents', integrations: 'integrations', rules: 'rules', sessions: 'sessions' };

let currentView = null;

// ---------------------------------------------------------------------------
// Header

function initials(name, email) {
  const source = String(name || '').trim() || String(email || '').split('@')[0] || '';
  const letters = source
    .split(/[\s._-]+/)
    .filter((word) => /^[\p{L}\p{N}]/u.test(word))
    .map((word) => Array.from(word)[0]);
  if (letters.length === 0) return '?';
  const pick = letters.length > 1 ? letters[0] + letters[letters.length - 1] : letters[0];
  return pick.toLocaleUpperCase();
}

function renderHeader(me) {
  const name = String(me.name || me.email || 'Signed-in user');
  $('user-name').textContent = name;
  $('user-name').title = name;
  const email = String(me.email || '');
  $('user-email').textContent = email && email !== name ? email : '';
  $('user-email').hidden = !(email && email !== name);
  $('user-avatar').textContent = initials(me.name, me.email);

  const tenant = String(me.tenant || '');
  $('tenant').textContent = tenant;
  $('tenant').title = tenant ? 'Tenant: ' + tenant : '';
  $('tenant').hidden = !tenant;

  const roles = $('user-roles');
  roles.replaceChildren();
  const list = Array.isArray(me.roles) ? me.roles : [];
  for (const role of list) {
    const r = String(role);
    const li = el('li', 'badge', r);
    li.dataset.role = r;
    li.dataset.testid = 'role-' + r;
    roles.append(li);
  }
  roles.hidden = list.length === 0;

  $('csrf-token', HTMLInputElement).value = state.csrfToken;
  $('tab-sessions').hidden = !hasRole('admin');

  $('account').hidden = false;
  $('tabs').hidden = false;
}

// ---------------------------------------------------------------------------
// Routing

function normalizePath(pathname) {
  if (pathname.length > 1 && pathname.endsWith('/')) return pathname.replace(/\/+$/, '') || '/';
  return pathname;
}

function match(pathname) {
  const path = normalizePath(pathname);
  for (const [re, view] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      let id = m[1];
      if (id !== undefined) {
        try {
          id = decodeURIComponent(id);
        } catch (_) {
          return { view: 'notfound', params: {} };
        }
      }
      return { view, params: id !== undefined ? { id } : {} };
    }
  }
  return { view: 'notfound', params: {} };
}

/** The page's views: <section class="view" data-view=…>. */
function views() {
  return /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.view'));
}

function setView(view) {
  for (const section of views()) {
    section.hidden = section.dataset.view !== view;
  }
  const tab = TAB_OF[view];
  for (const t of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.tab'))) {
    if (t.dataset.tab === tab) t.setAttribute('aria-current', 'page');
    else t.removeAttribute('aria-current');
  }
  document.title = `${TITLES[view] || PRODUCT} · ${PRODUCT}`;
}

function render({ focus = false } = {}) {
  if (!state.me) return;
  const { view, params } = match(location.pathname);
  const search = new URLSearchParams(location.search);

  if (currentView === 'editor' && view !== 'editor') hideEditor();
  if (currentView === 'sessions' && view !== 'sessions') hideSessions();
  if (currentView === 'integrations' && view !== 'integrations') hideIntegrations();
  if ((currentView === 'incidents' || currentView === 'incident') && view !== currentView) hideIncidents();
  currentView = view;
  setView(view);

  if (view === 'playbooks') showPlaybooks();
  else if (view === 'playbook') showPlaybook(params);
  else if (view === 'editor') showEditor(params, search);
  else if (view === 'sessions') showSessions();
  else if (view === 'integrations') showIntegrations(search);
  else if (view === 'incidents') showIncidents();
  else if (view === 'incident') showIncident(params, search);

  if (focus) {
    const h1 = /** @type {HTMLElement | null} */ (document.querySelector(`[data-view="${view}"] h1`));
    if (h1) h1.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

function navigate(href, { replace = false } = {}) {
  const url = new URL(href, location.href);
  if (url.origin !== location.origin) {
    location.assign(url.href);
    return;
  }
  const next = url.pathname + url.search + url.hash;
  if (replace) history.replaceState(null, '', next);
  else if (next !== location.pathname + location.search + location.hash) history.pushState(null, '', next);
  render({ focus: true });
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const target = event.target instanceof Element ? event.target : null;
  const link = target ? target.closest('a[data-route]') : null;
  if (!link || link.target || !link.hasAttribute('href')) return;
  if (!state.me) return; // let the browser load the page normally
  event.preventDefault();
  navigate(link.href);
}

// ---------------------------------------------------------------------------
// Sign-in when framed: in a popup, since providers refuse to be framed.

let signinWatch = 0;

function showFramedSignIn() {
  $('loading').hidden = true;
  for (const section of views()) section.hidden = section.dataset.view !== 'signin';
  document.title = `Sign in · ${PRODUCT}`;
  send('auth.required');
  $('h-signin').focus({ preventScroll: true });
}

function signedInElsewhere() {
  clearInterval(signinWatch);
  location.reload();
}

// A hand-off code from the popup gives this frame a session of its own
// (needed when the outer portal's site partitions our cookies).
async function redeemAndReload(code) {
  let signedIn = false;
  try {
    signedIn = (await fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } })).ok;
  } catch (_) {
    // try the code
  }
  // Same site, the popup's cookie is ours already: nothing to redeem.
  if (!signedIn && typeof code === 'string' && code) {
    try {
      await fetch('/auth/handoff/redeem', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ code }),
      });
    } catch (_) {
      // the reload shows the state either way
    }
  }
  signedInElsewhere();
}

function startPopupSignIn() {
  const back = location.pathname + location.search;
  const popup = window.open('/auth/login?return_to=' + encodeURIComponent('/auth/popup-done'), 'pbs-signin', 'popup,width=520,height=720');
  $('signin-newtab', HTMLAnchorElement).href = back;
  if (!popup) {
    $('signin-blocked').hidden = false;
    return;
  }
  $('signin-status').textContent = 'Waiting for you to sign in in the other window…';
  // The popup tells us when it is done; should its message not arrive (a
  // provider that cuts the opener), /api/me tells.
  clearInterval(signinWatch);
  signinWatch = setInterval(async () => {
    try {
      const r = await fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (r.ok) signedInElsewhere();
    } catch (_) {
      // keep waiting
    }
    if (popup.closed) $('signin-status').textContent = 'The sign-in window was closed. Sign in again to continue.';
  }, 2000);
}

function listenForSignIn() {
  window.addEventListener('message', (event) => {
    if (event.origin !== location.origin) return;
    const d = event.data;
    if (d && d.source === 'playbook-studio' && d.type === 'signed-in') redeemAndReload(d.code);
  });
  try {
    const ch = new BroadcastChannel('playbook-studio-auth');
    ch.onmessage = (event) => {
      if (event.data && event.data.type === 'signed-in' && !state.me) signedInElsewhere();
    };
  } catch (_) {
    // no BroadcastChannel: the message and the poll remain
  }
}

// Framed, signing out must not follow the provider's redirect inside the
// frame (the provider refuses to be framed): end the portal session only.
async function signOutFramed(event) {
  event.preventDefault();
  try {
    await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin', redirect: 'manual', headers: { 'X-CSRF-Token': state.csrfToken } });
  } catch (_) {
    // reload shows the state either way
  }
  location.reload();
}

// ---------------------------------------------------------------------------
// Boot

function showLoading(on) {
  $('loading').hidden = !on;
}

function showError(message) {
  $('error-message').textContent = message;
  $('error-banner').hidden = false;
  document.title = `Error · ${PRODUCT}`;
}

async function loadMe() {
  showLoading(true);
  $('error-banner').hidden = true;
  await initEmbed();
  let me;
  try {
    me = await api('/api/me');
    if (!me || typeof me !== 'object') {
      throw new ApiError(200, 'bad_response', 'The server sent an empty account answer.');
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (framed()) {
        send('portal.ready', { signedIn: false });
        showFramedSignIn();
        return;
      }
      location.assign('/auth/login?return_to=' + encodeURIComponent(location.pathname + location.search));
      return; // keep "Loading…" while the browser leaves
    }
    showLoading(false);
    showError(err instanceof Error && err.message ? err.message : 'Unknown error.');
    return;
  }
  state.me = me;
  state.csrfToken = typeof me.csrfToken === 'string' ? me.csrfToken : '';
  showLoading(false);
  renderHeader(me);
  initPlaybooks();
  initPlaybookPage();
  initEditor();
  initSessions();
  initIntegrations();
  initRunDetails();
  initIncidents();
  if (framed()) {
    document.body.classList.add('framed');
    $('signout-form').addEventListener('submit', signOutFramed);
  }
  send('portal.ready', { signedIn: true });
  render();
}

function start() {
  setNavigator(navigate);
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', () => render({ focus: true }));
  $('error-retry').addEventListener('click', () => {
    loadMe();
  });
  $('signin-popup').addEventListener('click', startPopupSignIn);
  listenForSignIn();
  loadMe();
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start, { once: true });
} else {
  start();
}
