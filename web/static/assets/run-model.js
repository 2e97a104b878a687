// @ts-check
// Runs in words: status, duration, the "run playbook" title and the
// result as text. No DOM here: the incident page, the playbook page and
// the run details share it, and web/test checks it under node.

/** The statuses after which a run never changes again (shared/API.md "Runs"). */
export const ENDED = Object.freeze(['succeeded', 'failed', 'timed_out', 'canceled', 'abandoned', 'skipped']);

const WORDS = {
  queued: 'Queued',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  timed_out: 'Timed out',
  canceled: 'Canceled',
  abandoned: 'Abandoned',
  skipped: 'Skipped',
};

// Why a status is what it is, for a title or a detail line.
const MEANINGS = {
  queued: 'Waiting for a free runner.',
  running: 'The playbook is running now.',
  succeeded: 'run() returned a JSON result.',
  failed: 'The playbook raised an exception or returned something that is not JSON.',
  timed_out: 'The run was stopped at the time limit.',
  canceled: 'Someone canceled the run.',
  abandoned: 'The runner that had the run stopped before it ended.',
  skipped: 'The playbook was not active when the rule acted, so nothing ran.',
};

/** @param {unknown} status */
export function isEnded(status) {
  return ENDED.includes(String(status));
}

/** "Timed out" for timed_out; an unknown status shows as it is. @param {unknown} status */
export function statusWord(status) {
  const s = String(status ?? '');
  return WORDS[s] || s || 'Unknown';
}

/** @param {unknown} status */
export function statusMeaning(status) {
  return MEANINGS[String(status ?? '')] || '';
}

/**
 * A tone for the status chip: ok, error, warn, busy or muted.
 * @param {unknown} status
 */
export function statusTone(status) {
  switch (String(status ?? '')) {
    case 'succeeded': return 'ok';
    case 'failed': case 'timed_out': case 'abandoned': return 'error';
    case 'canceled': case 'skipped': return 'warn';
    case 'queued': case 'running': return 'busy';
    default: return 'muted';
  }
}

/**
 * A duration for people: "340 ms", "2.4 s", "3 min 05 s", "1 h 02 min";
 * empty when unknown.
 * @param {unknown} ms
 */
export function durationText(ms) {
  if (ms === null || ms === undefined || ms === '') return '';
  const n = Number(ms);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60_000) {
    const s = Math.round(n / 100) / 10;
    return s >= 60 ? '1 min 00 s' : `${s.toFixed(1)} s`;
  }
  const totalS = Math.round(n / 1000);
  if (totalS < 3600) {
    const m = Math.floor(totalS / 60);
    return `${m} min ${String(totalS % 60).padStart(2, '0')} s`;
  }
  const totalM = Math.round(n / 60_000);
  return `${Math.floor(totalM / 60)} h ${String(totalM % 60).padStart(2, '0')} min`;
}

/**
 * How long a run took, or has been running (from now): durationMs when
 * the server gave it, else from startedAt.
 * @param {{ status?: string, durationMs?: number | null, startedAt?: string | null, endedAt?: string | null }} run
 * @param {number} [now]
 * @returns {number | null}
 */
export function runDurationMs(run, now = Date.now()) {
  if (run.durationMs !== null && run.durationMs !== undefined) return Number(run.durationMs);
  const start = Date.parse(String(run.startedAt || ''));
  if (!Number.isFinite(start)) return null;
  const end = Date.parse(String(run.endedAt || ''));
  if (Number.isFinite(end)) return Math.max(0, end - start);
  return isEnded(run.status) ? null : Math.max(0, now - start);
}

/**
 * "run playbook Phishing triage v3", the words of the product's Activity
 * tab; without a name, the playbook's id.
 * @param {{ playbookName?: string, playbookId?: string, playbookVersion?: number }} r
 */
export function runTitle(r) {
  const name = String(r.playbookName || r.playbookId || 'unknown playbook');
  const v = Number(r.playbookVersion);
  return v > 0 ? `run playbook ${name} v${v}` : `run playbook ${name}`;
}

/** @param {unknown} trigger */
export function triggerWord(trigger) {
  switch (String(trigger ?? '')) {
    case 'rule': return 'Automation rule';
    case 'manual': return 'Manual';
    case 'test': return 'Test run';
    default: return String(trigger ?? '');
  }
}

/**
 * The run's result as indented JSON text (shown with textContent, never
 * as HTML); empty when there is none.
 * @param {unknown} result
 */
export function resultText(result) {
  if (result === undefined || result === null) return '';
  try {
    return JSON.stringify(result, null, 2);
  } catch (_) {
    return String(result);
  }
}

/**
 * One integration call as a line: "VirusTotal GET /api/v3/urls → 200 in 120 ms".
 * @param {{ integration?: string, method?: string, path?: string, status?: number, durationMs?: number, error?: string }} c
 */
export function callText(c) {
  const status = Number(c.status) > 0 ? String(c.status) : 'no answer';
  const took = durationText(c.durationMs);
  return `${c.integration || '?'} ${c.method || ''} ${c.path || ''} → ${status}${took ? ' in ' + took : ''}${c.error ? ': ' + c.error : ''}`.replace(/\s+/g, ' ').trim();
}
