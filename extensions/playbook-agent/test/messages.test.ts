import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { GatewayClient, GatewayError } from '../src/gateway';
import {
  NO_SESSION, NOT_ALLOWED, NOT_AVAILABLE, STALE_SESSION,
  diagnosticsByFile, errorMessage, safeRelativePath, savedMessage, validationMessage,
} from '../src/messages';
import { FakeGateway, apiError, closedAddress, json } from './server';

const TOKEN = 'pgw_secret-token-456';

describe('savedMessage', () => {
  it('names the playbook and the version', () => {
    assert.equal(savedMessage({ playbook: { name: 'Phishing triage' }, version: { number: 4 } }),
      'Saved Phishing triage as version 4 (disabled until activated in the portal).');
  });
});

describe('errorMessage', () => {
  const e = (code: string, status?: number, route?: 'session' | 'save', message = 'server says') =>
    new GatewayError(code, message, status, route);
  const cases: [string, GatewayError, string][] = [
    ['missing env', new GatewayError('not_configured', 'This workspace was not started by Playbook Studio (PLAYBOOK_GATEWAY_URL is not set).'),
      'This workspace was not started by Playbook Studio (PLAYBOOK_GATEWAY_URL is not set).'],
    ['stale session', e('stale_session', 409, 'save'), STALE_SESSION],
    ['other 409', e('playbook_locked', 409, 'save', 'another user edits it'), 'Playbook Studio did not save: another user edits it'],
    ['save route 404', e('not_found', 404, 'save'), NOT_AVAILABLE],
    ['save route 404, echo default body', e('http_404', 404, 'save'), NOT_AVAILABLE],
    ['session route missing', e('http_404', 404, 'session'), NOT_AVAILABLE],
    ['no session', e('no_session', 404, 'session'), NO_SESSION],
    ['not implemented', e('not_implemented', 501, 'save'), NOT_AVAILABLE],
    ['501 without code', e('http_501', 501, 'save'), NOT_AVAILABLE],
    ['401', e('unauthenticated', 401, 'session'), NOT_ALLOWED],
    ['403', e('forbidden', 403, 'save'), NOT_ALLOWED],
    ['500', e('internal', 500, 'save', 'database is down'), 'Playbook Studio could not save (HTTP 500, internal): database is down'],
    ['network', e('network', undefined, 'session', 'ECONNREFUSED'), 'Cannot reach Playbook Studio at http://gw:8080: ECONNREFUSED'],
    ['timeout', e('timeout', undefined, 'save', 'no answer within 30 s'), 'Cannot reach Playbook Studio at http://gw:8080: no answer within 30 s'],
  ];
  for (const [name, err, want] of cases) {
    it(name, () => assert.equal(errorMessage(err, 'http://gw:8080'), want));
  }
  it('anything else', () => assert.equal(errorMessage(new Error('boom')), 'Saving failed: boom'));
});

describe('validationMessage', () => {
  it('summarises the first three problems', () => {
    const problems = [
      { path: 'playbook.py', line: 3, message: 'run() is missing' },
      { path: 'manifest.json', message: 'name is required' },
      { path: '', message: 'README.md is missing' },
      { path: 'playbook.py', line: 9, message: 'imports requests' },
    ];
    assert.equal(validationMessage(problems),
      'Playbook Studio did not save: 4 problems: playbook.py:3: run() is missing; manifest.json: name is required; playbook: README.md is missing; and 1 more. See the Problems panel.');
    assert.equal(validationMessage(problems.slice(0, 1)),
      'Playbook Studio did not save: 1 problem: playbook.py:3: run() is missing. See the Problems panel.');
    assert.equal(validationMessage([]), 'Playbook Studio did not save: the playbook is not valid.');
  });
});

describe('diagnosticsByFile', () => {
  it('groups by file with 0-based lines and keeps paths inside the folder', () => {
    assert.deepEqual(diagnosticsByFile([
      { path: 'playbook.py', line: 3, message: 'a' },
      { path: './lib/helpers.py', line: 1, message: 'b' },
      { path: 'playbook.py', line: 0, message: 'c' },
      { path: '../../etc/passwd', line: 2, message: 'd' },
      { path: '/abs/file', message: 'e' },
      { path: '', message: 'f' },
    ]), [
      { path: 'playbook.py', items: [{ line: 2, message: 'a' }, { line: 0, message: 'c' }] },
      { path: 'lib/helpers.py', items: [{ line: 0, message: 'b' }] },
      { path: '', items: [{ line: 1, message: 'd' }, { line: 0, message: 'e' }, { line: 0, message: 'f' }] },
    ]);
  });
  it('safeRelativePath', () => {
    assert.equal(safeRelativePath('a\\b.py'), 'a/b.py');
    assert.equal(safeRelativePath('C:/x'), '');
    assert.equal(safeRelativePath('a/../../b'), '');
  });
});

// The whole path a save takes, minus vscode: gateway answer → message.
describe('gateway answers → messages', () => {
  const gw = new FakeGateway();
  let url = '';
  before(async () => { url = await gw.start(); });
  after(() => gw.stop());

  async function saveMessage(env = { PLAYBOOK_GATEWAY_URL: url, PLAYBOOK_GATEWAY_TOKEN: TOKEN }): Promise<string> {
    let base: string | undefined;
    try {
      const c = new GatewayClient(env);
      base = c.baseUrl;
      const s = await c.currentSession();
      return savedMessage(await c.save(s.id));
    } catch (err) {
      return errorMessage(err, base);
    }
  }
  const session = { id: 's1', playbookId: 'p1', name: 'Phishing triage', folder: '/w' };
  const route = (save: (res: import('node:http').ServerResponse) => void) => {
    gw.handle = (req, res) => req.url === '/api/workspace/session' ? json(res, 200, session) : save(res);
  };

  it('201', async () => {
    route((res) => json(res, 201, { playbook: { name: 'Phishing triage' }, version: { number: 1 } }));
    assert.equal(await saveMessage(), 'Saved Phishing triage as version 1 (disabled until activated in the portal).');
  });
  it('422', async () => {
    route((res) => apiError(res, 422, 'validation_failed', 'invalid', { problems: [{ path: 'playbook.py', line: 1, message: 'syntax error' }] }));
    assert.equal(await saveMessage(), 'Playbook Studio did not save: 1 problem: playbook.py:1: syntax error. See the Problems panel.');
  });
  it('409', async () => {
    route((res) => apiError(res, 409, 'stale_session', 'lost the lock'));
    assert.equal(await saveMessage(), STALE_SESSION);
  });
  it('404 and 501 from a gateway without the records API', async () => {
    route((res) => apiError(res, 404, 'not_found', 'no such route'));
    assert.equal(await saveMessage(), NOT_AVAILABLE);
    route((res) => apiError(res, 501, 'not_implemented', 'later'));
    assert.equal(await saveMessage(), NOT_AVAILABLE);
  });
  it('no session', async () => {
    gw.handle = (_req, res) => apiError(res, 404, 'no_session', 'none');
    assert.equal(await saveMessage(), NO_SESSION);
  });
  it('401', async () => {
    gw.handle = (_req, res) => apiError(res, 401, 'unauthenticated', 'bad token');
    assert.equal(await saveMessage(), NOT_ALLOWED);
  });
  it('unreachable, and the token never shows', async () => {
    const dead = await closedAddress();
    const msg = await saveMessage({ PLAYBOOK_GATEWAY_URL: dead + '/', PLAYBOOK_GATEWAY_TOKEN: TOKEN });
    assert.equal(msg, `Cannot reach Playbook Studio at ${dead}: ECONNREFUSED`);
    assert.ok(!msg.includes(TOKEN));
  });
  it('missing environment', async () => {
    assert.equal(await saveMessage({} as never),
      'This workspace was not started by Playbook Studio (PLAYBOOK_GATEWAY_URL is not set).');
  });
});
