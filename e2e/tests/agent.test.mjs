// The Playbook Agent end to end, in a real browser against the real gateway,
// the dev provider, a real code-server workspace and a scripted
// OpenAI-compatible model (extensions/playbook-agent/test/scripted-llm.mjs
// replaying test/transcripts/phishing.json) as the gateway's LLM_BASE_URL:
// alice asks for the phishing playbook in Plan mode → plan and diagram →
// Act → files written → Save → a disabled playbook whose documentation
// holds the diagram. Then a tenant over its daily budget sees the 429 as a
// clear message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startSystem, outputDir, root } from '../lib/system.mjs';
import { launchBrowser, signIn, watchErrors } from '../lib/browser.mjs';

const USERS = join(root, 'e2e', 'fixtures', 'users.json');
const ALICE = '5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c';
const AGENT = join(root, 'extensions', 'playbook-agent');
const TRANSCRIPT = join(AGENT, 'test', 'transcripts', 'phishing.json');
const REQUEST = 'When a phishing alert comes in, take the sender, check the user exists in our directory, disable the account, tell the SOC';
const WORKBENCH_MS = 60_000;

let llm;
let chromium;
const systems = [];

// startScriptedLLM runs the scripted model on a free loopback port and
// resolves with { url, requests(), stop() }.
function startScriptedLLM(transcript) {
  const child = spawn(process.execPath, [join(AGENT, 'test', 'scripted-llm.mjs'), '--transcript', transcript, '--host', '127.0.0.1', '--port', '0'], {
    cwd: AGENT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  child.stderr.on('data', (c) => log.push(c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scripted LLM did not start: ${log.join('')}`)), 10000);
    child.once('exit', (code) => reject(new Error(`scripted LLM exited with ${code}: ${log.join('')}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg;
      try { msg = JSON.parse(line); } catch (_) { return; }
      if (!msg.listening) return;
      clearTimeout(timer);
      resolve({
        url: msg.listening,
        log: () => log.join(''),
        requests: async () => (await fetch(`${msg.listening}/_scripted/requests`)).json(),
        stop: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(t);
        },
      });
    });
  });
}

async function system(env) {
  const sys = await startSystem({ users: USERS, env: { LLM_BASE_URL: llm.url, LLM_MODEL: 'scripted', LLM_API_KEY: 'test-key', ...env } });
  systems.push(sys);
  return sys;
}

before(async () => {
  llm = await startScriptedLLM(TRANSCRIPT);
  chromium = await launchBrowser();
  mkdirSync(outputDir, { recursive: true });
});

after(async () => {
  await chromium?.close();
  for (const sys of systems) await sys.stop();
  await llm?.stop();
});

function shot(page, name) {
  return page.screenshot({ path: join(outputDir, name) });
}

function ideFrame(page) {
  return page.frameLocator('[data-testid="ide-frame"]');
}

// createPlaybook: Create ▸ Playbook generator, a name, Continue; resolves
// when the workbench shows in the IDE view.
async function createPlaybook(page, name) {
  await page.getByTestId('create-menu').click();
  await page.getByTestId('create-generator').click();
  await page.getByTestId('create-name').fill(name);
  await page.getByTestId('create-continue').click();
  await ideFrame(page).locator('.monaco-workbench').waitFor({ state: 'visible', timeout: WORKBENCH_MS });
}

// chatFrame finds the agent's chat webview: the frame (inside the IDE's
// iframe.webview) that holds the chat input.
async function chatFrame(page, ms = 45000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    for (const f of page.frames()) {
      try {
        if (await f.locator('[data-testid="chat-input"]').count() > 0) return f;
      } catch (_) {
        // a frame going away
      }
    }
    await page.waitForTimeout(250);
  }
  throw new Error('the agent chat view did not appear');
}

async function planMode(chat) {
  const mode = chat.getByTestId('mode');
  await mode.waitFor({ state: 'visible' });
  if (await mode.getAttribute('data-mode') !== 'plan') await chat.getByTestId('mode-plan').click();
  await chat.locator('[data-testid="mode"][data-mode="plan"]').waitFor();
}

async function send(chat, text) {
  await chat.getByTestId('chat-input').fill(text);
  await chat.getByTestId('send').click();
  await chat.getByTestId('message-user').filter({ hasText: text.slice(0, 40) }).first().waitFor();
}

// The playbook folder the agent wrote into: the one of the project with a
// playbook.py (the folder's name comes from the playbook's name).
function writtenFolder(projectDir) {
  if (!existsSync(projectDir)) return null;
  for (const d of readdirSync(projectDir, { withFileTypes: true })) {
    if (d.isDirectory() && !d.name.startsWith('.') && existsSync(join(projectDir, d.name, 'playbook.py'))) return join(projectDir, d.name);
  }
  return null;
}

async function failing(t, sys, page, name, err) {
  if (page) await shot(page, `failure-agent-${name}.png`).catch(() => {});
  t.diagnostic(sys ? sys.logs().slice(-6000) : '');
  t.diagnostic(`scripted LLM: ${llm.log().slice(-2000)}`);
  throw err;
}

test('alice has the agent plan, draw and write the phishing playbook, and saves it', async (t) => {
  const sys = await system({});
  const context = await chromium.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page, sys.portal);
  try {
    await signIn(page, sys, 'alice');
    await createPlaybook(page, 'Phishing triage');
    const chat = await chatFrame(page);
    await planMode(chat);
    await chat.locator('[data-testid="status"][data-state="idle"]').waitFor({ state: 'attached' });
    await shot(page, 'agent-01-chat.png');

    // Plan mode: the plan and its drawn flowchart, then the request to act.
    await send(chat, REQUEST);
    await chat.getByTestId('plan').waitFor({ timeout: 30000 });
    await chat.locator('[data-testid="plan-diagram"] svg').first().waitFor({ timeout: 30000 });
    const actRequest = chat.locator('[data-testid="act-request"][data-state="pending"]');
    await actRequest.waitFor({ timeout: 30000 });
    assert.match(await chat.getByTestId('plan').first().textContent(), /Microsoft Graph/);
    assert.equal(writtenFolder(sys.projectDir('default', ALICE)), null, 'nothing is written in Plan mode');
    await shot(page, 'agent-02-plan.png');

    // Act: approve every file write as it is asked for, until the agent is done.
    await actRequest.getByTestId('switch-to-act').click();
    await chat.locator('[data-testid="mode"][data-mode="act"]').waitFor();
    const deadline = Date.now() + 60000;
    let approved = 0;
    for (;;) {
      if (await chat.getByTestId('completion').count() > 0) break;
      const err = chat.getByTestId('error');
      if (await err.count() > 0) throw new Error(`the agent failed: ${await err.first().textContent()}`);
      const pending = chat.locator('[data-testid="approval"][data-state="pending"]');
      if (await pending.count() > 0) {
        await pending.first().getByTestId('approval-preview').waitFor({ timeout: 5000 }).catch(() => {});
        if (approved === 0) await shot(page, 'agent-03-approval.png');
        // The card may re-render between the count and the click (the
        // stream goes on): a click that finds nothing is simply retried.
        const clicked = await pending.first().getByTestId('approve').click({ timeout: 5000 }).then(() => true, () => false);
        if (clicked) approved++;
        await page.waitForTimeout(100);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`no completion after ${approved} approvals`);
      await page.waitForTimeout(200);
    }
    assert.equal(approved, 3, 'three file writes were approved');
    await chat.locator('[data-testid="validation"][data-passed="true"]').first().waitFor({ timeout: 10000 });
    await shot(page, 'agent-04-completion.png');

    const folder = writtenFolder(sys.projectDir('default', ALICE));
    assert.ok(folder, 'the playbook folder has playbook.py');
    for (const f of ['playbook.py', 'README.md', 'manifest.json']) assert.ok(existsSync(join(folder, f)), `${f} is written`);
    const readme = readFileSync(join(folder, 'README.md'), 'utf8');
    assert.match(readme, /```mermaid\s*\nflowchart/, 'the README holds the flowchart');

    // Save from the portal: version 1, disabled until activated.
    await page.getByTestId('editor-save').click();
    await page.getByTestId('save-result').filter({ hasText: 'Version 1 saved' }).waitFor({ timeout: 20000 });
    assert.match(await page.getByTestId('save-result').textContent(), /disabled until activated/);
    assert.match(page.url(), /\/playbooks\/[0-9a-f-]{36}\/edit$/);
    const id = page.url().split('/')[4];
    await shot(page, 'agent-05-saved.png');

    await page.getByTestId('editor-close').click();
    await page.waitForURL(`${sys.portal}/playbooks`);
    const row = page.locator('[data-testid="playbook-row"][data-name="Phishing triage"]');
    await row.waitFor();
    const sw = row.getByTestId('status-switch');
    assert.equal(await sw.getAttribute('aria-checked'), 'false');
    assert.equal((await sw.textContent()).trim(), 'Disabled');
    await shot(page, 'agent-06-list.png');

    const pb = await page.evaluate(async (pid) => {
      const res = await fetch(`/api/playbooks/${pid}`, { headers: { Accept: 'application/json' } });
      return { status: res.status, body: await res.json() };
    }, id);
    assert.equal(pb.status, 200);
    assert.equal(pb.body.status, 'disabled');
    assert.match(pb.body.documentation, /```mermaid\s*\nflowchart TD/, 'the documentation holds the diagram');
    assert.match(pb.body.documentation, /Disable the account/);

    // What the model was asked: the gateway chose the model, the steps ran in order.
    const asked = await llm.requests();
    const list = Array.isArray(asked) ? asked : asked.requests || [];
    assert.ok(list.length >= 6, `the model was asked at least 6 times (got ${list.length})`);
    assert.deepEqual(errors, [], 'no console errors on the portal');
  } catch (err) {
    await failing(t, sys, page, 'flow', err);
  } finally {
    await context.close();
  }
});

test('a tenant over its daily token budget sees the 429 as a clear message', async (t) => {
  const sys = await system({ LLM_DAILY_TOKEN_BUDGET: '0' });
  const context = await chromium.newContext();
  const page = await context.newPage();
  try {
    await signIn(page, sys, 'alice');
    await createPlaybook(page, 'Phishing triage');
    const chat = await chatFrame(page);
    await planMode(chat);
    await send(chat, REQUEST);
    const err = chat.getByTestId('error');
    await err.first().waitFor({ timeout: 30000 });
    const text = await err.first().textContent();
    assert.match(text, /budget/i, `the error names the budget: ${text}`);
    assert.match(text, /used up/i);
    assert.equal(await err.first().getAttribute('role'), 'alert');
    assert.equal(await chat.getByTestId('error-retry').count(), 0, 'no Retry: the budget resets at midnight UTC');
    await chat.locator('[data-testid="status"]:not([data-state="running"])').waitFor({ state: 'attached' });
    await shot(page, 'agent-07-budget.png');
  } catch (err) {
    await failing(t, sys, page, 'budget', err);
  } finally {
    await context.close();
  }
});
