// The DOM-free part of the Integration profiles screens
// (static/assets/integration-model.js): the fields per authentication
// method, the request bodies built from form values, and what is shown for
// secrets and test results (issue 13, part 5).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildCreateBody, buildCredentials, buildPatchBody, fieldOfError, fieldsFor, formValue, METHOD_ORDER, METHODS,
  missingField, secretState, secretSummary, splitList, testResultText, inUseText,
} from '../static/assets/integration-model.js';

const names = (method, kind) => fieldsFor(method).filter((f) => (kind === 'secret') === (f.kind === 'secret')).map((f) => f.name);

describe('fieldsFor()', () => {
  it('follows the API.md table for each method', () => {
    assert.deepEqual(names('oauth2_client_credentials', 'config'), ['tokenUrl', 'clientId', 'scopes', 'audience']);
    assert.deepEqual(names('oauth2_client_credentials', 'secret'), ['clientSecret']);
    assert.deepEqual(names('api_key', 'config'), ['in', 'name']);
    assert.deepEqual(names('api_key', 'secret'), ['apiKey']);
    assert.deepEqual(names('aws_sigv4', 'config'), ['region', 'service', 'accessKeyId']);
    assert.deepEqual(names('aws_sigv4', 'secret'), ['secretAccessKey', 'sessionToken']);
    assert.deepEqual(names('basic', 'config'), ['username']);
    assert.deepEqual(names('basic', 'secret'), ['password']);
    assert.deepEqual(names('bearer', 'config'), []);
    assert.deepEqual(names('bearer', 'secret'), ['token']);
    assert.deepEqual(names('hawk', 'config'), ['id', 'algorithm']);
    assert.deepEqual(names('hawk', 'secret'), ['key']);
    assert.deepEqual(fieldsFor('nope'), []);
    assert.deepEqual([...METHOD_ORDER].sort(), Object.keys(METHODS).sort());
  });

  it('offers `in` and the algorithm as selects, scopes as a list, the optional ones as optional', () => {
    const f = (m, key) => fieldsFor(m).find((x) => x.key === key);
    assert.deepEqual(f('api_key', 'config.in').options.map((o) => o.value), ['header', 'query']);
    assert.deepEqual(f('hawk', 'config.algorithm').options.map((o) => o.value), ['sha256', 'sha1']);
    assert.equal(f('oauth2_client_credentials', 'config.scopes').kind, 'list');
    assert.equal(f('oauth2_client_credentials', 'config.audience').required, false);
    assert.equal(f('aws_sigv4', 'secrets.sessionToken').required, false);
    assert.equal(f('aws_sigv4', 'secrets.sessionToken').kind, 'secret');
  });
});

describe('buildCreateBody()', () => {
  it('builds the oauth2 body with scopes split on commas and spaces', () => {
    const body = buildCreateBody({
      name: ' Graph ', description: 'Microsoft Graph', baseUrl: ' https://graph.microsoft.com ', authMethod: 'oauth2_client_credentials',
      'config.tokenUrl': 'https://login.example/token', 'config.clientId': 'app', 'config.scopes': 'a, b  c,',
      'config.audience': '', 'secrets.clientSecret': ' s3cret ',
    });
    assert.deepEqual(body, {
      name: 'Graph', description: 'Microsoft Graph', baseUrl: 'https://graph.microsoft.com', authMethod: 'oauth2_client_credentials',
      config: { tokenUrl: 'https://login.example/token', clientId: 'app', scopes: ['a', 'b', 'c'] },
      secrets: { clientSecret: ' s3cret ' },
    });
  });

  it('keeps the api_key config name apart from the profile name', () => {
    const body = buildCreateBody({ name: 'VT', baseUrl: 'https://vt', authMethod: 'api_key', 'config.in': 'query', 'config.name': 'apikey', 'secrets.apiKey': 'k' });
    assert.equal(body.name, 'VT');
    assert.deepEqual(body.config, { in: 'query', name: 'apikey' });
    assert.deepEqual(body.secrets, { apiKey: 'k' });
  });

  it('leaves out an empty optional session token and sends a typed one', () => {
    const v = { authMethod: 'aws_sigv4', 'config.region': 'us-east-1', 'config.service': 'iam', 'config.accessKeyId': 'AK', 'secrets.secretAccessKey': 'sk' };
    assert.deepEqual(buildCreateBody(v).secrets, { secretAccessKey: 'sk' });
    assert.deepEqual(buildCreateBody({ ...v, 'secrets.sessionToken': 'st' }).secrets, { secretAccessKey: 'sk', sessionToken: 'st' });
  });

  it('sends only the fields of the chosen method', () => {
    const body = buildCreateBody({ name: 'n', baseUrl: 'https://x', authMethod: 'bearer', 'secrets.token': 't', 'config.username': 'left over', 'secrets.password': 'p' });
    assert.deepEqual(body.config, {});
    assert.deepEqual(body.secrets, { token: 't' });
  });
});

describe('buildPatchBody()', () => {
  const profile = { id: '1', name: 'Old', description: 'd', baseUrl: 'https://x', authMethod: 'basic' };

  it('sends only what changed and never baseUrl or authMethod', () => {
    assert.deepEqual(buildPatchBody(profile, { name: 'New', description: 'd', baseUrl: 'https://evil' }, false), { name: 'New' });
    assert.deepEqual(buildPatchBody(profile, { name: 'Old', description: '' }, false), { description: '' });
    assert.deepEqual(buildPatchBody(profile, { name: 'Old', description: 'd' }, false), {});
  });

  it('replaces the credentials whole', () => {
    assert.deepEqual(buildPatchBody(profile, { name: 'Old', description: 'd', 'config.username': 'u2', 'secrets.password': 'p2' }, true), {
      credentials: { config: { username: 'u2' }, secrets: { password: 'p2' } },
    });
  });
});

describe('formValue()', () => {
  it('never fills a secret back in', () => {
    const f = fieldsFor('basic').find((x) => x.kind === 'secret');
    assert.equal(formValue(f, { password: 'leaked?' }), '');
  });
  it('shows a list as words and a select defaults to its first option', () => {
    assert.equal(formValue(fieldsFor('oauth2_client_credentials').find((x) => x.name === 'scopes'), { scopes: ['a', 'b'] }), 'a b');
    assert.equal(formValue(fieldsFor('hawk').find((x) => x.name === 'algorithm'), {}), 'sha256');
    assert.equal(formValue(fieldsFor('hawk').find((x) => x.name === 'id'), { id: 'dh37fgj492je' }), 'dh37fgj492je');
  });
});

describe('missingField()', () => {
  it('names the first empty required field', () => {
    const keys = ['name', 'baseUrl', 'config.username', 'secrets.password'];
    assert.deepEqual(missingField('basic', { name: 'x', baseUrl: ' ' }, keys), { key: 'baseUrl', message: 'Base API URL is required.' });
    assert.equal(missingField('basic', { name: 'x', baseUrl: 'https://x', 'config.username': 'u' }, keys).key, 'secrets.password');
    assert.equal(missingField('basic', { name: 'x', baseUrl: 'https://x', 'config.username': 'u', 'secrets.password': 'p' }, keys), null);
    assert.equal(missingField('basic', { name: 'x' }, ['name']), null, 'fields not on the form are not asked for');
  });
});

describe('fieldOfError()', () => {
  it('finds the field an API error names', () => {
    const e = (message, code = 'invalid_integration') => ({ code, message });
    assert.equal(fieldOfError(e('config.tokenUrl: must be an https URL'), 'oauth2_client_credentials'), 'config.tokenUrl');
    assert.equal(fieldOfError(e('baseUrl must be an absolute http(s) URL'), 'basic'), 'baseUrl');
    assert.equal(fieldOfError(e('config.name is required'), 'api_key'), 'config.name');
    assert.equal(fieldOfError(e('name must be 1 to 100 characters'), 'api_key'), 'name');
    assert.equal(fieldOfError(e('the clientSecret is missing'), 'oauth2_client_credentials'), 'secrets.clientSecret');
    assert.equal(fieldOfError(e('a profile named "x" exists', 'integration_name_taken'), 'basic'), 'name');
    assert.equal(fieldOfError(e('too many', 'integration_limit'), 'basic'), null);
    assert.equal(fieldOfError(e('something else'), 'basic'), null);
  });
});

describe('secrets and results in words', () => {
  it('shows a stored secret only as "set"', () => {
    const p = { authMethod: 'aws_sigv4', secretsSet: ['secretAccessKey'] };
    assert.equal(secretState(p, 'secretAccessKey'), 'set');
    assert.equal(secretState(p, 'sessionToken'), 'not set');
    assert.deepEqual(secretSummary(p), [
      { name: 'secretAccessKey', label: 'Secret access key', state: 'set' },
      { name: 'sessionToken', label: 'Session token (optional)', state: 'not set' },
    ]);
  });

  it('says ok or failed with the status, the time and the error', () => {
    assert.equal(testResultText({ ok: true, status: 200, durationMs: 35.4, error: null }), 'Connected · HTTP 200 · 35 ms');
    assert.equal(testResultText({ ok: false, status: 401, durationMs: 12, error: 'unauthorized' }), 'Failed · HTTP 401 · 12 ms · unauthorized');
    assert.equal(testResultText({ ok: false, status: 0, durationMs: 3, error: 'egress refused' }), 'Failed · 3 ms · egress refused');
  });

  it('lists the playbooks using a profile', () => {
    assert.equal(inUseText({ inUseBy: ['Phishing triage', 'Block IP'] }), 'Phishing triage, Block IP');
    assert.equal(inUseText({}), '—');
  });

  it('splits scope lists', () => {
    assert.deepEqual(splitList(' a,b\tc  '), ['a', 'b', 'c']);
    assert.deepEqual(splitList(''), []);
  });
});
