// Playbook Studio portal shell.
// Plain ES module, no framework, no build step. All user-supplied text is
// written with textContent; never use innerHTML with data.

const PRODUCT = 'Playbook Studio';

// Routes: path -> view. "/" is an alias of "/playbooks".
const ROUTES = {
  '/': 'playbooks',
  '/playbooks': 'playbooks',
  '/integrations': 'integrations',
  '/rules': 'rules',
  '/sessions': 'sessions',
};

const TITLES = {
  playbooks: 'Playbooks',
  integrations: 'Integration profiles',
  rules: 'Automation rules',
  sessions: 'Sessions',
  notfound: 'Page not found',
};

const state = {
  me: null,
  csrfToken: '',
};

// ---------------------------------------------------------------------------
// API helper

/** Error thrown by api(): carries the HTTP status and the server's error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

function isSafeMethod(method) {
  return method === 'GET' || method === 'HEAD';
}

function isRawBody(body) {
  return typeof body === 'string' ||
    body instanceof FormData ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof ArrayBuffer;
}

/**
 * JSON fetch against the portal's own API.
 * - always credentials: 'same-origin'
 * - non-GET requests carry X-CSRF-Token
 * - plain objects/arrays in opts.body are sent as JSON
 * - non-2xx answers of the form {"error":{"code","message"}} throw ApiError
 * Returns the parsed JSON body, or null for empty answers (e.g. 204).
 */
export async function api(path, opts = {}) {
  const method = String(opts.method || 'GET').toUpperCase();
  const headers = new Headers(opts.headers || undefined);
  if (!headers.has('Accept')) headers.set('Accept', 'application/json');

  let body = opts.body;
  if (body !== undefined && body !== null && !isRawBody(body)) {
    body = JSON.stringify(body);
    if (!headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  }
  if (!isSafeMethod(method) && state.csrfToken) {
    headers.set('X-CSRF-Token', state.csrfToken);
  }

  let res;
  try {
    res = await fetch(path, { ...opts, method, headers, body, credentials: 'same-origin' });
  } catch (err) {
    throw new ApiError(0, 'network_error', 'Could not reach the server. Check your connection and try again.');
  }

  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (_) {
      data = null;
    }
  }

  if (!res.ok) {
    const e = data && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : null;
    const code = e && typeof e.code === 'string' && e.code ? e.code : 'http_' + res.status;
    const message = e && typeof e.message === 'string' && e.message
      ? e.message
      : `The server answered ${res.status}${res.statusText ? ' ' + res.statusText : ''}.`;
    throw new ApiError(res.status, code, message);
  }
  if (text && data === null) {
    throw new ApiError(res.status, 'bad_response', 'The server sent an answer that is not valid JSON.');
  }
  return data;
}

/** The CSRF token of the signed-in user (empty until /api/me has loaded). */
export function csrfToken() {
  return state.csrfToken;
}

// ---------------------------------------------------------------------------
// DOM helpers

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

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

function hasRole(role) {
  return !!state.me && Array.isArray(state.me.roles) && state.me.roles.includes(role);
}

// ---------------------------------------------------------------------------
// Header

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

  $('csrf-token').value = state.csrfToken;
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

function viewFor(pathname) {
  return ROUTES[normalizePath(pathname)] || 'notfound';
}

function render({ focus = false } = {}) {
  if (!state.me) return;
  const view = viewFor(location.pathname);

  for (const section of document.querySelectorAll('.view')) {
    section.hidden = section.dataset.view !== view;
  }
  for (const tab of document.querySelectorAll('.tab')) {
    if (tab.dataset.tab === view) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }

  if (view === 'sessions') {
    const admin = hasRole('admin');
    $('sessions-empty').hidden = !admin;
    $('sessions-forbidden').hidden = admin;
  }

  document.title = `${TITLES[view]} · ${PRODUCT}`;

  if (focus) {
    const h1 = document.querySelector(`[data-view="${view}"] h1`);
    if (h1) h1.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

function navigate(href) {
  const url = new URL(href, location.href);
  if (url.origin !== location.origin) {
    location.assign(url.href);
    return;
  }
  if (url.pathname !== location.pathname || url.search !== location.search) {
    history.pushState(null, '', url.pathname + url.search + url.hash);
  }
  render({ focus: true });
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const target = event.target instanceof Element ? event.target : null;
  const link = target ? target.closest('a[data-route]') : null;
  if (!link || link.target) return;
  if (!state.me) return; // let the browser load the page normally
  event.preventDefault();
  navigate(link.href);
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
  let me;
  try {
    me = await api('/api/me');
    if (!me || typeof me !== 'object') {
      throw new ApiError(200, 'bad_response', 'The server sent an empty account answer.');
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      location.assign('/auth/login?return_to=' + encodeURIComponent(location.pathname));
      return; // keep "Loading…" while the browser leaves
    }
    showLoading(false);
    showError(err && err.message ? String(err.message) : 'Unknown error.');
    return;
  }
  state.me = me;
  state.csrfToken = typeof me.csrfToken === 'string' ? me.csrfToken : '';
  showLoading(false);
  renderHeader(me);
  render();
}

function start() {
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', () => render({ focus: true }));
  $('error-retry').addEventListener('click', () => {
    loadMe();
  });
  loadMe();
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start, { once: true });
} else {
  start();
}
