// @ts-check
// Shared by the portal's modules: the signed-in user, the API helper, DOM
// and time helpers. All user-supplied text is written with textContent;
// nothing here uses innerHTML.

export const PRODUCT = 'Playbook Studio';

export const state = {
  me: null,
  csrfToken: '',
};

// ---------------------------------------------------------------------------
// API

/** Error thrown by api(): the HTTP status, the server's error code, and its body. */
export class ApiError extends Error {
  constructor(status, code, message, body = null, headers = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
    this.headers = headers;
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
    if ((err instanceof Error || err instanceof DOMException) && err.name === 'AbortError') throw err;
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
    throw new ApiError(res.status, code, message, data, res.headers);
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

export function hasRole(role) {
  return !!state.me && Array.isArray(state.me.roles) && state.me.roles.includes(role);
}

/** A sentence for any error thrown by api() or elsewhere. */
export function messageOf(err) {
  if (err && typeof err.message === 'string' && err.message) return err.message;
  return 'Something went wrong.';
}

// ---------------------------------------------------------------------------
// DOM

/**
 * The element with this id (null when there is none). Given its class
 * (HTMLInputElement, HTMLDialogElement, …) it is typed as one, and an
 * element of another kind is an error.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {{ new (): T; prototype: T }} [type]
 * @returns {T}
 */
export function $(id, type) {
  const node = document.getElementById(id);
  if (type && node && !(node instanceof type)) throw new TypeError(`#${id} is not a ${type.name}`);
  return /** @type {T} */ (node);
}

/** el('td', 'cls', 'text') or el('a', {class, href, ...attrs}, child, child…). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (typeof attrs === 'string') {
    if (attrs) node.className = attrs;
  } else if (attrs && typeof attrs === 'object') {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/**
 * The <section class="view"> of a view, by its data-view name.
 * @param {string} name
 * @returns {HTMLElement}
 */
export function viewSection(name) {
  return document.querySelector(`section[data-view="${name}"]`);
}

export function show(node, on = true) {
  if (node) node.hidden = !on;
}

// A hidden status line for screen readers and the toast for everyone.
let toastTimer = 0;
export function toast(message, kind = 'info') {
  const t = $('toast');
  if (!t) return;
  t.textContent = message;
  t.dataset.kind = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

// ---------------------------------------------------------------------------
// Time

const rtf = typeof Intl !== 'undefined' && Intl.RelativeTimeFormat
  ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
  : null;

export function parseTime(s) {
  const t = Date.parse(String(s || ''));
  return Number.isFinite(t) ? new Date(t) : null;
}

export function absTime(s) {
  const d = parseTime(s);
  if (!d) return '';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function relTime(s, now = Date.now()) {
  const d = parseTime(s);
  if (!d) return '';
  const sec = Math.round((d.getTime() - now) / 1000);
  const abs = Math.abs(sec);
  if (!rtf) return absTime(s);
  if (abs < 45) return sec <= 0 ? 'just now' : 'in a few seconds';
  if (abs < 45 * 60) return rtf.format(Math.round(sec / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(sec / 3600), 'hour');
  if (abs < 26 * 86400) return rtf.format(Math.round(sec / 86400), 'day');
  return absTime(s);
}

/** A <time> element showing relative time, with the exact time as its title. */
export function timeEl(s) {
  const t = el('time', { datetime: String(s || ''), title: absTime(s) });
  t.textContent = relTime(s);
  return t;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// ---------------------------------------------------------------------------
// Navigation: app.js installs the router; views call navigate().

/** @typedef {(href: string, opts?: { replace?: boolean }) => void} Navigator */

/** @type {Navigator} */
let navigator_ = (href) => location.assign(href);
/** @param {Navigator} fn */
export function setNavigator(fn) {
  navigator_ = fn;
}
/** @type {Navigator} */
export function navigate(href, opts) {
  navigator_(href, opts);
}

// ---------------------------------------------------------------------------
// Dialogs

/** Asks a yes/no question in the confirm dialog; resolves true for yes. */
export function confirmDialog({ title, text, ok, danger = true }) {
  const d = $('confirm-dialog', HTMLDialogElement);
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  const okBtn = $('confirm-ok');
  okBtn.textContent = ok;
  okBtn.className = danger ? 'btn btn-danger' : 'btn btn-primary';
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
