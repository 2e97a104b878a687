import { after, before, beforeEach, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { GatewayClient, GatewayError } from '../src/gateway';
import { FakeGateway, apiError, closedAddress, json } from './server';

const TOKEN = 'pgw_secret-token-123';
const SESSION_ID = '0b6c4c1e-8a59-4d53-9f0e-2f5c2b1c9a10';

describe('GatewayClient', () => {
  const gw = new FakeGateway();
  let url = '';
  const client = (opts = {}) => new GatewayClient({ PLAYBOOK_GATEWAY_URL: url, PLAYBOOK_GATEWAY_TOKEN: TOKEN }, opts);

  before(async () => { url = await gw.start(); });
  after(() => gw.stop());
  beforeEach(() => { gw.seen = []; });

  describe('constructor', () => {
    it('rejects a missing URL', () => {
      assert.throws(() => new GatewayClient({ PLAYBOOK_GATEWAY_TOKEN: TOKEN }),
        (e: unknown) => e instanceof GatewayError && e.code === 'not_configured' && /PLAYBOOK_GATEWAY_URL is not set/.test(e.message));
    });
    it('rejects a missing or blank token', () => {
      for (const tok of [undefined, '', '  ']) {
        assert.throws(() => new GatewayClient({ PLAYBOOK_GATEWAY_URL: url, PLAYBOOK_GATEWAY_TOKEN: tok }),
          (e: unknown) => e instanceof GatewayError && e.code === 'not_configured' && /PLAYBOOK_GATEWAY_TOKEN/.test(e.message));
      }
    });
    it('rejects a URL that is not http(s)', () => {
      for (const bad of ['not a url', 'ftp://example.invalid/', 'file:///etc/passwd']) {
        assert.throws(() => new GatewayClient({ PLAYBOOK_GATEWAY_URL: bad, PLAYBOOK_GATEWAY_TOKEN: TOKEN }),
          (e: unknown) => e instanceof GatewayError && e.code === 'not_configured');
      }
    });
    it('keeps a base path, drops trailing slashes, credentials and query', () => {
      const c = new GatewayClient({ PLAYBOOK_GATEWAY_URL: 'http://u:p@gw.internal:8080/studio/?x=1', PLAYBOOK_GATEWAY_TOKEN: TOKEN });
      assert.equal(c.baseUrl, 'http://gw.internal:8080/studio');
    });
    it('never exposes the token as a property', () => {
      const c = client();
      assert.ok(!JSON.stringify(c).includes(TOKEN));
      assert.ok(!inspect(c, { showHidden: true, depth: 5 }).includes(TOKEN));
    });
  });

  describe('currentSession', () => {
    it('GETs /api/workspace/session with the bearer token', async () => {
      gw.handle = (_req, res) => json(res, 200, { id: SESSION_ID, playbookId: null, name: 'Phishing triage', folder: '/home/coder/playbooks/x' });
      const s = await client().currentSession();
      assert.deepEqual(s, { id: SESSION_ID, playbookId: null, name: 'Phishing triage', folder: '/home/coder/playbooks/x' });
      assert.deepEqual(gw.seen, [{ method: 'GET', url: '/api/workspace/session', authorization: `Bearer ${TOKEN}` }]);
    });
    it('reports 404 no_session', async () => {
      gw.handle = (_req, res) => apiError(res, 404, 'no_session', 'no live edit session');
      await assert.rejects(client().currentSession(),
        { name: 'GatewayError', code: 'no_session', status: 404, route: 'session' });
    });
    it('rejects an answer without an id', async () => {
      gw.handle = (_req, res) => json(res, 200, { name: 'x' });
      await assert.rejects(client().currentSession(), { code: 'bad_response', route: 'session' });
    });
  });

  describe('save', () => {
    it('POSTs /api/edit-sessions/{id}/save and returns the version', async () => {
      gw.handle = (_req, res) => json(res, 201, {
        playbook: { id: 'p1', name: 'Phishing triage', status: 'disabled', currentVersion: 3 },
        version: { number: 3, savedAt: '2025-01-01T00:00:00Z', lines: 120, files: [], warnings: [] },
      });
      const r = await client().save(SESSION_ID);
      assert.deepEqual(r, { playbook: { id: 'p1', name: 'Phishing triage', status: 'disabled' }, version: { number: 3 } });
      assert.deepEqual(gw.seen, [{ method: 'POST', url: `/api/edit-sessions/${SESSION_ID}/save`, authorization: `Bearer ${TOKEN}` }]);
    });
    it('escapes the session id in the path', async () => {
      gw.handle = (_req, res) => apiError(res, 404, 'not_found', 'no such route');
      await assert.rejects(client().save('../x?y'));
      assert.equal(gw.seen[0].url, '/api/edit-sessions/..%2Fx%3Fy/save');
    });
    it('returns the problems of 422 validation_failed (top level or inside error)', async () => {
      const problems = [{ path: 'playbook.py', line: 12, message: 'run() is missing' }, { path: 'manifest.json', message: 'name is required' }];
      for (const shape of ['top', 'inside']) {
        gw.handle = (_req, res) => shape === 'top'
          ? apiError(res, 422, 'validation_failed', 'the playbook is not valid', { problems })
          : json(res, 422, { error: { code: 'validation_failed', message: 'invalid', problems } });
        await assert.rejects(client().save(SESSION_ID), (e: unknown) => {
          assert.ok(e instanceof GatewayError);
          assert.equal(e.code, 'validation_failed');
          assert.equal(e.status, 422);
          assert.deepEqual(e.problems, [{ path: 'playbook.py', line: 12, message: 'run() is missing' }, { path: 'manifest.json', line: undefined, message: 'name is required' }]);
          return true;
        });
      }
    });
    it('reports 409 stale_session, 501 not_implemented and 401', async () => {
      for (const [status, code] of [[409, 'stale_session'], [501, 'not_implemented'], [401, 'unauthenticated']] as const) {
        gw.handle = (_req, res) => apiError(res, status, code, 'x');
        await assert.rejects(client().save(SESSION_ID), { code, status, route: 'save' });
      }
    });
    it('copes with a 404 that is not in the error format', async () => {
      gw.handle = (_req, res) => json(res, 404, { message: 'Not Found' });
      await assert.rejects(client().save(SESSION_ID), { code: 'http_404', status: 404, message: 'HTTP 404' });
    });
    it('rejects a success that is not JSON', async () => {
      gw.handle = (_req, res) => { res.writeHead(201, { 'Content-Type': 'text/html' }); res.end('<html>'); };
      await assert.rejects(client().save(SESSION_ID), { code: 'bad_response' });
    });
  });

  describe('transport', () => {
    it('reports a refused connection as a network error without the token', async () => {
      const c = new GatewayClient({ PLAYBOOK_GATEWAY_URL: await closedAddress(), PLAYBOOK_GATEWAY_TOKEN: TOKEN });
      await assert.rejects(c.currentSession(), (e: unknown) => {
        assert.ok(e instanceof GatewayError);
        assert.equal(e.code, 'network');
        assert.equal(e.message, 'ECONNREFUSED');
        assert.ok(!e.message.includes(TOKEN) && !e.stack?.includes(TOKEN));
        return true;
      });
    });
    it('gives up after the timeout', async () => {
      gw.handle = () => { /* never answer */ };
      const started = Date.now();
      await assert.rejects(client({ timeoutMs: 200 }).save(SESSION_ID), { code: 'timeout', message: 'no answer within 200 ms' });
      assert.ok(Date.now() - started < 5000);
    });
    it('does not follow redirects (the token stays with the gateway)', async () => {
      gw.handle = (_req, res) => { res.writeHead(302, { Location: 'http://127.0.0.1:1/elsewhere' }); res.end(); };
      await assert.rejects(client().currentSession(), { code: 'network' });
      assert.equal(gw.seen.length, 1);
    });
  });
});
