// Starts the whole system for a browser test: the real dev OpenID provider
// and the real gateway (binaries built by `make build`), each on a free
// loopback port, and stops them (by PID) afterwards.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const outputDir = join(root, 'e2e', 'output');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(url, ms) {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
      last = `status ${res.status}: ${await res.text()}`;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} not ready: ${last}`);
}

function start(name, bin, args, env) {
  const cmd = bin.includes('/') ? bin : join(root, 'bin', bin);
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  const keep = (chunk) => {
    log.push(chunk.toString());
    if (log.length > 400) log.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', (code, signal) => {
    if (code !== null && code !== 0) log.push(`${name} exited with ${code}\n`);
    if (signal && signal !== 'SIGTERM') log.push(`${name} killed by ${signal}\n`);
  });
  return { name, child, log };
}

async function stop(proc) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = new Promise((r) => proc.child.once('exit', r));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// workspaceKey is the gateway's key of a user's workspace (internal/workspace/key.go).
export function workspaceKey(tenant, userId) {
  return createHash('sha256').update(`${tenant}\x00${userId}`).digest('hex').slice(0, 16);
}

// startOuter serves the example outer portal (deploy/local) on port.
export async function startOuter(port) {
  const proc = start('outer', process.execPath, [join(root, 'deploy', 'local', 'serve-outer.mjs')], { PORT: String(port) });
  await waitFor(`http://127.0.0.1:${port}/outer.js`, 10000);
  return { stop: () => stop(proc), logs: () => proc.log.join('') };
}

// The gateway leaves local workspaces running when it stops (a restarted
// gateway adopts them); a test run ends the ones its gateway started. A
// sandboxed one ends with its sandbox's PID 1 (`init` in its meta.json;
// SIGKILL, the only signal such an init takes); a plain one is a process
// group whose leader's PID is `pid`.
async function stopWorkspaces(dataDir) {
  const ws = join(dataDir, 'workspaces', 'ws');
  if (!existsSync(ws)) return;
  const groups = [];
  for (const key of readdirSync(ws)) {
    try {
      const { pid, init } = JSON.parse(readFileSync(join(ws, key, 'meta.json'), 'utf8'));
      if (Number.isInteger(init) && init > 1) { try { process.kill(init, 'SIGKILL'); } catch (_) { /* gone */ } }
      if (Number.isInteger(pid) && pid > 1) groups.push(pid);
    } catch (_) {
      // never started
    }
  }
  const alive = (pid) => { try { process.kill(-pid, 0); return true; } catch (_) { return false; } };
  for (const pid of groups) { try { process.kill(-pid, 'SIGTERM'); } catch (_) { /* gone */ } }
  const deadline = Date.now() + 5000;
  while (groups.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of groups.filter(alive)) { try { process.kill(-pid, 'SIGKILL'); } catch (_) { /* gone */ } }
}

// startSystem returns { portal, issuer, dataDir, stop(), logs() }.
// opts.env adds gateway settings (e.g. LLM_BASE_URL, LLM_MODEL, LLM_API_KEY,
// LLM_DAILY_TOKEN_BUDGET); opts.users is a users file for the dev provider,
// opts.idpEnv more of its settings (e.g. DEVIDP_CC_CLIENTS);
// opts.gwPort picks the gateway's port. Workspaces reach the gateway at its
// default WORKSPACE_GATEWAY_URL (http://127.0.0.1:PORT for the local runtime).
export async function startSystem(opts = {}) {
  const gwPort = opts.gwPort || await freePort();
  const idpPort = await freePort();
  // The portal on a *.localhost name, so the IDE hosts below it share its
  // site (see the README: cookies and storage of the framed IDE).
  const portal = `http://playbooks.localhost:${gwPort}`;
  const issuer = `http://localhost:${idpPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'pbs-e2e-'));
  const secret = `e2e-secret-${idpPort}`;
  const idp = start('devidp', 'devidp', [], {
    DEVIDP_ADDR: `127.0.0.1:${idpPort}`,
    DEVIDP_ISSUER: issuer,
    DEVIDP_CLIENT_SECRET: secret,
    DEVIDP_REDIRECT_URIS: `${portal}/auth/callback`,
    DEVIDP_POST_LOGOUT_REDIRECT_URIS: `${portal}/`,
    ...(opts.users ? { DEVIDP_USERS: opts.users } : {}),
    ...(opts.idpEnv || {}),
  });
  const gw = start('gateway', 'gateway', [], {
    LISTEN_ADDR: `127.0.0.1:${gwPort}`,
    METRICS_ADDR: '127.0.0.1:0',
    PUBLIC_URL: portal,
    IDE_URL_TEMPLATE: `http://{session}.ide.playbooks.localhost:${gwPort}`,
    OIDC_ISSUER: issuer,
    OIDC_CLIENT_SECRET: secret,
    DATA_DIR: dataDir,
    REDIS_URL: '',
    ...(opts.env || {}),
  });
  const procs = [gw, idp];
  const logs = () => procs.map((p) => `--- ${p.name}\n${p.log.join('')}`).join('\n');
  try {
    await waitFor(`${issuer}/healthz`, 15000);
    await waitFor(`http://127.0.0.1:${gwPort}/readyz`, 15000);
  } catch (err) {
    for (const p of procs) await stop(p);
    throw new Error(`${err.message}\n${logs()}`);
  }
  mkdirSync(outputDir, { recursive: true });
  return {
    portal,
    issuer,
    dataDir,
    gwPort,
    logs,
    // The project folder of a user's local workspace, on the host (its
    // sandbox sees it as /home/coder/project).
    projectDir(tenant, userId) {
      return join(dataDir, 'workspaces', 'ws', workspaceKey(tenant, userId), 'home', 'project');
    },
    async stop() {
      for (const p of procs) await stop(p);
      await stopWorkspaces(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
