// Alerts in, runs out, in a real browser against the real gateway (its
// bubblewrap runner), the dev provider and a real code-server workspace:
// alice saves a small playbook from the IDE view and activates it, sends a
// sample alert from the Incidents page, runs the playbook on that alert
// with "Run on an alert…" and sees it succeed, then finds the "run
// playbook" row in the incident's Activity and opens its details (result
// and log). Issue 14, the portal.
//
// The portal is reached by its links (client-side routes), so the test
// needs no page path beyond /playbooks from the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startSystem, outputDir, root } from '../lib/system.mjs';
import { launchBrowser, signIn, watchErrors } from '../lib/browser.mjs';

const USERS = join(root, 'e2e', 'fixtures', 'users.json');
const ALICE = '5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c';
const NAME = 'Alert echo';
const WORKSPACE_MS = 90_000;

// A small valid playbook: standard library only, a README with its
// flowchart, a manifest with no integration; it logs, prints and
// returns JSON.
const FILES = {
  'playbook.py': `"""Alert echo: notes an alert's title and severity in the run's log and
returns what it saw."""


def run(alert: dict, ctx) -> dict:
    ctx.log("triaging " + str(alert.get("title", "")))
    print("severity is", alert.get("severity"))
    evidence = alert.get("evidence") or []
    return {
        "alertId": alert.get("id"),
        "severity": alert.get("severity"),
        "evidence": len(evidence),
        "note": "<b>not markup</b>",
    }
`,
  'README.md': `# Alert echo

Notes an alert's title and severity in the run's log and returns them.

\`\`\`mermaid
flowchart LR
  A[Alert] --> B[Log title] --> C[Return severity]
\`\`\`
`,
  'manifest.json': JSON.stringify({
    name: NAME,
    description: 'Notes an alert in the run log and returns its severity.',
    integrations: [],
    entrypoint: 'playbook.py:run',
  }, null, 2) + '\n',
};

let sys;
let chromium;
let page;
let errors = [];

before(async () => {
  sys = await startSystem({ users: USERS });
  chromium = await launchBrowser();
  mkdirSync(outputDir, { recursive: true });
  const context = await chromium.newContext();
  page = await context.newPage();
  errors = watchErrors(page, sys.portal);
  await signIn(page, sys, 'alice');
});

after(async () => {
  await chromium?.close();
  await sys?.stop();
});

function shot(name) {
  return page.screenshot({ path: join(outputDir, name) });
}

async function failing(t, name, err) {
  await shot(`failure-runs-${name}.png`).catch(() => {});
  t.diagnostic(sys.logs().slice(-8000));
  throw err;
}

async function until(what, fn, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// Console lines of the portal's own origin, less the browser's network
// lines for refusals a step expects (the first save's 422…).
function unexpected(...statuses) {
  return errors.filter((e) => !statuses.some((s) => e.includes(`status of ${s} `)));
}

let alertTitle = '';
let incidentId = '';

test('alice saves a small playbook from the IDE view and activates it', async (t) => {
  try {
    await page.getByTestId('create-menu').click();
    await page.getByTestId('create-generator').click();
    await page.getByTestId('create-name').fill(NAME);
    await page.getByTestId('create-continue').click();
    await page.getByTestId('editor-phase').filter({ hasText: 'Ready' }).waitFor({ timeout: WORKSPACE_MS });

    // The playbook's folder (its slug, "--", an id) in alice's project.
    const project = sys.projectDir('default', ALICE);
    const folder = await until('the playbook folder', () => existsSync(project) && readdirSync(project).find((n) => n.startsWith('alert-echo--')), 30_000);
    for (const [name, text] of Object.entries(FILES)) writeFileSync(join(project, folder, name), text);

    await page.getByTestId('editor-save').click();
    await page.getByTestId('save-result').filter({ hasText: 'Version 1 saved' }).waitFor({ timeout: 30_000 });
    await page.getByTestId('editor-close').click();
    await page.waitForURL(`${sys.portal}/playbooks`);
    const sw = page.locator(`[data-testid="playbook-row"][data-name="${NAME}"] [data-testid="status-switch"]`);
    await sw.click();
    await page.locator(`[data-testid="playbook-row"][data-name="${NAME}"] [data-testid="status-switch"][aria-checked="true"]`).waitFor();
    assert.deepEqual(unexpected(), [], 'no console errors on the portal');
  } catch (err) {
    await failing(t, 'save', err);
  }
});

test('a sample alert sent from the Incidents page opens an incident', async (t) => {
  try {
    await page.getByTestId('tab-incidents').click();
    await page.waitForURL(`${sys.portal}/incidents`);
    await page.locator('[data-view="incidents"][data-loaded="true"]').waitFor();
    await page.getByTestId('empty-incidents').waitFor({ state: 'visible' });
    await shot('runs-01-incidents-empty.png');

    await page.getByTestId('send-sample').click();
    const row = page.getByTestId('incident-row').first();
    await row.waitFor();
    incidentId = await row.getAttribute('data-id');
    alertTitle = (await row.getByTestId('incident-link').textContent()).trim();
    assert.match(incidentId, /^\d{8}$/, 'a fresh incident id');
    assert.equal(await row.getByTestId('incident-alerts').textContent(), '1');
    assert.equal(await row.getByTestId('severity').textContent(), 'High');
    await page.getByTestId('toast').filter({ hasText: 'Sample alert' }).waitFor();
    await shot('runs-02-incident-listed.png');
    assert.deepEqual(unexpected(), [], 'no console errors on the portal');
  } catch (err) {
    await failing(t, 'sample', err);
  }
});

test('"Run on an alert…" runs the active playbook on it and follows the run until it succeeds', async (t) => {
  try {
    await page.getByTestId('tab-playbooks').click();
    await page.locator(`[data-testid="playbook-row"][data-name="${NAME}"] [data-testid="playbook-link"]`).click();
    await page.locator('[data-view="playbook"][data-loaded="true"]').waitFor();
    await page.getByTestId('runs-note').filter({ hasText: 'No runs yet' }).waitFor();

    await page.getByTestId('run-on-alert').click();
    const dialog = page.getByTestId('run-alert-dialog');
    await dialog.waitFor({ state: 'visible' });
    const pick = page.getByTestId('run-alert-pick');
    await page.locator('#run-alert-pick:not([disabled])').waitFor();
    const value = await pick.evaluate((s, title) => [...s.options].find((o) => o.textContent.includes(title))?.value || '', alertTitle);
    assert.ok(value, `the picker lists “${alertTitle}”`);
    await pick.selectOption(value);
    await page.getByTestId('run-alert-start').click();
    const progress = page.locator('[data-testid="run-alert-progress"][data-status="succeeded"]');
    await progress.waitFor({ timeout: 60_000 }).catch(async (err) => {
      const status = await page.getByTestId('run-alert-progress').getAttribute('data-status').catch(() => '?');
      throw new Error(`the run did not succeed (status ${status}): ${await page.getByTestId('run-alert-progress').textContent().catch(() => '')} ${err.message}`);
    });
    assert.match(await progress.textContent(), /Run succeeded in/);
    await shot('runs-03-run-succeeded.png');

    await page.getByTestId('run-alert-close').click();
    const runRow = page.locator('[data-testid="run-row"][data-status="succeeded"]');
    await runRow.waitFor();
    assert.equal(await page.getByTestId('run-row').count(), 1);
    assert.match(await runRow.textContent(), /Manual/);
    assert.deepEqual(unexpected(), [], 'no console errors on the portal');
  } catch (err) {
    await failing(t, 'run', err);
  }
});

test('the incident\'s Activity shows the "run playbook" row, and its details show the result and the log', async (t) => {
  try {
    await page.getByTestId('tab-incidents').click();
    await page.locator(`[data-testid="incident-row"][data-id="${incidentId}"] [data-testid="incident-link"]`).click();
    await page.waitForURL(`${sys.portal}/incidents/${incidentId}`);
    await page.locator('[data-view="incident"][data-loaded="true"]').waitFor();
    assert.equal(await page.getByTestId('incident-title').textContent(), alertTitle);
    assert.equal(await page.getByTestId('incident-alert').count(), 1);
    await shot('runs-04-incident-alerts.png');

    await page.getByTestId('incident-tab-activity').click();
    const runRow = page.locator('[data-testid="activity-row"][data-kind="run"]');
    await runRow.waitFor();
    const kinds = await page.getByTestId('activity-row').evaluateAll((rows) => rows.map((r) => r.dataset.kind));
    assert.deepEqual(kinds, ['created', 'run'], 'oldest first: the alert arrived, then the run');
    const runButton = runRow.getByTestId('activity-run');
    assert.match(await runButton.textContent(), new RegExp(`run playbook ${NAME} v1`));
    assert.equal(await runButton.getByTestId('run-status').textContent(), 'Succeeded');
    assert.match(await runButton.getByTestId('activity-duration').textContent(), /\d+(\.\d)? (ms|s)$/);
    await shot('runs-05-incident-activity.png');

    await runButton.click();
    const dialog = page.getByTestId('run-dialog');
    await dialog.waitFor({ state: 'visible' });
    const details = page.locator('[data-testid="run-details"][data-status="succeeded"]');
    await details.waitFor();
    const result = await details.getByTestId('run-result').locator('pre').textContent();
    const parsed = JSON.parse(result);
    assert.equal(parsed.severity, 'high');
    assert.equal(parsed.evidence, 3);
    assert.equal(parsed.note, '<b>not markup</b>', 'the result is shown as text');
    assert.equal(await details.getByTestId('run-result').locator('b').count(), 0, 'no markup from the result');
    const log = await details.getByTestId('run-log').textContent();
    assert.match(log, new RegExp(`triaging ${alertTitle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(log, /severity is high/);
    assert.match(await details.getByTestId('run-calls').textContent(), /No integration was called/);
    assert.match(await page.locator('#run-title').textContent(), new RegExp(`run playbook ${NAME} v1`));
    await shot('runs-06-run-details.png');
    await page.getByTestId('run-close').click();
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(unexpected(), [], 'no console errors on the portal');
  } catch (err) {
    await failing(t, 'activity', err);
  }
});
