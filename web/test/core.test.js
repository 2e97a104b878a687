// The portal's shared helpers (static/assets/core.js): the parts that need
// no page. fetch is replaced per test; the DOM helpers are left to the
// browser tests (e2e/).
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  absTime, api, ApiError, csrfToken, hasRole, messageOf, navigate, parseTime, plural, relTime, setNavigator, sleep, state,
} from '../static/assets/core.js';

/** @type {typeof fetch} */
const realFetch = globalThis.fetch;
/** @type {{ url: string, init: RequestInit }[]} */
let calls = [];

/** Answers every fetch with this status and body (a string, or JSON). */
function answer(status, body, headers = {}) {
  globalThis.fetch = async (url, init) => {
    calls.push({ url: String(url), init });
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, { status, headers });
  };
}

describe('api()', () => {
  beforeEach(() => {
    calls = [];
    state.csrfToken = 'tok-1';
  });
  afterEach(() => {
    globalThis.fetch = realFetch;
    state.csrfToken = '';
  });

  it('GETs JSON with the cookie, and no CSRF token', async () => {
    answer(200, { ok: true });
    assert.deepEqual(await api('/api/me'), { ok: true });
    const { url, init } = calls[0];
    assert.equal(url, '/api/me');
    assert.equal(init.method, 'GET');
    assert.equal(init.credentials, 'same-origin');
    const h = new Headers(init.headers);
    assert.equal(h.get('Accept'), 'application/json');
    assert.equal(h.get('X-CSRF-Token'), null);
  });

  it('sends objects as JSON with the CSRF token on other methods', async () => {
    answer(201, { id: 'p1' });
    assert.deepEqual(await api('/api/playbooks', { method: 'post', body: { name: 'x' } }), { id: 'p1' });
    const { init } = calls[0];
    assert.equal(init.method, 'POST');
    assert.equal(init.body, '{"name":"x"}');
    const h = new Headers(init.headers);
    assert.equal(h.get('Content-Type'), 'application/json');
    assert.equal(h.get('X-CSRF-Token'), 'tok-1');
  });

  it('leaves strings and form data as they are', async () => {
    answer(200, {});
    const form = new URLSearchParams({ a: '1' });
    await api('/x', { method: 'PUT', body: form });
    await api('/x', { method: 'PUT', body: 'raw' });
    assert.equal(calls[0].init.body, form);
    assert.equal(calls[1].init.body, 'raw');
    assert.equal(new Headers(calls[1].init.headers).get('Content-Type'), null);
  });

  it('answers null for an empty answer', async () => {
    answer(204, '');
    assert.equal(await api('/x', { method: 'DELETE' }), null);
  });

  it('throws ApiError with the server\'s code and message', async () => {
    answer(409, { error: { code: 'playbook_locked', message: 'bob is editing it' } });
    await assert.rejects(api('/x'), (e) => e instanceof ApiError && e.status === 409 && e.code === 'playbook_locked' &&
      e.message === 'bob is editing it' && e.body.error.code === 'playbook_locked' && e.headers instanceof Headers);
  });

  it('names the status when the error answer has no code', async () => {
    answer(502, 'Bad Gateway', { 'Content-Type': 'text/plain' });
    await assert.rejects(api('/x'), (e) => e instanceof ApiError && e.code === 'http_502' && e.message === 'The server answered 502.');
  });

  it('refuses a success that is not JSON', async () => {
    answer(200, '<html>');
    await assert.rejects(api('/x'), { name: 'ApiError', code: 'bad_response' });
  });

  it('turns a network failure into network_error, and lets an abort through', async () => {
    globalThis.fetch = async () => { throw new TypeError('fetch failed'); };
    await assert.rejects(api('/x'), { name: 'ApiError', status: 0, code: 'network_error' });
    globalThis.fetch = async () => { throw new DOMException('stopped', 'AbortError'); };
    await assert.rejects(api('/x'), { name: 'AbortError' });
  });
});

describe('the signed-in user', () => {
  afterEach(() => { state.me = null; state.csrfToken = ''; });

  it('hasRole and csrfToken', () => {
    assert.equal(hasRole('author'), false);
    state.me = { roles: ['viewer', 'author'] };
    state.csrfToken = 't';
    assert.equal(hasRole('author'), true);
    assert.equal(hasRole('admin'), false);
    assert.equal(csrfToken(), 't');
    state.me = { roles: 'author' };
    assert.equal(hasRole('author'), false, 'roles must be a list');
  });
});

describe('messages and words', () => {
  it('messageOf', () => {
    assert.equal(messageOf(new Error('boom')), 'boom');
    assert.equal(messageOf(new ApiError(400, 'bad', 'no name')), 'no name');
    assert.equal(messageOf(null), 'Something went wrong.');
    assert.equal(messageOf({ message: '' }), 'Something went wrong.');
  });

  it('plural', () => {
    assert.equal(plural(1, 'line', 'lines'), '1 line');
    assert.equal(plural(0, 'line', 'lines'), '0 lines');
    assert.equal(plural(2, 'line', 'lines'), '2 lines');
  });
});

describe('time', () => {
  const now = Date.parse('2025-06-01T12:00:00Z');
  const at = (ms) => new Date(now + ms).toISOString();
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  it('parseTime', () => {
    assert.equal(parseTime('2025-06-01T12:00:00Z')?.getTime(), now);
    assert.equal(parseTime('yesterday'), null);
    assert.equal(parseTime(''), null);
    assert.equal(parseTime(undefined), null);
  });

  it('relTime, in the user\'s language', () => {
    assert.equal(relTime(at(-10_000), now), 'just now');
    assert.equal(relTime(at(10_000), now), 'in a few seconds');
    assert.equal(relTime(at(-5 * 60_000), now), rtf.format(-5, 'minute'));
    assert.equal(relTime(at(-3 * 3600_000), now), rtf.format(-3, 'hour'));
    assert.equal(relTime(at(-2 * 86400_000), now), rtf.format(-2, 'day'));
    assert.equal(relTime(at(-60 * 86400_000), now), absTime(at(-60 * 86400_000)), 'older: the date');
    assert.equal(relTime('nonsense', now), '');
  });

  it('absTime', () => {
    assert.equal(absTime('nonsense'), '');
    assert.equal(absTime(at(0)), new Date(now).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
  });

  it('sleep ends early when aborted', async () => {
    const ctl = new AbortController();
    const t0 = Date.now();
    const done = sleep(10_000, ctl.signal);
    ctl.abort();
    await done;
    assert.ok(Date.now() - t0 < 1000);
    await sleep(1);
  });
});

describe('navigate', () => {
  it('goes through the router app.js installs', () => {
    /** @type {unknown[][]} */
    const seen = [];
    setNavigator((href, opts) => seen.push([href, opts]));
    navigate('/playbooks');
    navigate('/rules', { replace: true });
    assert.deepEqual(seen, [['/playbooks', undefined], ['/rules', { replace: true }]]);
  });
});
