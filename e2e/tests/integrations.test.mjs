// Integration profiles end to end (issue 13): in a real browser against the
// real gateway and dev provider, alice creates a profile of each of the six
// authentication methods in the portal and tests each against a local
// service that checks the credentials the way the real one would; renames
// one; cannot change a base URL; sees a wrong secret fail; deletes one; bob
// (no automation role) sees the list read-only; and the IDE view's Add
// integration link opens the same form over the framed IDE, which stays.
//
// The services: one node http server on 127.0.0.1, one base path per
// method. API key, Basic and Bearer are compared exactly; OAuth2 gets its
// token from the dev provider's client-credentials grant and the service
// verifies that RS256 JWT against the provider's /keys (iss, aud, sub,
// scope, exp); for SigV4 and Hawk it checks the Authorization scheme and
// its parts only (the Go tests of internal/egress verify those signatures
// against the reference vectors).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createPublicKey, verify } from 'node:crypto';
import { join } from 'node:path';
import { startSystem, outputDir, root } from '../lib/system.mjs';
import { launchBrowser, signIn, watchErrors } from '../lib/browser.mjs';

const USERS = join(root, 'e2e', 'fixtures', 'users.json');
const WORKBENCH_MS = 60_000;

const CC_ID = 'e2e-robot';
const CC_SECRET = 'robot-secret-4711';
const CC_SCOPE = 'tickets.read';
const AUDIENCE = 'https://tickets.example/api';
const API_KEY = 'vt-key-0123456789';
const BASIC = { user: 'svc-jira', password: 'jira-pass-9876' };
const BEARER = 'bearer-token-abcdef';
const AWS = { region: 'us-east-1', service: 'iam', accessKeyId: 'AKIDEXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const HAWK = { id: 'dh37fgj492je', key: 'werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn' };

let sys;
let chromium;
let service;
let servicePort;
let idpOrigin;
const seen = []; // what the service was sent: path and Authorization scheme

// ---------------------------------------------------------------------------
// The local service

async function verifyJwt(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return 'not a JWT';
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (header.alg !== 'RS256') return `alg ${header.alg}`;
  const jwks = await (await fetch(`${idpOrigin}/keys`)).json();
  const jwk = (jwks.keys || []).find((k) => k.kid === header.kid);
  if (!jwk) return `unknown kid ${header.kid}`;
  const ok = verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(parts[2], 'base64url'));
  if (!ok) return 'bad signature';
  const c = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (c.iss !== sys.issuer) return `iss ${c.iss}`;
  if (!aud.includes(AUDIENCE)) return `aud ${aud}`;
  if (c.sub !== CC_ID) return `sub ${c.sub}`;
  if (!String(c.scope || '').split(' ').includes(CC_SCOPE)) return `scope ${c.scope}`;
  if (!(c.exp > Date.now() / 1000)) return 'expired';
  return '';
}

async function check(method, req, url) {
  const auth = String(req.headers.authorization || '');
  switch (method) {
    case 'apikey':
      return req.headers['x-api-key'] === API_KEY ? '' : 'wrong or missing X-API-Key';
    case 'basic':
      return auth === 'Basic ' + Buffer.from(`${BASIC.user}:${BASIC.password}`).toString('base64') ? '' : 'wrong Basic credentials';
    case 'bearer':
      return auth === `Bearer ${BEARER}` ? '' : 'wrong bearer token';
    case 'oauth':
      return auth.startsWith('Bearer ') ? verifyJwt(auth.slice(7)) : 'no bearer token';
    case 'aws': {
      const re = new RegExp(`^AWS4-HMAC-SHA256 Credential=${AWS.accessKeyId}/\\d{8}/${AWS.region}/${AWS.service}/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$`);
      if (!re.test(auth)) return `not a SigV4 Authorization: ${auth.split(' ')[0]}`;
      return req.headers['x-amz-date'] ? '' : 'no X-Amz-Date';
    }
    case 'hawk':
      if (!auth.startsWith('Hawk ')) return 'not Hawk';
      for (const part of [`id="${HAWK.id}"`, 'ts="', 'nonce="', 'mac="']) if (!auth.includes(part)) return `Hawk header without ${part}`;
      return '';
    default:
      return `unknown path ${url.pathname}`;
  }
}

function startService() {
  return new Promise((resolve) => {
    const srv = createServer(async (req, res) => {
      const url = new URL(req.url, 'http://127.0.0.1');
      const method = url.pathname.split('/')[1];
      let problem;
      try {
        problem = await check(method, req, url);
      } catch (err) {
        problem = String(err);
      }
      seen.push({ path: url.pathname, scheme: String(req.headers.authorization || '').split(' ')[0], problem });
      res.writeHead(problem ? 401 : 200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(problem ? { error: problem } : { ok: true }));
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

before(async () => {
  service = await startService();
  servicePort = service.address().port;
  sys = await startSystem({
    users: USERS,
    env: { EGRESS_ALLOW_CIDRS: '127.0.0.1/32' },
    idpEnv: { DEVIDP_CC_CLIENTS: `${CC_ID}:${CC_SECRET}:${CC_SCOPE}` },
  });
  // The provider listens on 127.0.0.1; its issuer names localhost, which
  // may resolve to ::1, outside EGRESS_ALLOW_CIDRS.
  idpOrigin = sys.issuer.replace('//localhost:', '//127.0.0.1:');
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close();
  await sys?.stop();
  await new Promise((r) => (service ? service.close(r) : r()));
});

// ---------------------------------------------------------------------------
// The profiles, as the form is filled in

const base = (m) => `http://127.0.0.1:${servicePort}/${m}`;
const PROFILES = () => [
  {
    name: 'Tickets (OAuth2)', baseUrl: base('oauth'), method: 'oauth2_client_credentials',
    fields: {
      'config.tokenUrl': `${idpOrigin}/oauth/token`, 'config.clientId': CC_ID, 'secrets.clientSecret': CC_SECRET,
      'config.scopes': CC_SCOPE, 'config.audience': AUDIENCE,
    },
  },
  { name: 'VirusTotal', baseUrl: base('apikey'), method: 'api_key', fields: { 'config.in': 'header', 'config.name': 'X-API-Key', 'secrets.apiKey': API_KEY } },
  {
    name: 'AWS IAM', baseUrl: base('aws'), method: 'aws_sigv4',
    fields: { 'config.region': AWS.region, 'config.service': AWS.service, 'config.accessKeyId': AWS.accessKeyId, 'secrets.secretAccessKey': AWS.secret },
  },
  { name: 'Jira', baseUrl: base('basic'), method: 'basic', fields: { 'config.username': BASIC.user, 'secrets.password': BASIC.password } },
  { name: 'Webhook relay', baseUrl: base('bearer'), method: 'bearer', fields: { 'secrets.token': BEARER } },
  { name: 'Hawk service', baseUrl: base('hawk'), method: 'hawk', fields: { 'config.id': HAWK.id, 'config.algorithm': 'sha256', 'secrets.key': HAWK.key } },
];

async function fill(page, testid, value) {
  const node = page.getByTestId(testid);
  if ((await node.evaluate((n) => n.tagName)) === 'SELECT') await node.selectOption(value);
  else await node.fill(value);
}

async function createProfile(page, p) {
  await page.getByTestId('integration-add').click();
  const dialog = page.getByTestId('integration-dialog');
  await dialog.waitFor({ state: 'visible' });
  await fill(page, 'integration-field-name', p.name);
  await fill(page, 'integration-field-description', `${p.method} test service`);
  await fill(page, 'integration-field-baseUrl', p.baseUrl);
  await fill(page, 'integration-field-authMethod', p.method);
  for (const [key, value] of Object.entries(p.fields)) await fill(page, `integration-field-${key}`, value);
  // Secret fields are password inputs that browsers may not remember.
  for (const key of Object.keys(p.fields).filter((k) => k.startsWith('secrets.'))) {
    const input = page.getByTestId(`integration-field-${key}`);
    assert.equal(await input.getAttribute('type'), 'password', `${key} is a password input`);
    assert.equal(await input.getAttribute('autocomplete'), 'off', `${key} has autocomplete=off`);
  }
  await page.getByTestId('integration-save').click();
  try {
    await dialog.waitFor({ state: 'hidden', timeout: 10000 });
  } catch (err) {
    throw new Error(`"${p.name}" not created: ${await page.getByTestId('integration-dialog').innerText()}\n${sys.logs().slice(-3000)}`);
  }
  await rowOf(page, p.name).waitFor({ state: 'visible' });
}

function rowOf(page, name) {
  return page.locator(`[data-testid="integration-row"][data-name="${name}"]`);
}

async function testConnection(page, name) {
  await rowOf(page, name).getByTestId('integration-test').click();
  await page.getByTestId('integration-test-dialog').waitFor({ state: 'visible' });
  await page.getByTestId('integration-test-path').fill('/check');
  await page.getByTestId('integration-test-run').click();
  const result = page.locator('[data-testid="integration-test-result"][data-ok]');
  await result.waitFor({ state: 'visible', timeout: 20000 });
  const out = { ok: await result.getAttribute('data-ok'), status: await result.getAttribute('data-status'), text: await result.textContent() };
  await page.getByTestId('integration-test-close').click();
  await page.getByTestId('integration-test-dialog').waitFor({ state: 'hidden' });
  return out;
}

function unexpected(errors, ...statuses) {
  return errors.filter((e) => !statuses.some((s) => e.includes(`status of ${s} `)));
}

// ---------------------------------------------------------------------------

let alice;

test('alice creates a profile of each method and each connects', async () => {
  const ctx = await chromium.newContext();
  alice = await ctx.newPage();
  const errors = watchErrors(alice, sys.portal);
  await signIn(alice, sys, 'alice');
  await alice.getByTestId('tab-integrations').click();
  await alice.waitForURL(`${sys.portal}/integrations`);
  await alice.getByTestId('empty-integrations').waitFor({ state: 'visible' });

  // Keyboard: the dialog opens with the name focused and Escape closes it.
  await alice.getByTestId('integration-add').focus();
  await alice.keyboard.press('Enter');
  await alice.getByTestId('integration-dialog').waitFor({ state: 'visible' });
  assert.equal(await alice.evaluate(() => document.activeElement?.id), 'int-name');
  // A required field left empty is named next to it.
  await alice.getByTestId('integration-save').click();
  assert.equal(await alice.getByTestId('integration-field-name').getAttribute('aria-invalid'), 'true');
  await alice.keyboard.press('Escape');
  await alice.getByTestId('integration-dialog').waitFor({ state: 'hidden' });

  for (const p of PROFILES()) await createProfile(alice, p);
  await alice.screenshot({ path: join(outputDir, 'integrations-list.png') });

  const row = rowOf(alice, 'Jira');
  assert.equal(await row.getByTestId('integration-baseurl').textContent(), base('basic'));
  assert.equal(await row.getByTestId('integration-method').getAttribute('data-method'), 'basic');
  assert.match(await row.innerText(), /alice|Alice/, 'who changed it');
  assert.match(await row.getByTestId('integration-inuse').textContent(), /—/);

  for (const p of PROFILES()) {
    const r = await testConnection(alice, p.name);
    assert.equal(r.ok, 'true', `${p.name}: ${r.text}; the service saw ${JSON.stringify(seen.filter((s) => s.path.startsWith(`/${p.baseUrl.split('/').pop()}`)))}`);
    assert.equal(r.status, '200', p.name);
  }
  assert.deepEqual(unexpected(errors), []);
});

test('secrets are shown only as set; a rename keeps them; the base URL cannot change', async () => {
  const page = alice;
  await rowOf(page, 'Webhook relay').getByTestId('integration-edit').click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('secret-summary-token').innerText(), 'Token: set');
  assert.equal(await page.getByTestId('integration-field-baseUrl').isVisible(), false, 'the form does not offer the base URL');
  await page.getByTestId('integration-replace').check();
  assert.equal(await page.getByTestId('integration-field-secrets.token').inputValue(), '', 'a secret is never filled back in');
  await page.getByTestId('integration-replace').uncheck();
  await page.getByTestId('integration-field-name').fill('Webhook relay (renamed)');
  await page.getByTestId('integration-save').click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'hidden' });
  await rowOf(page, 'Webhook relay (renamed)').waitFor({ state: 'visible' });
  assert.equal(await rowOf(page, 'Webhook relay').count(), 0);
  assert.equal((await testConnection(page, 'Webhook relay (renamed)')).ok, 'true', 'the token survived the rename');

  // The API refuses what the form does not offer.
  const id = await rowOf(page, 'Webhook relay (renamed)').getAttribute('data-id');
  const answer = await page.evaluate(async ({ id, url }) => {
    const me = await (await fetch('/api/me')).json();
    const r = await fetch(`/api/integration-profiles/${id}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrfToken }, body: JSON.stringify({ baseUrl: url }),
    });
    return { status: r.status, body: await r.json() };
  }, { id, url: 'http://127.0.0.1:1/elsewhere' });
  assert.equal(answer.status, 400);
  assert.equal(answer.body.error.code, 'immutable_field');
  await page.reload();
  await rowOf(page, 'Webhook relay (renamed)').waitFor({ state: 'visible' });
  assert.equal(await rowOf(page, 'Webhook relay (renamed)').getByTestId('integration-baseurl').textContent(), base('bearer'));
});

test('a wrong secret fails the test with the service\'s status', async () => {
  const page = alice;
  await rowOf(page, 'Jira').getByTestId('integration-edit').click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'visible' });
  await page.getByTestId('integration-replace').check();
  assert.equal(await page.getByTestId('integration-field-config.username').inputValue(), BASIC.user, 'the config is filled in');
  await page.getByTestId('integration-field-secrets.password').fill('not-the-password');
  await page.getByTestId('integration-save').click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'hidden' });
  const r = await testConnection(page, 'Jira');
  assert.equal(r.ok, 'false', r.text);
  assert.equal(r.status, '401', r.text);
  assert.match(r.text, /Failed · HTTP 401/);
});

test('delete asks first', async () => {
  const page = alice;
  await rowOf(page, 'Hawk service').getByTestId('integration-delete').click();
  await page.getByTestId('confirm-dialog').waitFor({ state: 'visible' });
  await page.getByTestId('confirm-cancel').click();
  assert.equal(await rowOf(page, 'Hawk service').count(), 1);
  await rowOf(page, 'Hawk service').getByTestId('integration-delete').click();
  await page.getByTestId('confirm-ok').click();
  await rowOf(page, 'Hawk service').waitFor({ state: 'detached' });
});

test('bob sees the list read-only', async () => {
  const ctx = await chromium.newContext();
  const page = await ctx.newPage();
  await signIn(page, sys, 'bob');
  await page.goto(`${sys.portal}/integrations`);
  await rowOf(page, 'Jira').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('integration-add').isVisible(), false);
  assert.equal(await page.getByTestId('integrations-readonly').isVisible(), true);
  assert.equal(await page.getByTestId('integration-edit').count(), 0);
  assert.equal(await page.getByTestId('integration-delete').count(), 0);
  await ctx.close();
});

test('the IDE view\'s Add integration link opens the form over the IDE, which stays', async () => {
  const page = alice;
  const errors = watchErrors(page, sys.portal);
  await page.goto(`${sys.portal}/playbooks`);
  await page.getByTestId('create-menu').click();
  await page.getByTestId('create-generator').click();
  await page.getByTestId('create-name').fill('Ticket triage');
  await page.getByTestId('create-continue').click();
  const frame = page.frameLocator('[data-testid="ide-frame"]');
  await frame.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: WORKBENCH_MS });
  const src = await page.getByTestId('ide-frame').getAttribute('src');

  const link = page.getByTestId('editor-add-integration');
  await link.waitFor({ state: 'visible' });
  await link.click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'int-name');
  await page.screenshot({ path: join(outputDir, 'integrations-over-ide.png') });
  await page.getByTestId('integration-cancel').click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'hidden' });
  assert.match(page.url(), /\/playbooks\/new\/edit\?name=Ticket%20triage$/);
  assert.equal(await page.getByTestId('ide-frame').getAttribute('src'), src, 'the same IDE frame');
  assert.equal(await frame.locator('.monaco-workbench').isVisible(), true, 'the IDE is still there');
  assert.equal(await page.getByTestId('editor-phase').textContent(), 'Ready');

  // And a profile made there exists, the IDE still open.
  await link.click();
  await fill(page, 'integration-field-name', 'Made in the IDE');
  await fill(page, 'integration-field-baseUrl', base('bearer'));
  await fill(page, 'integration-field-authMethod', 'bearer');
  await fill(page, 'integration-field-secrets.token', BEARER);
  await page.getByTestId('integration-save').click();
  await page.getByTestId('integration-dialog').waitFor({ state: 'hidden' });
  const names = await page.evaluate(async () => (await (await fetch('/api/integration-profiles')).json()).profiles.map((p) => p.name));
  assert.ok(names.includes('Made in the IDE'), names.join(', '));
  assert.equal(await frame.locator('.monaco-workbench').isVisible(), true);
  assert.deepEqual(unexpected(errors), []);
});
