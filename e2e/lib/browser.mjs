// Debian's Chromium driven by playwright-core: no browser download, the
// flags this closed network needs, a fresh profile per launch.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function executablePath() {
  return process.env.CHROMIUM || '/usr/bin/chromium';
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'pbs-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: executablePath(),
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ARGS,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// launchBrowser starts one Chromium for several users, each in a context
// of its own (its own cookies).
export async function launchBrowser() {
  const browser = await chromium.launch({ executablePath: executablePath(), headless: true, args: ARGS });
  return {
    browser,
    newContext: (opts = {}) => browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts }),
    close: () => browser.close(),
  };
}

// watchErrors collects console errors and uncaught exceptions of a page.
// With origin, only those of that origin's documents and resources count
// (the framed VS Code logs errors of its own).
export function watchErrors(page, origin) {
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url || '';
    if (origin && url && !url.startsWith(origin)) return;
    errors.push(`${msg.text()} (${url || 'no location'})`);
  });
  page.on('pageerror', (err) => errors.push(String(err)));
  return errors;
}

// submitLogin opens the portal, which sends the browser to the dev
// provider's login form, and submits it.
export async function submitLogin(page, sys, username, password = username) {
  await page.goto(`${sys.portal}/playbooks`);
  await page.waitForURL((u) => u.href.startsWith(sys.issuer), { timeout: 15000 });
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
}

// signIn signs a user in and waits for the portal to show them.
export async function signIn(page, sys, username, password = username) {
  await submitLogin(page, sys, username, password);
  await page.waitForURL(`${sys.portal}/playbooks`, { timeout: 15000 });
  await page.getByTestId('user-name').waitFor({ state: 'visible' });
}
