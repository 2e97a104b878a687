// Cookie tossing from an IDE host, in a real browser against the real
// gateway, dev provider and a code-server workspace. IDE hosts
// (*.ide.playbooks.localhost) share the portal's site, and a workspace can
// serve pages there; such a page may set cookies for the parent domain.
// The worst case is played here: a page on a sibling IDE host name with no
// sandbox at all (the gateway's own /proxy/ pages are sandboxed, see the
// last test) tries, in alice's browser:
//   1. login CSRF: it plants the flow cookie of a sign-in bob started in his
//      own browser and sends alice to bob's callback URL;
//   2. it plants IDE and session cookies of the gateway's names for the
//      parent domains, to break her IDE and shadow her session;
//   3. it floods the parent domain with 150 cookies of 4 KiB.
// Alice must stay signed in as herself, with a working portal and IDE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSystem, freePort, root } from '../lib/system.mjs';
import { launchBrowser, signIn } from '../lib/browser.mjs';

const USERS = join(root, 'e2e', 'fixtures', 'users.json');
const ALICE = '5f0c8e2a-3b1d-4c6e-9a7f-1d2e3f4a5b6c';
const WORKBENCH_MS = 60_000;

let sys;
let chromium;
let evil;
let evilPort;
let attack = ''; // the attack page's script, set once bob's sign-in is captured

before(async () => {
  sys = await startSystem({ users: USERS });
  chromium = await launchBrowser();
  evilPort = await freePort();
  evil = createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><title>hostile</title><pre id="out"></pre><script>${attack}</script>`);
  });
  await new Promise((r) => evil.listen(evilPort, '127.0.0.1', r));
});

after(async () => {
  await chromium?.close();
  await new Promise((r) => (evil ? evil.close(r) : r()));
  await sys?.stop();
});

// /api/me as the portal's own page asks it (the page must be on the portal).
async function me(page) {
  assert.ok(page.url().startsWith(sys.portal), `the page is on ${page.url()}`);
  return page.evaluate(async () => {
    const r = await fetch('/api/me');
    return { status: r.status, body: await r.text() };
  });
}

async function openIDE(page, name) {
  await page.goto(`${sys.portal}/playbooks/new/edit?name=${encodeURIComponent(name)}`);
  await page.frameLocator('[data-testid="ide-frame"]').locator('.monaco-workbench').waitFor({ state: 'visible', timeout: WORKBENCH_MS });
}

test('a page on an IDE host cannot sign alice in as bob, break her IDE or lock her out', async (t) => {
  const aliceCtx = await chromium.newContext();
  const bobCtx = await chromium.newContext();
  const page = await aliceCtx.newPage();
  try {
    await signIn(page, sys, 'alice');
    await openIDE(page, 'Cookie target');

    // Bob starts a sign-in in his own browser and stops before the
    // callback: its URL and his flow cookie are the attack's material.
    const bob = await bobCtx.newPage();
    // Browsers cannot route a redirect hop, so the provider's answer to
    // the login form is fetched here and its redirects followed by hand
    // up to the gateway's callback, which is never visited.
    let callback = '';
    await bob.route(`${sys.issuer}/login`, async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      let res = await route.fetch({ maxRedirects: 0 });
      let loc = sys.issuer;
      for (let i = 0; i < 5 && res.headers().location; i++) {
        loc = new URL(res.headers().location, loc).href;
        if (loc.startsWith(`${sys.portal}/auth/callback`)) { callback = loc; break; }
        res = await bobCtx.request.get(loc, { maxRedirects: 0 });
      }
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'captured' });
    });
    await bob.goto(`${sys.portal}/auth/login?return_to=/playbooks`);
    await bob.waitForURL((u) => u.href.startsWith(sys.issuer), { timeout: 15000 });
    await bob.fill('input[name="username"]', 'bob');
    await bob.fill('input[name="password"]', 'bob');
    await bob.click('button[type="submit"]');
    await bob.getByText('captured').waitFor({ timeout: 15000 });
    assert.ok(callback, 'bob reached the callback');
    const flow = (await bobCtx.cookies(sys.portal)).find((c) => c.name.includes('pbs_login_'));
    assert.ok(flow, 'bob holds a flow cookie');
    t.diagnostic(`bob's flow cookie: ${flow.name}`);

    const plain = flow.name.replace(/^__Host-/, '');
    const junk = 'x'.repeat(40);
    attack = `
      const set = (c) => { try { document.cookie = c; } catch (e) { out.textContent += 'refused: ' + e + '\\n'; } };
      // 3. the flood: 150 cookies of 4 KiB (Chromium keeps 180 per site,
      //    dropping the oldest past that, so it goes first).
      for (let i = 0; i < 150; i++) set('flood' + i + '=' + 'f'.repeat(4000) + '; domain=playbooks.localhost; path=/');
      for (const d of ['playbooks.localhost', 'ide.playbooks.localhost']) {
        // 1. bob's flow cookie, under both names (the browser refuses a
        //    Domain-scoped __Host- cookie; the plain name it takes).
        set('${flow.name}=${flow.value}; domain=' + d + '; path=/');
        set('${plain}=${flow.value}; domain=' + d + '; path=/');
        // 2. the gateway's cookie names, for the parent domains.
        for (const n of ['pbs_ide', '__Host-pbs_ide', 'pbs_session', '__Host-pbs_session']) {
          set(n + '=${junk}; domain=' + d + '; path=/');
          set(n + '=${junk}; domain=' + d + '; path=/api/me');
        }
      }
      out.dataset.cookies = document.cookie.split('; ').map((c) => c.split('=')[0]).join(' ');
    `;

    // Alice visits the hostile page, which plants its cookies (those the
    // browser accepts show in its document.cookie: a parent domain's are
    // sent to the portal too), then goes on to bob's callback.
    await page.goto(`http://evil.ide.playbooks.localhost:${evilPort}/`);
    const planted = (await page.locator('#out').getAttribute('data-cookies')).split(' ');
    t.diagnostic(`${planted.length} cookies planted; refused: ${(await page.textContent('#out')).trim() || 'none'}`);
    assert.ok(planted.filter((n) => n.startsWith('flood')).length === 150, 'the flood was planted');
    assert.ok(planted.includes(plain), 'the plain-named flow cookie was planted');
    assert.ok(!planted.includes(flow.name), 'the browser refused the Domain-scoped __Host- flow cookie');
    await page.goto(callback);
    const callbackBody = await page.textContent('body');
    assert.doesNotMatch(callbackBody, /Bob/, 'the callback did not sign in bob');

    // 1. Alice is still alice, 2. her session is not shadowed, 3. the
    // flood does not lock her out.
    const who = await me(page);
    assert.equal(who.status, 200, `/api/me after the attack: ${who.status} ${who.body.slice(0, 200)}`);
    assert.match(who.body, /Alice Anders/);
    assert.doesNotMatch(who.body, /Bob Berg/);

    // The portal's answers delete the flood (set with Path=/).
    await page.goto(`${sys.portal}/playbooks`);
    await page.getByTestId('user-name').filter({ hasText: 'Alice' }).waitFor({ timeout: 15000 });
    const left = (await aliceCtx.cookies(sys.portal)).filter((c) => c.name.startsWith('flood')).length;
    assert.equal(left, 0, `${left} flood cookies left after a portal page`);

    // 2. Her IDE still works, with junk IDE cookies planted for its parent domain.
    await openIDE(page, 'Cookie target again');
    assert.match((await me(page)).body, /Alice Anders/);

    // The gateway's own first layer: a page the workspace serves on its IDE
    // host (a file through code-server's file server, as the port proxy's
    // pages) runs sandboxed, in an opaque origin where document.cookie
    // throws, so it cannot toss cookies at all.
    writeFileSync(join(sys.projectDir('default', ALICE), 'toss.html'),
      '<!doctype html><pre id="out"></pre><script>try { document.cookie = "tossed=1; domain=playbooks.localhost; path=/"; out.textContent = "set"; } catch (e) { out.textContent = "refused: " + e.name; }</script>');
    const ide = page.frames().find((f) => f.url().includes('.ide.playbooks.localhost'));
    assert.ok(ide, 'the IDE frame');
    const origin = new URL(ide.url()).origin;
    const served = await aliceCtx.newPage();
    const res = await served.goto(`${origin}/vscode-remote-resource?path=${encodeURIComponent('/home/coder/project/toss.html')}`);
    t.diagnostic(`a workspace file on the IDE host: ${res.status()} ${res.headers()['content-type']}`);
    assert.equal(res.status(), 200);
    assert.match(await served.textContent('#out'), /refused: SecurityError/);
    assert.ok(!(await aliceCtx.cookies(sys.portal)).some((c) => c.name === 'tossed'), 'no cookie tossed from the workspace');
  } catch (err) {
    await page.screenshot({ path: join(root, 'e2e', 'output', 'failure-cookies.png') }).catch(() => {});
    t.diagnostic(sys.logs().slice(-6000));
    throw err;
  } finally {
    await aliceCtx.close();
    await bobCtx.close();
  }
});
