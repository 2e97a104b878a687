// An example outer portal: it frames Playbook Studio, logs the events the
// studio sends (checked by origin and source), and sends it commands.
//   ?portal=http://playbooks.localhost:8080   the studio's URL (default)

const params = new URLSearchParams(location.search);
const portalUrl = new URL(params.get('portal') || 'http://playbooks.localhost:8080/playbooks');
if (portalUrl.pathname === '/') portalUrl.pathname = '/playbooks';
const portalOrigin = portalUrl.origin;

const frame = document.getElementById('studio');
const events = document.getElementById('events');
document.getElementById('portal-origin').textContent = portalOrigin;

// Everything received, for people and for the browser tests.
window.studioEvents = [];

function log(text, data) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (data && data.type) li.dataset.type = data.type;
  events.prepend(li);
}

window.addEventListener('message', (event) => {
  // Only the studio, and only from its own frame.
  if (event.origin !== portalOrigin || event.source !== frame.contentWindow) return;
  const data = event.data;
  if (!data || data.source !== 'playbook-studio' || typeof data.type !== 'string') return;
  window.studioEvents.push(data);
  const { source, type, ...rest } = data;
  log(`${type} ${JSON.stringify(rest)}`, data);
});

let requestId = 0;
function command(type) {
  const id = `req-${++requestId}`;
  frame.contentWindow.postMessage({ type, requestId: id }, portalOrigin);
  log(`→ ${type} (${id})`);
}

document.getElementById('cmd-save').addEventListener('click', () => command('save'));
document.getElementById('cmd-close').addEventListener('click', () => command('close'));

frame.src = portalUrl.href;
