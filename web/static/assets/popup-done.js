// The end of a sign-in in a popup: tell the framed portal that opened it
// (same origin only), and close.
const message = { source: 'playbook-studio', type: 'signed-in' };
try {
  if (window.opener && window.opener !== window) window.opener.postMessage(message, location.origin);
} catch (_) {
  // the opener is gone or elsewhere: the portal also polls /api/me
}
try {
  const ch = new BroadcastChannel('playbook-studio-auth');
  ch.postMessage(message);
  ch.close();
} catch (_) {
  // no BroadcastChannel
}
setTimeout(() => window.close(), 300);
