// The scripted OpenAI-compatible server itself (the browser test uses it too).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ScriptedLLM, TRANSCRIPTS } from './scripted';

describe('scripted-llm.mjs', () => {
  const llm = new ScriptedLLM();
  let dir: string;
  const post = (body: unknown, route = '/chat/completions') => fetch(llm.url + route, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'pbs-scripted-'));
    writeFileSync(path.join(dir, 'fallback.json'), JSON.stringify({ name: 'fallback', steps: [{ reply: { content: 'hello from the fallback' } }] }));
    await llm.start([path.join(TRANSCRIPTS, 'phishing.json'), path.join(dir, 'fallback.json')]);
  });
  after(async () => {
    await llm.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers without streaming, as the gateway forwards it (/chat/completions)', async () => {
    const r = await post({ model: 'm', messages: [{ role: 'user', content: 'anything' }] });
    assert.equal(r.status, 200);
    const body = await r.json() as { choices: { message: { content: string } }[]; usage: { total_tokens: number } };
    assert.equal(body.choices[0].message.content, 'hello from the fallback');
    assert.ok(body.usage.total_tokens > 0, 'usage is reported, for the gateway\'s budget');
  });

  it('streams SSE with tool-call fragments and [DONE] (/v1/chat/completions), picking the transcript by the first user message', async () => {
    const r = await post({ stream: true, messages: [{ role: 'system', content: 'PLAN MODE' }, { role: 'user', content: 'a Phishing playbook please' }] }, '/v1/chat/completions');
    assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await r.text();
    assert.match(text, /"name":"plan_respond"/);
    assert.match(text, /data: \[DONE\]\n\n$/);
    assert.ok((text.match(/"tool_calls"/g) ?? []).length > 3, 'arguments come in fragments');
  });

  it('answers a request that does not match the transcript with a readable 500', async () => {
    const r = await post({ messages: [{ role: 'user', content: 'phishing' }, { role: 'assistant', content: 'x' }, { role: 'user', content: 'not a tool result' }] });
    assert.equal(r.status, 500);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /step 1: expected the last message from "tool"/);
  });

  it('logs what it was asked', async () => {
    const reqs = await llm.requests();
    assert.ok(reqs.length >= 3);
    assert.equal(reqs[1].transcript, 'phishing playbook');
    assert.equal(reqs[1].mode, 'plan');
  });
});
