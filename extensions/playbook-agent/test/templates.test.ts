import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SDK_FILE, SDK_SOURCE } from '../src/agent/sdk';
import { TEMPLATES, templateFiles } from '../src/agent/templates';
import { astParses, checkBundle, GATEWAY_CHECKER, runPlaybook } from './bundlecheck';

const ALERTS = path.resolve(__dirname, '../../test/fixtures/alerts');
const alert = (name: string) => path.join(ALERTS, `${name}.json`);

describe('playbook_sdk.py', () => {
  it('parses, imports only the standard library, and documents the ctx API', () => {
    assert.equal(astParses(SDK_SOURCE), true);
    assert.deepEqual(checkBundle([{ path: 'playbook.py', content: 'from playbook_sdk import Context\n\ndef run(alert, ctx):\n    return {}\n' }, { path: SDK_FILE, content: SDK_SOURCE }])
      .filter((p) => p.path !== 'README.md'), []);
    for (const m of ['def integration(self, name: str)', 'def request(self, method: str, path: str, json: Any = None', 'def log(', 'def notify(self, channel: str, message: str)',
      'def comment_on_alert(', 'def assign_alert(', 'def set_alert_status(', 'def block_user(', 'def disable_user(', 'class RecordingContext(Context)', '10 minutes', '5,000 lines']) {
      assert.ok(SDK_SOURCE.includes(m), m);
    }
  });
});

describe('templates', () => {
  it('are the three of the product: URL reputation, IAM user block, phishing triage', () => {
    assert.deepEqual(TEMPLATES.map((t) => t.id), ['url-reputation', 'iam-user-block', 'phishing-triage']);
  });

  for (const t of TEMPLATES) {
    describe(t.id, () => {
      const files = templateFiles(t, 'My playbook');
      const byPath = Object.fromEntries(files.map((f) => [f.path, f.content]));

      it('delivers playbook.py, README.md and manifest.json', () => {
        assert.deepEqual(files.map((f) => f.path), ['playbook.py', 'README.md', 'manifest.json']);
      });

      it('playbook.py parses with python3 ast and defines run(alert, ctx)', () => {
        assert.equal(astParses(byPath['playbook.py']), true);
        assert.match(byPath['playbook.py'], /^def run\(alert: dict, ctx: Context\) -> dict:$/m);
      });

      it('passes the bundle checks (stdlib + playbook_sdk imports only, manifest, README mermaid)' +
        (existsSync(GATEWAY_CHECKER) ? ', and the gateway\'s own checker' : ''), () => {
        assert.deepEqual(checkBundle([...files, { path: SDK_FILE, content: SDK_SOURCE }]), []);
      });

      it('has a manifest with the playbook\'s name, the entrypoint and its integrations named', () => {
        const m = JSON.parse(byPath['manifest.json']);
        assert.equal(m.name, 'My playbook');
        assert.equal(m.entrypoint, 'playbook.py:run');
        assert.ok(Array.isArray(m.integrations) && m.integrations.length > 0);
        assert.deepEqual(m.integrations, t.integrations);
        assert.ok(m.description.length > 20);
        for (const name of m.integrations) {
          assert.ok(byPath['playbook.py'].includes(`"${name}"`), `playbook.py uses the profile ${name}`);
          assert.ok(byPath['README.md'].includes(name), `README.md names the profile ${name}`);
        }
      });

      it('has a README in plain words with a mermaid flowchart', () => {
        assert.match(byPath['README.md'], /```mermaid\nflowchart TD\n[\s\S]+?\n```/);
        assert.match(byPath['README.md'], /What it does, in plain words/);
      });
    });
  }

  describe('run against the sample alerts with playbook_sdk.RecordingContext', () => {
    let dir: string;
    before(() => { dir = mkdtempSync(path.join(tmpdir(), 'pbs-tpl-')); });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const use = (id: string) => {
      const t = TEMPLATES.find((x) => x.id === id)!;
      for (const f of templateFiles(t)) writeFileSync(path.join(dir, f.path), f.content);
      writeFileSync(path.join(dir, SDK_FILE), SDK_SOURCE);
    };

    it('URL reputation: looks up each URL and comments with the verdicts', () => {
      use('url-reputation');
      const { result, calls } = runPlaybook(dir, alert('url-click-medium'), {
        'VirusTotal GET *': { data: { attributes: { last_analysis_stats: { malicious: 5, suspicious: 0, harmless: 60, undetected: 5 } } } },
      });
      assert.equal(result.status, 'done');
      assert.equal(result.urls, 2);
      const comment = calls.find((c) => c[0] === 'comment_on_alert') as string[];
      assert.match(comment[1], /MALICIOUS \(5 malicious, 0 suspicious of 70 engines\)/);
      assert.ok(calls.filter((c) => c[0] === 'request').every((c) => c[1] === 'VirusTotal' && String(c[3]).startsWith('/urls/')));
    });

    it('URL reputation: an alert without URLs is left alone', () => {
      use('url-reputation');
      const { result, calls } = runPlaybook(dir, alert('aws-iam-high'));
      assert.equal(result.status, 'skipped');
      assert.ok(!calls.some((c) => c[0] === 'comment_on_alert'));
    });

    it('IAM user block: blocks the IAM user, assigns, comments', () => {
      use('iam-user-block');
      const { result, calls } = runPlaybook(dir, alert('aws-iam-high'), { 'AWS IAM POST /': {} });
      assert.deepEqual(result.blocked, ['ci-deployer']);
      const req = calls.find((c) => c[0] === 'request') as unknown[];
      assert.deepEqual(req.slice(1, 4), ['AWS IAM', 'POST', '/']);
      assert.equal((req[5] as Record<string, string>).Action, 'AttachUserPolicy');
      assert.deepEqual(calls.find((c) => c[0] === 'assign_alert'), ['assign_alert', 'John']);
      assert.match((calls.find((c) => c[0] === 'comment_on_alert') as string[])[1], /Remediation/);
    });

    it('IAM user block: does nothing below high severity', () => {
      use('iam-user-block');
      assert.equal(runPlaybook(dir, alert('info-low')).result.status, 'skipped');
    });

    it('phishing triage: an internal sender is disabled and the SOC notified', () => {
      use('phishing-triage');
      const data = JSON.parse(readFileSync(alert('phishing-high'), 'utf8'));
      data.evidence[1].p1Sender.emailAddress = 'adele.vance@contoso.example';
      data.evidence[1].p2Sender.emailAddress = 'adele.vance@contoso.example';
      const internal = path.join(dir, 'internal.json');
      writeFileSync(internal, JSON.stringify(data));
      const { result, calls } = runPlaybook(dir, internal, {
        'Microsoft Graph GET /v1.0/users/adele.vance@contoso.example': { id: 'u1', userPrincipalName: 'adele.vance@contoso.example', accountEnabled: true },
      });
      assert.deepEqual(result.disabled, ['adele.vance@contoso.example']);
      assert.deepEqual(calls.find((c) => c[0] === 'disable_user'), ['disable_user', 'adele.vance@contoso.example']);
      const note = calls.find((c) => c[0] === 'notify') as string[];
      assert.equal(note[1], 'soc');
      assert.match(note[2], /account disabled/);
    });

    it('phishing triage: an external sender is only reported', () => {
      use('phishing-triage');
      const { result, calls } = runPlaybook(dir, alert('phishing-high'));
      assert.deepEqual(result.external, ['payroll@fabrikam-payments.example']);
      assert.ok(!calls.some((c) => c[0] === 'disable_user'));
      assert.ok(calls.some((c) => c[0] === 'notify'));
    });
  });
});
