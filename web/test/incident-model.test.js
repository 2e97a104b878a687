// Incidents and their Activity in words (static/assets/incident-model.js).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  activityOldestFirst, activityText, alertLabel, alertStatusWord, incidentCells, severityWord, sortAlerts,
} from '../static/assets/incident-model.js';

describe('incidentCells()', () => {
  it('gives the list its words: severity, status, alert count, sources', () => {
    const c = incidentCells({ id: '28282', title: 'Malicious URL', severity: 'high', status: 'inProgress', alertCount: 2, sources: ['default', 'sentinel-eu'], lastAt: '2026-11-20T09:20:11Z' });
    assert.deepEqual(c, { title: 'Malicious URL', severity: 'High', status: 'In progress', alerts: '2 alerts', sources: 'default, sentinel-eu', lastAt: '2026-11-20T09:20:11Z' });
  });

  it('names an untitled incident by its id and counts one alert in the singular', () => {
    const c = incidentCells({ id: '7', alertCount: 1 });
    assert.equal(c.title, 'Incident 7');
    assert.equal(c.alerts, '1 alert');
    assert.equal(c.sources, '');
  });

  it('keeps unknown severities and statuses as they are', () => {
    assert.equal(severityWord('unknownFutureValue'), 'unknownFutureValue');
    assert.equal(alertStatusWord('resolved'), 'Resolved');
    assert.equal(severityWord(''), 'Unknown');
  });
});

describe('sortAlerts()', () => {
  it('puts the most severe first, then the newest', () => {
    const got = sortAlerts([
      { id: 'a', severity: 'low', createdDateTime: '2026-01-03T00:00:00Z' },
      { id: 'b', severity: 'high', createdDateTime: '2026-01-01T00:00:00Z' },
      { id: 'c', severity: 'high', createdDateTime: '2026-01-02T00:00:00Z' },
    ]);
    assert.deepEqual(got.map((a) => a.id), ['c', 'b', 'a']);
  });
});

describe('activityOldestFirst()', () => {
  it('orders by time, oldest first, keeping the server\'s order at the same instant', () => {
    const rows = [
      { n: 1, at: '2026-01-01T00:00:02Z' },
      { n: 2, at: '2026-01-01T00:00:01Z' },
      { n: 3, at: '2026-01-01T00:00:02Z' },
    ];
    assert.deepEqual(activityOldestFirst(rows).map((r) => r.n), [2, 1, 3]);
  });
});

describe('activityText()', () => {
  it('makes a run row "run playbook <name> vN" with its status word and duration', () => {
    const t = activityText({
      kind: 'run', at: '2026-01-01T00:00:00Z', actor: 'Alice Anders', runId: 'r1', detail: 'run playbook Phishing triage v2: succeeded in 1.2 s',
      run: { runId: 'r1', playbookId: 'p', playbookName: 'Phishing triage', playbookVersion: 2, status: 'succeeded', durationMs: 1234 },
    });
    assert.equal(t.label, 'Run');
    assert.equal(t.text, 'run playbook Phishing triage v2');
    assert.equal(t.statusWord, 'Succeeded');
    assert.equal(t.duration, '1.2 s');
    assert.equal(t.runId, 'r1');
  });

  it('names the rule that started a run', () => {
    const t = activityText({ kind: 'run', runId: 'r2', run: { runId: 'r2', playbookName: 'Block', playbookVersion: 1, ruleName: 'High AWS', status: 'running' } });
    assert.equal(t.text, 'run playbook Block v1 (rule High AWS)');
    assert.equal(t.statusWord, 'Running');
    assert.equal(t.duration, '');
  });

  it('falls back to the sentence for a run row without fields', () => {
    const t = activityText({ kind: 'run', runId: 'r3', detail: 'run playbook X v1: failed in 0.5 s' });
    assert.equal(t.text, 'run playbook X v1: failed in 0.5 s');
    assert.equal(t.runId, 'r3');
  });

  it('labels received alerts, changes and comments, with their text', () => {
    assert.deepEqual([
      activityText({ kind: 'created', detail: 'alert received from source default' }),
      activityText({ kind: 'updated', detail: 'status new → resolved' }),
      activityText({ kind: 'comment', detail: 'Looking into it' }),
    ].map((t) => [t.label, t.text, t.runId]), [
      ['Alert received', 'alert received from source default', ''],
      ['Alert changed', 'status new → resolved', ''],
      ['Comment', 'Looking into it', ''],
    ]);
  });
});

describe('alertLabel()', () => {
  it('names an alert in the picker by severity, title and source', () => {
    assert.equal(alertLabel({ id: 'x', title: 'Suspicious keys', severity: 'high', source: { id: 's', name: 'default' } }), 'High · Suspicious keys · default');
    assert.equal(alertLabel({ id: 'x', severity: 'low' }), 'Low · x');
  });
});
