// Sign-in through the real dev provider's login page, in a real browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startSystem, outputDir } from '../lib/system.mjs';
import { launch, submitLogin, watchErrors } from '../lib/browser.mjs';

let sys;
let browser;

before(async () => {
  sys = await startSystem();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await sys?.stop();
});

test('alice signs in through the login page and sees the portal with her name', async (t) => {
  const page = await browser.context.newPage();
  try {
    await submitLogin(page, sys, 'alice', 'alice');
    await page.waitForURL(`${sys.portal}/playbooks`, { timeout: 15000 });
    const errors = watchErrors(page);
    await page.reload();
    await page.getByTestId('user-name').waitFor({ state: 'visible', timeout: 10000 });
    assert.equal((await page.getByTestId('user-name').textContent()).trim(), 'Alice Anders');
    assert.equal(await page.getByTestId('tab-sessions').isVisible(), true, 'an admin sees the Sessions tab');
    assert.equal(await page.title(), 'Playbooks · Playbook Studio');
    await page.screenshot({ path: join(outputDir, 'portal-alice.png') });

    // Keyboard: the tabs are reachable and the focus is visible.
    await page.getByTestId('tab-integrations').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${sys.portal}/integrations`);
    assert.equal(await page.getByTestId('tab-integrations').getAttribute('aria-current'), 'page');
    assert.deepEqual(errors, [], 'no console errors on the portal');

    // Sign out goes through the provider's end-session endpoint and back.
    await page.getByTestId('sign-out').click();
    await page.waitForURL((u) => u.href.startsWith(sys.issuer), { timeout: 15000 });
    // (In the browser: Node's resolver does not know *.localhost.)
    const me = await page.goto(`${sys.portal}/api/me`);
    assert.equal(me.status(), 401, 'the session is gone after sign-out');
  } catch (err) {
    await page.screenshot({ path: join(outputDir, 'signin-failure.png') }).catch(() => {});
    t.diagnostic(sys.logs());
    throw err;
  } finally {
    await page.close();
  }
});

test('a wrong password is refused on the login page, bob sees no Sessions tab', async (t) => {
  const page = await browser.context.newPage();
  try {
    await submitLogin(page, sys, 'bob', 'not-his-password');
    await page.getByText('Unknown user or wrong password.').waitFor({ timeout: 10000 });
    assert.ok(page.url().startsWith(sys.issuer), 'still on the provider');
    await page.fill('input[name="username"]', 'bob');
    await page.fill('input[name="password"]', 'bob');
    await page.click('button[type="submit"]');
    await page.waitForURL(`${sys.portal}/playbooks`, { timeout: 15000 });
    await page.getByTestId('user-name').waitFor({ state: 'visible' });
    assert.equal((await page.getByTestId('user-name').textContent()).trim(), 'Bob Berg');
    assert.equal(await page.getByTestId('tab-sessions').isVisible(), false, 'bob is no admin');
  } catch (err) {
    await page.screenshot({ path: join(outputDir, 'wrong-password-failure.png') }).catch(() => {});
    t.diagnostic(sys.logs());
    throw err;
  } finally {
    await page.close();
  }
});
