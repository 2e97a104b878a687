// @ts-check
// The portal's postMessage API for an outer portal that frames it.
//
// Events the portal sends to window.parent (only to an origin listed in
// ALLOWED_FRAME_ANCESTORS, served by GET /api/embed-config):
//   {source: "playbook-studio", type: "portal.ready", signedIn}
//   {source: "playbook-studio", type: "auth.required"}
//   {source: "playbook-studio", type: "session.opened", sessionId, playbookId, name}
//   {source: "playbook-studio", type: "playbook.saved", playbookId, name, version}
//   {source: "playbook-studio", type: "session.closed", sessionId, playbookId, name, reason}
//   {source: "playbook-studio", type: "command.result", command, requestId, ok, error?, version?}
// Commands it accepts from window.parent (same origin check):
//   {type: "save", requestId?}   save the playbook open in the IDE view
//   {type: "close", requestId?}  close the editor
// Anything else, or from anyone else, is ignored.

export const SOURCE = 'playbook-studio';

const bridge = {
  framed: false,
  allowed: [],
  parentOrigin: null,
  commands: new Map(),
  ready: null,
};

function isFramed() {
  try {
    return window.parent !== window;
  } catch (_) {
    return true;
  }
}

export function framed() {
  return bridge.framed;
}

function originOf(url) {
  try {
    const u = new URL(url);
    return u.origin === 'null' ? null : u.origin;
  } catch (_) {
    return null;
  }
}

/** The parent's origin as the browser reports it, if allowed. */
function findParentOrigin() {
  const candidates = [];
  const ao = location.ancestorOrigins;
  if (ao && ao.length > 0) candidates.push(ao[0]);
  else if (document.referrer) candidates.push(originOf(document.referrer));
  for (const o of candidates) {
    if (o && bridge.allowed.includes(o)) return o;
  }
  return null;
}

function onMessage(event) {
  if (!bridge.framed || event.source !== window.parent) return;
  if (!bridge.allowed.includes(event.origin)) return;
  if (bridge.parentOrigin && event.origin !== bridge.parentOrigin) return;
  bridge.parentOrigin = event.origin; // browsers without ancestorOrigins and referrer
  const data = event.data;
  if (!data || typeof data !== 'object' || typeof data.type !== 'string') return;
  const handler = bridge.commands.get(data.type);
  const requestId = typeof data.requestId === 'string' || typeof data.requestId === 'number' ? data.requestId : undefined;
  if (!handler) {
    send('command.result', { command: data.type, requestId, ok: false, error: 'unknown_command' });
    return;
  }
  Promise.resolve()
    .then(() => handler(data))
    .then((result) => send('command.result', { command: data.type, requestId, ok: true, ...(result || {}) }))
    .catch((err) => send('command.result', {
      command: data.type, requestId, ok: false,
      error: (err && err.code) || 'failed', message: (err && err.message) || String(err),
    }));
}

/** Loads the allowed origins (once). Safe to call when not framed. */
export function initEmbed() {
  if (bridge.ready) return bridge.ready;
  bridge.framed = isFramed();
  if (!bridge.framed) {
    bridge.ready = Promise.resolve();
    return bridge.ready;
  }
  window.addEventListener('message', onMessage);
  bridge.ready = fetch('/api/embed-config', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
    .then((r) => (r.ok ? r.json() : { allowedOrigins: [] }))
    .catch(() => ({ allowedOrigins: [] }))
    .then((cfg) => {
      bridge.allowed = Array.isArray(cfg.allowedOrigins)
        ? cfg.allowedOrigins.filter((o) => typeof o === 'string' && o && o !== 'null')
        : [];
      bridge.parentOrigin = findParentOrigin();
    });
  return bridge.ready;
}

/** Sends an event to the outer portal, if framed by an allowed origin. */
export function send(type, data = {}) {
  if (!bridge.framed || !bridge.parentOrigin) return false;
  try {
    window.parent.postMessage({ ...data, source: SOURCE, type }, bridge.parentOrigin);
    return true;
  } catch (_) {
    return false;
  }
}

/** Registers the handler of a command ("save", "close"). */
export function onCommand(type, handler) {
  bridge.commands.set(type, handler);
}
