// The "Send sample alert" alerts (static/assets/sample-alerts.js): each
// send must be a new alert (a re-posted id only updates, never triggers
// rules), valid for POST /api/alerts (id, title, severity,
// createdDateTime), and the fixtures themselves stay untouched.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SAMPLE_ALERTS, sampleAlert } from '../static/assets/sample-alerts.js';

describe('sampleAlert()', () => {
  it('has the fields POST /api/alerts requires', () => {
    assert.ok(SAMPLE_ALERTS.length >= 2);
    for (let i = 0; i < SAMPLE_ALERTS.length; i++) {
      const a = sampleAlert(i);
      for (const f of ['id', 'title', 'severity', 'createdDateTime']) assert.ok(a[f], `sample ${i} has ${f}`);
      assert.equal(a.status, 'new');
    }
  });

  it('gives every send a fresh id and incident id', () => {
    const seen = new Set();
    const incidents = new Set();
    for (let i = 0; i < 50; i++) {
      const a = sampleAlert(i);
      assert.ok(!seen.has(a.id), `id ${a.id} repeated`);
      seen.add(a.id);
      incidents.add(a.incidentId);
      assert.equal(a.providerAlertId, a.id);
      assert.match(a.incidentId, /^\d{8}$/);
    }
    assert.ok(incidents.size > 45, 'incident ids vary');
  });

  it('dates the alert now and its activity before it', () => {
    const now = new Date('2026-12-02T10:00:00Z');
    const a = sampleAlert(1, { now, hex: (n) => 'a'.repeat(n) });
    assert.equal(a.createdDateTime, '2026-12-02T10:00:00.000Z');
    assert.equal(a.lastUpdateDateTime, '2026-12-02T10:00:00.000Z');
    assert.ok(a.firstActivityDateTime < a.lastActivityDateTime && a.lastActivityDateTime < a.createdDateTime);
    assert.equal(a.id, `sample-${now.getTime().toString(36)}-aaaaaaaa`);
    assert.ok(a.alertWebUrl.endsWith('/' + a.id));
    assert.ok(a.incidentWebUrl.endsWith('/' + a.incidentId));
    for (const e of a.evidence) assert.equal(e.createdDateTime, a.createdDateTime);
  });

  it('cycles through the samples and never changes the originals', () => {
    const before = JSON.stringify(SAMPLE_ALERTS);
    assert.equal(sampleAlert(SAMPLE_ALERTS.length).title, SAMPLE_ALERTS[0].title);
    assert.equal(sampleAlert(-1).title, SAMPLE_ALERTS[SAMPLE_ALERTS.length - 1].title);
    sampleAlert(0).evidence[0].verdict = 'changed';
    assert.equal(JSON.stringify(SAMPLE_ALERTS), before);
  });
});
