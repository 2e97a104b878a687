// @ts-check
// The end of a sign-in in a popup: hand the framed portal that opened it
// (same origin only) a one-time code, and close. The code matters when an
// outer portal on another site frames us: cookies are then partitioned,
// so this window's session is not the frame's; the frame redeems the code
// for a session of its own (POST /auth/handoff/redeem).
async function handoffCode() {
  try {
    const me = await fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!me.ok) return '';
    const { csrfToken } = await me.json();
    const r = await fetch('/auth/handoff', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrfToken, Accept: 'application/json' } });
    if (!r.ok) return '';
    return (await r.json()).code || '';
  } catch (_) {
    return '';
  }
}

(async () => {
  const message = { source: 'playbook-studio', type: 'signed-in', code: await handoffCode() };
  try {
    if (window.opener && window.opener !== window) window.opener.postMessage(message, location.origin);
  } catch (_) {
    // the opener is gone or elsewhere: the portal also polls /api/me
  }
  try {
    const ch = new BroadcastChannel('playbook-studio-auth');
    ch.postMessage({ source: 'playbook-studio', type: 'signed-in' });
    ch.close();
  } catch (_) {
    // no BroadcastChannel
  }
  setTimeout(() => window.close(), 300);
})();
