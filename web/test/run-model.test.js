// Runs in words (static/assets/run-model.js): the status words, the
// durations and the "run playbook" title the Activity tab and the run
// details show (issue 14, the portal).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  callText, durationText, isEnded, resultText, runDurationMs, runTitle, statusTone, statusWord, triggerWord,
} from '../static/assets/run-model.js';

describe('statusWord() and isEnded()', () => {
  it('names every status of the API in words', () => {
    assert.deepEqual(
      ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'canceled', 'abandoned', 'skipped'].map(statusWord),
      ['Queued', 'Running', 'Succeeded', 'Failed', 'Timed out', 'Canceled', 'Abandoned', 'Skipped']);
  });

  it('shows an unknown status as it is, and a missing one as Unknown', () => {
    assert.equal(statusWord('paused'), 'paused');
    assert.equal(statusWord(undefined), 'Unknown');
  });

  it('knows which statuses end a run, so polling stops', () => {
    assert.equal(isEnded('queued'), false);
    assert.equal(isEnded('running'), false);
    for (const s of ['succeeded', 'failed', 'timed_out', 'canceled', 'abandoned', 'skipped']) assert.equal(isEnded(s), true, s);
  });

  it('gives failures the error tone and live runs the busy one', () => {
    assert.equal(statusTone('succeeded'), 'ok');
    assert.equal(statusTone('timed_out'), 'error');
    assert.equal(statusTone('running'), 'busy');
    assert.equal(statusTone('skipped'), 'warn');
  });
});

describe('durationText()', () => {
  it('says milliseconds under a second, tenths of seconds under a minute', () => {
    assert.equal(durationText(0), '0 ms');
    assert.equal(durationText(340), '340 ms');
    assert.equal(durationText(2449), '2.4 s');
    assert.equal(durationText(59_990), '1 min 00 s');
  });

  it('says minutes and seconds, then hours and minutes', () => {
    assert.equal(durationText(185_000), '3 min 05 s');
    assert.equal(durationText(600_000), '10 min 00 s');
    assert.equal(durationText(3_720_000), '1 h 02 min');
  });

  it('is empty when the duration is unknown or nonsense', () => {
    assert.equal(durationText(null), '');
    assert.equal(durationText(undefined), '');
    assert.equal(durationText(-5), '');
    assert.equal(durationText('abc'), '');
  });
});

describe('runDurationMs()', () => {
  it('takes the server\'s duration when there is one', () => {
    assert.equal(runDurationMs({ status: 'succeeded', durationMs: 1234, startedAt: '2026-01-01T00:00:00Z' }), 1234);
  });

  it('counts a running run from its start to now', () => {
    const now = Date.parse('2026-01-01T00:00:05Z');
    assert.equal(runDurationMs({ status: 'running', startedAt: '2026-01-01T00:00:00Z' }, now), 5000);
  });

  it('has none for a run that never started', () => {
    assert.equal(runDurationMs({ status: 'queued' }), null);
    assert.equal(runDurationMs({ status: 'canceled', startedAt: null }), null);
  });
});

describe('runTitle(), triggerWord(), resultText(), callText()', () => {
  it('says "run playbook <name> vN" like the product\'s Activity tab', () => {
    assert.equal(runTitle({ playbookName: 'Phishing triage', playbookVersion: 3 }), 'run playbook Phishing triage v3');
    assert.equal(runTitle({ playbookId: 'pb-1', playbookVersion: 0 }), 'run playbook pb-1');
  });

  it('names the triggers', () => {
    assert.equal(triggerWord('rule'), 'Automation rule');
    assert.equal(triggerWord('manual'), 'Manual');
    assert.equal(triggerWord('test'), 'Test run');
  });

  it('indents the result as JSON text, markup and all left as characters', () => {
    assert.equal(resultText({ ok: true, note: '<img src=x onerror=alert(1)>' }), '{\n  "ok": true,\n  "note": "<img src=x onerror=alert(1)>"\n}');
    assert.equal(resultText(null), '');
    assert.equal(resultText(0), '0');
  });

  it('puts a call on one line, with its error', () => {
    assert.equal(callText({ integration: 'VirusTotal', method: 'GET', path: '/api/v3/urls/x', status: 200, durationMs: 120 }), 'VirusTotal GET /api/v3/urls/x → 200 in 120 ms');
    assert.equal(callText({ integration: 'Jira', method: 'POST', path: '/rest', status: 0, durationMs: 5, error: 'refused' }), 'Jira POST /rest → no answer in 5 ms: refused');
  });
});
