import { afterEach, beforeEach, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Approvals } from '../src/agent/approvals';
import { Decision, EditRequest, ToolExecutor, ToolHost, ValidationReport } from '../src/agent/executor';
import { checkToolPath, Folder } from '../src/agent/folder';
import type { Mode } from '../src/agent/protocol';

interface Recorder {
  mode: Mode;
  autoApprove: boolean;
  decisions: Decision[];
  asked: EditRequest[];
  checkpoints: string[];
  plans: { plan: string; diagram: string }[];
  completed: string[];
  validations: number;
}

function setup(dir: string, rec: Recorder): ToolExecutor {
  const approvals = new Approvals(() => rec.autoApprove, async (req) => {
    rec.asked.push(req);
    return rec.decisions.shift() ?? { approved: true };
  });
  const host: ToolHost = {
    mode: () => rec.mode,
    approveEdit: (req, signal) => approvals.edit(req, signal),
    beforeWrite: async (req) => { rec.checkpoints.push(req.path); },
    validate: async (): Promise<ValidationReport> => { rec.validations++; return { passed: true, errors: [], warnings: [{ path: 'README.md', message: 'w' }], lines: 3 }; },
    ask: async (q) => `answer to ${q}`,
    showPlan: (plan, diagram) => { rec.plans.push({ plan, diagram }); },
    requestAct: async () => ({ switched: true }),
    complete: (r) => { rec.completed.push(r); },
  };
  return new ToolExecutor(new Folder(dir), host);
}

const call = (name: string, args: unknown) => ({ id: 'c1', name, arguments: typeof args === 'string' ? args : JSON.stringify(args) });
const signal = () => new AbortController().signal;

describe('ToolExecutor', () => {
  let dir: string;
  let rec: Recorder;
  let ex: ToolExecutor;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pbs-exec-'));
    writeFileSync(path.join(dir, 'playbook.py'), 'def run(alert, ctx):\n    return {}\n');
    mkdirSync(path.join(dir, '.agent', 'tasks'), { recursive: true });
    writeFileSync(path.join(dir, '.agent', 'tasks', 'secret.json'), '{}');
    rec = { mode: 'plan', autoApprove: false, decisions: [], asked: [], checkpoints: [], plans: [], completed: [], validations: 0 };
    ex = setup(dir, rec);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('Plan mode', () => {
    const writes: [string, unknown][] = [
      ['write_file', { path: 'playbook.py', content: 'print("changed")\n' }],
      ['write_file', { path: 'new.py', content: 'x = 1\n' }],
      ['replace_in_file', { path: 'playbook.py', search: 'return {}', replace: 'return {"x": 1}' }],
      ['write_file', { path: '../escape.txt', content: 'x' }],
      ['write_file', '{"path": "broken json'],
      ['write_file', {}],
    ];
    for (const [name, args] of writes) {
      it(`refuses ${name} ${JSON.stringify(args).slice(0, 60)} whatever the arguments, and changes nothing`, async () => {
        rec.autoApprove = true; // even with auto-approve on
        const before = readFileSync(path.join(dir, 'playbook.py'), 'utf8');
        const r = await ex.execute(call(name, args), signal());
        assert.equal(r.isError, true);
        assert.equal(r.status, 'refused');
        assert.match(r.content, /refused in Plan mode/);
        assert.match(r.content, /request_act_mode/);
        assert.equal(readFileSync(path.join(dir, 'playbook.py'), 'utf8'), before);
        assert.equal(existsSync(path.join(dir, 'new.py')), false);
        assert.deepEqual(rec.asked, [], 'the user is not even asked');
        assert.deepEqual(rec.checkpoints, []);
      });
    }

    it('still reads, lists, validates, plans and asks', async () => {
      assert.equal((await ex.execute(call('read_file', { path: 'playbook.py' }), signal())).content, 'def run(alert, ctx):\n    return {}\n');
      assert.match((await ex.execute(call('list_files', {}), signal())).content, /playbook\.py \(\d+ bytes\)/);
      assert.match((await ex.execute(call('validate', {}), signal())).content, /Validation passed/);
      const plan = await ex.execute(call('plan_respond', { plan: '1. do it', diagram: '```mermaid\nflowchart TD\n  A --> B\n```' }), signal());
      assert.equal(plan.isError, false);
      assert.deepEqual(rec.plans, [{ plan: '1. do it', diagram: 'flowchart TD\n  A --> B' }], 'fences are stripped');
      assert.match(plan.content, /request_act_mode/);
      assert.match((await ex.execute(call('ask_followup_question', { question: 'Which channel?', options: ['soc'] }), signal())).content, /answer to Which channel\?/);
      assert.match((await ex.execute(call('request_act_mode', {}), signal())).content, /switched to Act mode/);
    });
  });

  describe('path confinement', () => {
    beforeEach(() => { rec.mode = 'act'; rec.autoApprove = true; });
    const bad = ['/etc/passwd', '../outside.py', 'sub/../../outside.py', '..\\outside.py', 'C:\\x.py', '~/x.py', '.agent/tasks/secret.json',
      '.agent', './.agent/x', '.AGENT/x', 'file:///etc/passwd', '', '  ', 'a\0b'];
    for (const p of bad) {
      it(`refuses ${JSON.stringify(p)} for read_file and write_file`, async () => {
        for (const [name, args] of [['read_file', { path: p }], ['write_file', { path: p, content: 'x' }]] as const) {
          const r = await ex.execute(call(name, args), signal());
          assert.equal(r.isError, true, `${name} ${p}`);
          assert.match(r.content, /^Error: /);
        }
        assert.equal(existsSync(path.join(dir, '..', 'outside.py')), false);
        assert.equal(readFileSync(path.join(dir, '.agent', 'tasks', 'secret.json'), 'utf8'), '{}');
        assert.deepEqual(rec.checkpoints, []);
      });
    }

    it('refuses a symbolic link that leads outside the folder', async () => {
      const outside = mkdtempSync(path.join(tmpdir(), 'pbs-outside-'));
      try {
        symlinkSync(outside, path.join(dir, 'link'));
        const r = await ex.execute(call('write_file', { path: 'link/evil.py', content: 'x' }), signal());
        assert.equal(r.isError, true);
        assert.match(r.content, /outside the playbook folder/);
        assert.equal(existsSync(path.join(outside, 'evil.py')), false);
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });

    it('normalizes harmless forms', () => {
      assert.deepEqual(checkToolPath('./lib//helpers.py'), { ok: true, path: 'lib/helpers.py' });
      assert.deepEqual(checkToolPath('lib\\x.py'), { ok: true, path: 'lib/x.py' });
      assert.equal(checkToolPath('.agentx/y').ok, true, 'only .agent itself is private');
    });

    it('never lists .agent/', async () => {
      const r = await ex.execute(call('list_files', {}), signal());
      assert.doesNotMatch(r.content, /\.agent/);
      assert.match(r.content, /playbook\.py/);
    });
  });

  describe('bad arguments', () => {
    beforeEach(() => { rec.mode = 'act'; });
    const cases: [string, string, RegExp][] = [
      ['write_file', '{"path": "a.py", "content": "unterminated', /not valid JSON/],
      ['write_file', '[1, 2]', /not valid JSON \(not a JSON object\)/],
      ['write_file', '{"path": "a.py"}', /"content" argument is missing/],
      ['write_file', '{"path": 3, "content": "x"}', /"path" argument must be a string/],
      ['replace_in_file', '{"path": "playbook.py", "search": "nowhere", "replace": "x"}', /not found/],
      ['read_file', '{"path": "missing.py"}', /does not exist/],
      ['ask_followup_question', '{"question": "q", "options": "soc"}', /must be an array/],
      ['plan_respond', '{"plan": "p"}', /"diagram" argument is missing/],
      ['attempt_completion', '{}', /"result" argument is missing/],
      ['delete_everything', '{}', /no tool named "delete_everything"/],
      ['', '{}', /no tool named/],
    ];
    for (const [name, args, re] of cases) {
      it(`answers ${name || '(no name)'} ${args} with a tool error`, async () => {
        const r = await ex.execute({ id: 'x', name, arguments: args }, signal());
        assert.equal(r.isError, true);
        assert.match(r.content, re);
        assert.equal(readFileSync(path.join(dir, 'playbook.py'), 'utf8'), 'def run(alert, ctx):\n    return {}\n');
      });
    }

    it('refuses a replace whose search text is not unique', async () => {
      writeFileSync(path.join(dir, 'dup.py'), 'x = 1\nx = 1\n');
      rec.autoApprove = true;
      const r = await ex.execute(call('replace_in_file', { path: 'dup.py', search: 'x = 1', replace: 'y' }), signal());
      assert.match(r.content, /occurs 2 times/);
    });
  });

  describe('approvals in Act mode', () => {
    beforeEach(() => { rec.mode = 'act'; });

    it('asks the user, then takes a checkpoint, then writes', async () => {
      rec.decisions.push({ approved: true });
      const r = await ex.execute(call('write_file', { path: 'lib/helpers.py', content: 'A = 1\n' }), signal());
      assert.equal(r.isError, false);
      assert.match(r.content, /Created lib\/helpers\.py \(1 lines\)/);
      assert.equal(rec.asked.length, 1);
      assert.equal(rec.asked[0].path, 'lib/helpers.py');
      assert.match(rec.asked[0].summary, /Create lib\/helpers\.py/);
      assert.match(rec.asked[0].preview, /^\+ A = 1$/m);
      assert.deepEqual(rec.checkpoints, ['lib/helpers.py']);
      assert.equal(readFileSync(path.join(dir, 'lib', 'helpers.py'), 'utf8'), 'A = 1\n');
    });

    it('shows an edit as a diff', async () => {
      rec.decisions.push({ approved: true });
      await ex.execute(call('replace_in_file', { path: 'playbook.py', search: '    return {}', replace: '    ctx.log("hi")\n    return {}' }), signal());
      assert.match(rec.asked[0].preview, /^\+     ctx\.log\("hi"\)$/m);
      assert.match(readFileSync(path.join(dir, 'playbook.py'), 'utf8'), /ctx\.log\("hi"\)/);
    });

    it('with auto-approve on, does not ask, and still checkpoints', async () => {
      rec.autoApprove = true;
      const r = await ex.execute(call('write_file', { path: 'playbook.py', content: 'def run(alert, ctx):\n    return {"ok": True}\n' }), signal());
      assert.equal(r.isError, false);
      assert.deepEqual(rec.asked, []);
      assert.deepEqual(rec.checkpoints, ['playbook.py']);
      assert.match(readFileSync(path.join(dir, 'playbook.py'), 'utf8'), /"ok": True/);
    });

    it('a rejection leaves the file alone and tells the model, with the user\'s words', async () => {
      rec.decisions.push({ approved: false, feedback: 'Use the soc channel, not email.' });
      const r = await ex.execute(call('write_file', { path: 'playbook.py', content: 'print(1)\n' }), signal());
      assert.equal(r.isError, true);
      assert.equal(r.status, 'refused');
      assert.match(r.content, /^Error: the user rejected this change to playbook\.py; the file was not changed\. They said: Use the soc channel, not email\./);
      assert.equal(readFileSync(path.join(dir, 'playbook.py'), 'utf8'), 'def run(alert, ctx):\n    return {}\n');
      assert.deepEqual(rec.checkpoints, [], 'no checkpoint for a rejected change');
    });

    it('a rejection without words asks the model to ask', async () => {
      rec.decisions.push({ approved: false });
      const r = await ex.execute(call('replace_in_file', { path: 'playbook.py', search: 'return {}', replace: 'return 1' }), signal());
      assert.match(r.content, /rejected.*ask_followup_question/s);
    });

    it('does not ask about a write that changes nothing', async () => {
      const r = await ex.execute(call('write_file', { path: 'playbook.py', content: 'def run(alert, ctx):\n    return {}\n' }), signal());
      assert.match(r.content, /nothing changed/);
      assert.deepEqual(rec.asked, []);
    });

    it('notes an invalid manifest and a README without a diagram right away', async () => {
      rec.autoApprove = true;
      const m = await ex.execute(call('write_file', { path: 'manifest.json', content: '{"name": "x", "entrypoint": "main.py"}' }), signal());
      assert.match(m.content, /"entrypoint" must be "playbook\.py:run"/);
      const r = await ex.execute(call('write_file', { path: 'README.md', content: '# Doc\n' }), signal());
      assert.match(r.content, /no ```mermaid/);
    });

    it('attempt_completion finishes', async () => {
      const r = await ex.execute(call('attempt_completion', { result: 'Done.' }), signal());
      assert.equal(r.finished, true);
      assert.deepEqual(rec.completed, ['Done.']);
    });
  });

  describe('Approvals', () => {
    it('does not ask when the signal is already aborted', async () => {
      let asked = false;
      const a = new Approvals(() => false, async () => { asked = true; return { approved: true }; });
      const ctl = new AbortController();
      ctl.abort();
      const d = await a.edit({ tool: 'write_file', path: 'x', summary: '', preview: '' }, ctl.signal);
      assert.equal(d.approved, false);
      assert.equal(asked, false);
    });

    it('reads the setting at each request', async () => {
      let auto = false;
      let asks = 0;
      const a = new Approvals(() => auto, async () => { asks++; return { approved: false }; });
      const req = { tool: 'write_file' as const, path: 'x', summary: '', preview: '' };
      assert.equal((await a.edit(req, signal())).approved, false);
      auto = true;
      assert.deepEqual(await a.edit(req, signal()), { approved: true, auto: true });
      assert.equal(asks, 1);
    });
  });
});
