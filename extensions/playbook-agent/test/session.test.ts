// The agent loop end to end: AgentSession + ChatClient + ToolExecutor
// against the scripted OpenAI-compatible server replaying transcripts.
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ChatClient, ClientOptions, Transport } from '../src/agent/llm';
import { Folder } from '../src/agent/folder';
import type { Item, ToWebview } from '../src/agent/protocol';
import { AgentSession } from '../src/agent/session';
import { SDK_FILE } from '../src/agent/sdk';
import { localValidate } from './bundlecheck';
import { closedAddress } from './server';
import { ScriptedLLM, TRANSCRIPTS } from './scripted';

type Policy = 'approve' | 'reject' | 'manual';

class Harness {
  posts: ToWebview[] = [];
  session: AgentSession;
  policy: Policy = 'approve';
  rejectFeedback = '';
  autoApprove = false;
  configured: boolean | undefined = true;
  validations = 0;

  constructor(readonly dir: string, url: string, clientOpts: ClientOptions = {}) {
    const transport: Transport = (body, signal) => fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal,
    });
    this.session = new AgentSession({
      folder: new Folder(dir),
      services: {
        chat: new ChatClient(transport, clientOpts),
        validate: async () => { this.validations++; return localValidate(dir); },
        profiles: async () => [],
        modelConfigured: async () => this.configured,
        playbookName: async () => 'Phishing triage',
      },
      autoApprove: () => this.autoApprove,
      post: (m) => this.onPost(m),
    });
  }

  private onPost(m: ToWebview): void {
    this.posts.push(m);
    if (m.type === 'item' && m.item.kind === 'approval' && m.item.state === 'pending') {
      const id = m.item.id;
      if (this.policy === 'approve') setImmediate(() => this.session.approve(id));
      if (this.policy === 'reject') setImmediate(() => this.session.reject(id, this.rejectFeedback));
    }
  }

  items(kind?: Item['kind']): Item[] {
    return this.session.items().filter((i) => !kind || i.kind === kind);
  }

  async waitFor(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; items: ${JSON.stringify(this.items().map((i) => [i.kind, 'state' in i ? i.state : '', 'title' in i ? i.title : '']))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  file(p: string): string {
    return readFileSync(path.join(this.dir, p), 'utf8');
  }
}

function tool(name: string, args: unknown) {
  return { name, arguments: args };
}

// Inline transcripts for the faults; the phishing one is the shared file.
const scenarios: Record<string, unknown> = {
  sneaky: { match: 'sneaky', steps: [
    { reply: { tool_calls: [tool('write_file', { path: 'playbook.py', content: 'print("hacked")\n' })] } },
    { expect: { lastRole: 'tool', lastContains: 'refused in Plan mode' }, reply: { content: 'Understood: here is the plan instead.' } },
  ] },
  badargs: { match: 'badargs', steps: [
    { reply: { tool_calls: [tool('write_file', '{"path": "playbook.py", "content": "def run(alert, ctx')] } },
    { expect: { lastRole: 'tool', lastContains: 'not valid JSON' }, reply: { tool_calls: [tool('write_file', { path: 'playbook.py', content: 'def run(alert, ctx):\n    return {}\n' })] } },
    { expect: { lastContains: 'Created playbook.py' }, reply: { tool_calls: [tool('attempt_completion', { result: 'Done.' })] } },
  ] },
  longctx: { match: 'longctx', steps: [
    { reply: { tool_calls: [tool('read_file', { path: 'playbook_sdk.py' })] } },
    { reply: { tool_calls: [tool('list_files', {})] } },
    { attempts: [
      { error: { status: 400, code: 'llm_error', message: 'The AI model could not answer: the model provider answered 400 (maximum context length is 8192 tokens).' } },
      { reply: { content: 'Shorter now: all good.' } },
    ] },
  ] },
  toolong: { match: 'toolong', steps: [
    { error: { status: 413, code: 'too_large', message: 'The conversation is too long to send; start a new task or clear older messages.' } },
  ] },
  budget: { match: 'budget', steps: [
    { error: { status: 429, code: 'token_budget_exhausted', message: 'Your organisation has used its 8000000 AI tokens for today. The budget resets at midnight UTC.' } },
  ] },
  nomodel: { match: 'nomodel', steps: [
    { error: { status: 503, code: 'no_model', message: 'No AI model is configured on this Playbook Studio.' } },
  ] },
  garbage: { match: 'garbage', steps: [
    { attempts: [
      { raw: 'data: {oops\n\ndata: <html>bad gateway</html>\n\n' },
      { garbage: ['data: {still not json'], reply: { content: 'Recovered after a retry.' } },
    ] },
  ] },
  broken: { match: 'broken', steps: [
    { attempts: [
      { breakAfter: 2, reply: { content: 'This answer will break off in the middle of a sentence, sadly, for the test.' } },
      { reply: { content: 'Second try worked.' } },
    ] },
  ] },
  slow: { match: 'slow', steps: [{ hangMs: 1500, reply: { content: 'too late' } }] },
  stopme: { match: 'stopme', steps: [
    { reply: { tool_calls: [tool('write_file', { path: 'playbook.py', content: 'def run(alert, ctx):\n    return {"v": 2}\n' }), tool('validate', {})] } },
  ] },
  rejectme: { match: 'rejectme', steps: [
    { reply: { tool_calls: [tool('write_file', { path: 'playbook.py', content: 'def run(alert, ctx):\n    return {"v": 2}\n' })] } },
    { expect: { lastContains: 'the user rejected this change' }, reply: { content: 'OK, I will not change it.' } },
  ] },
  sloppy: { match: 'sloppy', steps: [
    { reply: { tool_calls: [tool('nonsense', {})] } },
    { reply: { tool_calls: [tool('read_file', { path: '/etc/passwd' })] } },
    { reply: { tool_calls: [tool('read_file', '{broken')] } },
    { reply: { content: 'never reached' } },
  ] },
};

describe('the agent loop against the scripted LLM server', () => {
  const llm = new ScriptedLLM();
  let scratch: string;
  let dir: string;

  before(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'pbs-transcripts-'));
    const files = [path.join(TRANSCRIPTS, 'phishing.json')];
    for (const [name, t] of Object.entries(scenarios)) {
      const f = path.join(scratch, `${name}.json`);
      writeFileSync(f, JSON.stringify({ name, ...(t as object) }));
      files.push(f);
    }
    await llm.start(files);
  });
  after(async () => {
    await llm.stop();
    rmSync(scratch, { recursive: true, force: true });
  });
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'phishing-triage-'));
    await llm.reset();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('phishing playbook: Plan → plan + diagram → request Act → (switch) → 3 approved writes → validate → complete', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    assert.ok(existsSync(path.join(dir, SDK_FILE)), 'playbook_sdk.py is placed in the folder');
    assert.equal(h.session.mode, 'plan', 'a task starts in Plan mode');

    const done = h.session.send('When a phishing alert comes in, take the sender, check the user exists in our directory, disable the account, tell the SOC.');
    await h.waitFor(() => h.items('actRequest').some((i) => i.kind === 'actRequest' && i.state === 'pending'), 'the request to switch to Act');
    const [plan] = h.items('plan');
    assert.ok(plan && plan.kind === 'plan');
    assert.match(plan.diagram, /^flowchart TD/);
    assert.match(plan.plan, /Microsoft Graph/, 'the plan names the missing profile');
    assert.deepEqual(readdirSync(dir).filter((f) => f !== '.agent').sort(), [SDK_FILE], 'nothing written in Plan mode');
    const streamed = h.posts.filter((m) => m.type === 'delta');
    assert.ok(streamed.length > 2, 'the assistant text arrives in pieces');

    h.session.setMode('act');
    await done;

    const transcript = JSON.parse(readFileSync(path.join(TRANSCRIPTS, 'phishing.json'), 'utf8'));
    const written = transcript.steps.flatMap((s: { reply?: { tool_calls?: { name: string; arguments: { path: string; content: string } }[] } }) =>
      (s.reply?.tool_calls ?? []).filter((c) => c.name === 'write_file').map((c) => c.arguments));
    assert.deepEqual(written.map((w: { path: string }) => w.path), ['playbook.py', 'README.md', 'manifest.json']);
    for (const w of written) assert.equal(h.file(w.path), w.content);

    const approvals = h.items('approval');
    assert.deepEqual(approvals.map((a) => (a.kind === 'approval' ? [a.path, a.state] : [])),
      [['playbook.py', 'approved'], ['README.md', 'approved'], ['manifest.json', 'approved']]);
    const checkpoints = h.items('checkpoint');
    assert.equal(checkpoints.length, 3, 'a checkpoint before each approved write');
    assert.deepEqual(readdirSync(path.join(dir, '.agent', 'checkpoints')).filter((f) => /^\d+$/.test(f)).sort(), ['1', '2', '3']);
    assert.ok(!existsSync(path.join(dir, '.agent', 'checkpoints', '1', 'playbook.py')), 'checkpoint 1 is the folder before the first write');
    assert.ok(existsSync(path.join(dir, '.agent', 'checkpoints', '3', 'README.md')));

    const [validation] = h.items('validation');
    assert.ok(validation && validation.kind === 'validation' && validation.passed, JSON.stringify(validation));
    assert.equal(h.items('completion').length, 1);
    assert.equal(h.items('error').length, 0);

    const reqs = await llm.requests();
    assert.deepEqual(reqs.map((r) => [r.step, r.mode]), [[0, 'plan'], [1, 'plan'], [2, 'act'], [3, 'act'], [4, 'act'], [5, 'act'], [6, 'act']]);
    assert.ok(reqs.every((r) => r.stream && r.tools.includes('write_file') && r.tools.includes('plan_respond')));

    // The history is kept in .agent/tasks/ and comes back when the view opens again.
    const tasks = readdirSync(path.join(dir, '.agent', 'tasks'));
    assert.equal(tasks.length, 1);
    const again = new Harness(dir, llm.url);
    await again.session.open();
    assert.equal(again.session.taskId, h.session.taskId);
    assert.deepEqual(again.items().map((i) => i.kind), h.items().map((i) => i.kind));
    assert.equal(again.session.mode, 'act');
    assert.doesNotMatch(JSON.stringify(again.items('notice')), /interrupted/, 'a finished task is not offered a retry');
    const init = again.posts.find((m) => m.type === 'init');
    assert.ok(init && init.type === 'init' && !init.state.canRetry);

    // Restore the checkpoint taken before the first write: the three files go, nothing is lost.
    await again.session.restore(1);
    assert.deepEqual(readdirSync(dir).filter((f) => f !== '.agent').sort(), [SDK_FILE]);
    assert.ok(existsSync(path.join(dir, '.agent', 'checkpoints', '4', 'playbook.py')), 'the state before the restore is checkpoint 4');
  });

  it('refuses a write the model attempts in Plan mode, and goes on', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('sneaky: just write the file');
    assert.equal(existsSync(path.join(dir, 'playbook.py')), false);
    const t = h.items('tool')[0];
    assert.ok(t.kind === 'tool' && t.status === 'refused', JSON.stringify(t));
    assert.equal(h.items('approval').length, 0);
    assert.match(JSON.stringify(h.items('assistant')), /plan instead/);
  });

  it('answers a tool call with bad arguments with a tool error, and continues', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    h.session.setMode('act');
    h.autoApprove = true;
    await h.session.send('badargs please');
    assert.equal(h.file('playbook.py'), 'def run(alert, ctx):\n    return {}\n');
    assert.ok(h.items('tool').some((t) => t.kind === 'tool' && t.status === 'error' && /not valid JSON/.test(t.title)));
    assert.equal(h.items('completion').length, 1);
  });

  it('gives up with a Retry after repeated invalid tool calls', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('sloppy');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error' && err.retry, JSON.stringify(h.items()));
    assert.match(err.title, /keeps making mistakes/);
  });

  it('context too long: shortens older tool outputs and retries once', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('longctx: read everything');
    assert.equal(h.items('error').length, 0, JSON.stringify(h.items('error')));
    assert.match(JSON.stringify(h.items('notice')), /older tool output.*shortened/);
    const reqs = (await llm.requests()).filter((r) => r.step === 2);
    assert.equal(reqs.length, 2);
    assert.ok(reqs[1].bytes < reqs[0].bytes - 5000, `the retry is smaller (${reqs[0].bytes} → ${reqs[1].bytes})`);
    assert.match(JSON.stringify(h.session.messages()), /shortened to save context/);
  });

  it('context too long twice: suggests a new task, with Retry', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('toolong');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error');
    assert.match(err.title, /too long/);
    assert.equal(err.newTask, true);
    assert.equal(err.retry, true);
  });

  it('budget exhausted (429): a clear message, no Retry, files untouched', async () => {
    writeFileSync(path.join(dir, 'playbook.py'), 'def run(alert, ctx):\n    return {}\n');
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('budget test');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error');
    assert.match(err.title, /token budget is used up/);
    assert.match(err.message, /8000000 AI tokens/);
    assert.equal(err.retry, false);
    assert.equal(h.file('playbook.py'), 'def run(alert, ctx):\n    return {}\n');
    const status = h.posts.filter((m) => m.type === 'status').pop();
    assert.ok(status && status.type === 'status' && status.canRetry === false);
  });

  it('no model (503 no_model): says so and offers the templates', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('nomodel');
    const [nm] = h.items('noModel');
    assert.ok(nm && nm.kind === 'noModel');
    assert.match(nm.message, /LLM_BASE_URL, LLM_MODEL and LLM_API_KEY/);
    assert.deepEqual(nm.templates.map((t) => t.id), ['url-reputation', 'iam-user-block', 'phishing-triage']);
    assert.equal(h.items('error').length, 0);
  });

  it('no model (usage says configured: false): the notice shows as soon as the view opens', async () => {
    const h = new Harness(dir, llm.url);
    h.configured = false;
    await h.session.open();
    assert.equal(h.items('noModel').length, 1);
    const init = h.posts.find((m) => m.type === 'init');
    assert.ok(init && init.type === 'init' && init.state.items.some((i) => i.kind === 'noModel'));
  });

  it('a template writes a valid bundle after a checkpoint, validates it, and can be undone', async () => {
    writeFileSync(path.join(dir, 'playbook.py'), 'mine = True\n');
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.useTemplate('phishing-triage');
    assert.match(h.file('playbook.py'), /def run\(alert: dict, ctx: Context\)/);
    assert.equal(JSON.parse(h.file('manifest.json')).name, 'Phishing triage');
    assert.match(h.file('README.md'), /```mermaid/);
    const [cp] = h.items('checkpoint');
    assert.ok(cp && cp.kind === 'checkpoint' && cp.n === 1);
    assert.equal(readFileSync(path.join(dir, '.agent', 'checkpoints', '1', 'playbook.py'), 'utf8'), 'mine = True\n');
    const [v] = h.items('validation');
    assert.ok(v && v.kind === 'validation' && v.passed, JSON.stringify(v));
    await h.session.restore(1);
    assert.equal(h.file('playbook.py'), 'mine = True\n');
    assert.equal(existsSync(path.join(dir, 'manifest.json')), false);
  });

  it('malformed answers: a readable error with Retry; Retry asks again', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('garbage');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error' && err.retry);
    assert.match(err.title, /could not be read/);
    await h.session.retry();
    assert.match(JSON.stringify(h.items('assistant')), /Recovered after a retry/);
  });

  it('a stream that breaks off: error with Retry; the partial text is marked; Retry works', async () => {
    const h = new Harness(dir, llm.url);
    await h.session.open();
    await h.session.send('broken');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error' && err.retry);
    assert.match(err.title, /Cannot reach the model/);
    await h.session.retry();
    assert.match(JSON.stringify(h.items('assistant')), /Second try worked/);
  });

  it('a slow model: times out with a Retry', async () => {
    const h = new Harness(dir, llm.url, { firstByteTimeoutMs: 300 });
    await h.session.open();
    await h.session.send('slow');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error' && err.retry);
    assert.match(err.title, /too slow/);
  });

  it('an unreachable provider: a readable error with Retry', async () => {
    const h = new Harness(dir, await closedAddress());
    await h.session.open();
    await h.session.send('hello');
    const [err] = h.items('error');
    assert.ok(err && err.kind === 'error' && err.retry);
    assert.match(err.message, /ECONNREFUSED/);
  });

  it('Stop while an approval waits: nothing is written, the conversation stays valid, Retry is offered', async () => {
    writeFileSync(path.join(dir, 'playbook.py'), 'def run(alert, ctx):\n    return {"v": 1}\n');
    const h = new Harness(dir, llm.url);
    h.policy = 'manual';
    await h.session.open();
    h.session.setMode('act');
    const done = h.session.send('stopme');
    await h.waitFor(() => h.items('approval').some((a) => a.kind === 'approval' && a.state === 'pending'), 'the approval card');
    h.session.stop();
    await done;
    assert.equal(h.file('playbook.py'), 'def run(alert, ctx):\n    return {"v": 1}\n');
    const [a] = h.items('approval');
    assert.ok(a.kind === 'approval' && a.state === 'cancelled');
    const msgs = h.session.messages();
    const last = msgs[msgs.length - 1];
    assert.equal(last.role, 'tool', 'every tool call has its result');
    assert.equal(msgs.filter((m) => m.role === 'tool').length, 2);
    assert.match(JSON.stringify(h.items('notice')), /Stopped/);
    assert.equal(h.validations, 0);
  });

  it('a rejected write leaves the file and tells the model', async () => {
    writeFileSync(path.join(dir, 'playbook.py'), 'def run(alert, ctx):\n    return {"v": 1}\n');
    const h = new Harness(dir, llm.url);
    h.policy = 'reject';
    h.rejectFeedback = 'Keep version 1.';
    await h.session.open();
    h.session.setMode('act');
    await h.session.send('rejectme');
    assert.equal(h.file('playbook.py'), 'def run(alert, ctx):\n    return {"v": 1}\n');
    assert.equal(h.items('checkpoint').length, 0);
    assert.match(JSON.stringify(h.session.messages()), /They said: Keep version 1\./);
    assert.match(JSON.stringify(h.items('assistant')), /I will not change it/);
  });

  it('auto-approve: writes without asking, still with a checkpoint', async () => {
    const h = new Harness(dir, llm.url);
    h.policy = 'manual';
    h.autoApprove = true;
    await h.session.open();
    h.session.setMode('act');
    await h.session.send('badargs again');
    assert.equal(h.items('approval').length, 0);
    assert.equal(h.items('checkpoint').length, 1);
    assert.ok(existsSync(path.join(dir, 'playbook.py')));
  });

  it('after a reload, an interrupted turn offers Retry', async () => {
    mkdirSync(path.join(dir, '.agent', 'tasks'), { recursive: true });
    writeFileSync(path.join(dir, '.agent', 'tasks', 't1.json'), JSON.stringify({
      version: 1, id: 't1', title: 'x', createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', mode: 'act',
      messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'validate', arguments: '{}' } }] }],
      items: [{ kind: 'user', id: 'u1', text: 'hi', mode: 'act' }, { kind: 'approval', id: 'e1', tool: 'write_file', path: 'a', summary: 's', preview: '', state: 'pending' }],
    }));
    const h = new Harness(dir, llm.url);
    await h.session.open();
    const init = h.posts.find((m) => m.type === 'init');
    assert.ok(init && init.type === 'init' && init.state.canRetry);
    assert.equal(init.state.mode, 'act');
    const [a] = h.items('approval');
    assert.ok(a.kind === 'approval' && a.state === 'cancelled');
    const msgs = h.session.messages();
    assert.equal(msgs[msgs.length - 1].role, 'tool');
  });
});
