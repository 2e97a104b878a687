import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as http from 'node:http';
import { ChatClient, LlmError, Transport } from '../src/agent/llm';
import { describeError, NO_MODEL_MESSAGE } from '../src/agent/errors';
import { GatewayClient } from '../src/gateway';
import { FakeGateway, apiError, closedAddress, json } from './server';

const TOKEN = 'pgw_llm-token-456';

function sse(res: http.ServerResponse, lines: string[], opts: { end?: boolean } = {}): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream' });
  for (const l of lines) res.write(l);
  if (opts.end !== false) res.end();
}

const delta = (d: unknown, finish: string | null = null) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: d, finish_reason: finish }] })}\n\n`;

describe('ChatClient through the gateway client', () => {
  const gw = new FakeGateway();
  let url = '';
  let lastBody = '';
  let transport: Transport;
  const client = (opts = {}) => new ChatClient(transport, opts);

  before(async () => {
    url = await gw.start();
    const g = new GatewayClient({ PLAYBOOK_GATEWAY_URL: url, PLAYBOOK_GATEWAY_TOKEN: TOKEN });
    transport = (body, signal) => {
      lastBody = body;
      return g.chatCompletions(body, signal);
    };
  });
  after(() => gw.stop());

  it('posts to /api/llm/v1/chat/completions with the token, stream: true and the tools; streams content', async () => {
    gw.seen = [];
    gw.handle = (_req, res) => sse(res, [delta({ content: 'Hi' }), delta({ content: ' there' }), delta({}, 'stop'), 'data: [DONE]\n\n']);
    const pieces: string[] = [];
    const r = await client().complete(
      { messages: [{ role: 'user', content: 'hello' }], tools: [{ type: 'function', function: { name: 'validate', description: 'd', parameters: {} } }] },
      { onChunk: (e) => { if (e.content) pieces.push(e.content); } });
    assert.equal(r.content, 'Hi there');
    assert.deepEqual(pieces, ['Hi', ' there']);
    assert.deepEqual(gw.seen, [{ method: 'POST', url: '/api/llm/v1/chat/completions', authorization: `Bearer ${TOKEN}` }]);
    const body = JSON.parse(lastBody);
    assert.equal(body.stream, true);
    assert.equal(body.tool_choice, 'auto');
    assert.equal(body.tools[0].function.name, 'validate');
    assert.equal(body.model, undefined, 'the gateway sets the model');
  });

  it('reads a non-streamed JSON answer too', async () => {
    gw.handle = (_req, res) => json(res, 200, { choices: [{ message: { role: 'assistant', content: 'whole' }, finish_reason: 'stop' }] });
    const r = await client().complete({ messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.content, 'whole');
  });

  const cases: [string, (res: http.ServerResponse) => void, string, string?][] = [
    ['503 no_model', (res) => apiError(res, 503, 'no_model', 'No AI model is configured on this Playbook Studio.'), 'no_model'],
    ['429 token_budget_exhausted', (res) => apiError(res, 429, 'token_budget_exhausted', 'Your organisation has used its 8000000 AI tokens for today.'), 'budget'],
    ['429 from the provider', (res) => apiError(res, 429, 'llm_error', 'The AI model could not answer: rate limited.'), 'rate_limited'],
    ['400 llm_error (context)', (res) => apiError(res, 400, 'llm_error', 'The AI model could not answer: the model provider answered 400 (maximum context length).'), 'context_too_long'],
    ['413 too_large', (res) => apiError(res, 413, 'too_large', 'The conversation is too long to send.'), 'context_too_long'],
    ['502 llm_error', (res) => apiError(res, 502, 'llm_error', 'The AI model could not answer: the model provider cannot be reached.'), 'provider'],
    ['401', (res) => apiError(res, 401, 'unauthorized', 'bad token'), 'unauthorized'],
    ['404 (no such route)', (res) => apiError(res, 404, 'not_found', 'Not Found'), 'unavailable'],
    ['500 without JSON', (res) => { res.writeHead(500); res.end('<html>oops</html>'); }, 'provider'],
  ];
  for (const [name, handler, kind] of cases) {
    it(`maps ${name} to ${kind}`, async () => {
      gw.handle = (_req, res) => handler(res);
      await assert.rejects(client().complete({ messages: [{ role: 'user', content: 'x' }] }),
        (e: unknown) => e instanceof LlmError && e.kind === kind);
    });
  }

  it('reports malformed JSON of a non-streamed answer as bad_response', async () => {
    gw.handle = (_req, res) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"choices": [ oops'); };
    await assert.rejects(client().complete({ messages: [{ role: 'user', content: 'x' }] }), { kind: 'bad_response' });
  });

  it('reports a stream of nothing but garbage as bad_response', async () => {
    gw.handle = (_req, res) => sse(res, ['data: {oops\n\n', 'data: <html>\n\n']);
    await assert.rejects(client().complete({ messages: [{ role: 'user', content: 'x' }] }), { kind: 'bad_response' });
  });

  it('skips garbage chunks among good ones', async () => {
    gw.handle = (_req, res) => sse(res, ['data: {oops\n\n', delta({ content: 'fine' }), 'data: [DONE]\n\n']);
    const r = await client().complete({ messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.content, 'fine');
    assert.equal(r.malformed, 1);
  });

  it('maps an error chunk inside the stream', async () => {
    gw.handle = (_req, res) => sse(res, [`data: ${JSON.stringify({ error: { message: 'This model\'s maximum context length is 8192 tokens' } })}\n\n`]);
    await assert.rejects(client().complete({ messages: [{ role: 'user', content: 'x' }] }), { kind: 'context_too_long' });
  });

  it('times out when the model sends no headers in time', async () => {
    gw.handle = () => { /* never answers */ };
    await assert.rejects(client({ firstByteTimeoutMs: 150 }).complete({ messages: [{ role: 'user', content: 'x' }] }), { kind: 'timeout' });
  });

  it('times out when the stream goes silent', async () => {
    gw.handle = (_req, res) => sse(res, [delta({ content: 'start' })], { end: false });
    await assert.rejects(client({ idleTimeoutMs: 150 }).complete({ messages: [{ role: 'user', content: 'x' }] }), { kind: 'timeout' });
  });

  it('reports a stream that breaks off as a network error', async () => {
    gw.handle = (_req, res) => {
      sse(res, [delta({ content: 'partial' })], { end: false });
      setTimeout(() => res.socket?.destroy(), 30);
    };
    await assert.rejects(client().complete({ messages: [{ role: 'user', content: 'x' }] }),
      (e: unknown) => e instanceof LlmError && e.kind === 'network' && /broke off/.test(e.message));
  });

  it('stops when the caller aborts', async () => {
    gw.handle = (_req, res) => sse(res, [delta({ content: 'start' })], { end: false });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    await assert.rejects(client().complete({ messages: [{ role: 'user', content: 'x' }] }, { signal: ctl.signal }), { kind: 'aborted' });
  });

  it('reports an unreachable gateway as a network error', async () => {
    const g = new GatewayClient({ PLAYBOOK_GATEWAY_URL: await closedAddress(), PLAYBOOK_GATEWAY_TOKEN: TOKEN });
    const c = new ChatClient((body, signal) => g.chatCompletions(body, signal));
    await assert.rejects(c.complete({ messages: [{ role: 'user', content: 'x' }] }),
      (e: unknown) => e instanceof LlmError && e.kind === 'network' && /ECONNREFUSED/.test(e.message));
  });
});

describe('GatewayClient: validate, usage, profiles', () => {
  const gw = new FakeGateway();
  let g: GatewayClient;
  before(async () => { g = new GatewayClient({ PLAYBOOK_GATEWAY_URL: await gw.start(), PLAYBOOK_GATEWAY_TOKEN: TOKEN }); });
  after(() => gw.stop());

  it('POSTs validate and parses the report', async () => {
    gw.seen = [];
    gw.handle = (_req, res) => json(res, 200, { passed: false, errors: [{ path: 'playbook.py', line: 3, message: 'syntax error' }], warnings: [], lines: 12 });
    const r = await g.validate('s1');
    assert.deepEqual(r, { passed: false, errors: [{ path: 'playbook.py', line: 3, message: 'syntax error' }], warnings: [], lines: 12 });
    assert.deepEqual(gw.seen[0], { method: 'POST', url: '/api/edit-sessions/s1/validate', authorization: `Bearer ${TOKEN}` });
  });

  it('reads usage and profiles (and never expects secrets)', async () => {
    gw.handle = (req, res) => req.url === '/api/llm/usage'
      ? json(res, 200, { day: '2026-11-20', used: 5, budget: 8000000, configured: false })
      : json(res, 200, { profiles: [{ name: 'VirusTotal', baseUrl: 'https://vt.example/api/v3', authMethod: 'apiKey' }, { bogus: true }] });
    assert.equal((await g.llmUsage()).configured, false);
    assert.deepEqual(await g.integrationProfiles(), [{ name: 'VirusTotal', baseUrl: 'https://vt.example/api/v3', authMethod: 'apiKey' }]);
  });
});

describe('describeError', () => {
  it('says plainly that no model is configured and how to configure one', () => {
    const v = describeError(new LlmError('no_model', 'x', 503, 'no_model'));
    assert.equal(v.noModel, true);
    assert.equal(v.retry, false);
    assert.equal(v.message, NO_MODEL_MESSAGE);
    for (const s of ['No AI model is configured', 'LLM_BASE_URL', 'LLM_MODEL', 'LLM_API_KEY', 'administrator', 'template']) {
      assert.ok(v.message.includes(s), s);
    }
  });

  it('makes the exhausted budget a clear message without a retry', () => {
    const v = describeError(new LlmError('budget', 'Your organisation has used its 8000000 AI tokens for today. The budget resets at midnight UTC.', 429, 'token_budget_exhausted'));
    assert.match(v.title, /budget is used up/);
    assert.match(v.message, /8000000 AI tokens/);
    assert.match(v.message, /midnight UTC/);
    assert.match(v.message, /files are safe/);
    assert.equal(v.retry, false);
  });

  it('suggests a new task when the context is too long, and offers retries for transient faults', () => {
    assert.deepEqual(
      [describeError(new LlmError('context_too_long', 'too long', 400)).newTask, describeError(new LlmError('context_too_long', 'x')).retry],
      [true, true]);
    for (const kind of ['provider', 'network', 'timeout', 'bad_response', 'rate_limited'] as const) {
      const v = describeError(new LlmError(kind, 'detail'));
      assert.equal(v.retry, true, kind);
      assert.ok(v.message.length > 20, kind);
    }
    assert.equal(describeError(new LlmError('unauthorized', 'no')).retry, false);
  });
});
