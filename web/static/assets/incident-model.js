// @ts-check
// Incidents, alerts and their activity in words, for the Incidents tab and
// the incident page. No DOM here; web/test checks it under node.

import { durationText, runTitle, statusWord } from './run-model.js';
import { plural } from './core.js';

const SEVERITY_WORDS = { informational: 'Informational', low: 'Low', medium: 'Medium', high: 'High', unknown: 'Unknown' };
const SEVERITY_RANK = { high: 4, medium: 3, low: 2, informational: 1 };
const ALERT_STATUS_WORDS = { new: 'New', inProgress: 'In progress', resolved: 'Resolved', unknown: 'Unknown' };

/** The alert statuses a person may set (Graph's alertStatus). */
export const ALERT_STATUSES = Object.freeze(['new', 'inProgress', 'resolved']);

/** "High" for high; an unknown value (kept by the API) shows as it is. @param {unknown} s */
export function severityWord(s) {
  const v = String(s ?? '');
  return SEVERITY_WORDS[v] || v || 'Unknown';
}

/** @param {unknown} s */
export function severityRank(s) {
  return SEVERITY_RANK[String(s ?? '')] || 0;
}

/** "In progress" for inProgress. @param {unknown} s */
export function alertStatusWord(s) {
  const v = String(s ?? '');
  return ALERT_STATUS_WORDS[v] || v || 'Unknown';
}

/**
 * The cells of an incident in the list.
 * @param {{ id?: string, title?: string, severity?: string, status?: string, alertCount?: number, sources?: string[], lastAt?: string }} inc
 */
export function incidentCells(inc) {
  const sources = Array.isArray(inc.sources) ? inc.sources.map(String) : [];
  return {
    title: String(inc.title || `Incident ${inc.id ?? ''}`).trim(),
    severity: severityWord(inc.severity),
    status: alertStatusWord(inc.status),
    alerts: plural(Number(inc.alertCount) || 0, 'alert', 'alerts'),
    sources: sources.join(', '),
    lastAt: String(inc.lastAt || ''),
  };
}

/**
 * The incident's alerts, most severe first, then newest.
 * @template {{ severity?: string, createdDateTime?: string }} A
 * @param {A[]} alerts
 * @returns {A[]}
 */
export function sortAlerts(alerts) {
  return alerts.slice().sort((a, b) => severityRank(b.severity) - severityRank(a.severity) ||
    String(b.createdDateTime || '').localeCompare(String(a.createdDateTime || '')));
}

/**
 * Activity rows oldest first; rows at the same instant keep the server's
 * order.
 * @template {{ at?: string }} R
 * @param {R[]} rows
 * @returns {R[]}
 */
export function activityOldestFirst(rows) {
  return rows.map((r, i) => ({ r, i, t: Date.parse(String(r.at || '')) }))
    .sort((a, b) => (Number.isFinite(a.t) && Number.isFinite(b.t) ? a.t - b.t : 0) || a.i - b.i)
    .map((x) => x.r);
}

/**
 * One Activity row as words: the kind's label, the text, and for a run
 * its title, status word and duration (the row opens the run by runId).
 * @param {{ kind?: string, detail?: string, actor?: string, at?: string, runId?: string, alertId?: string,
 *   run?: { runId?: string, ruleName?: string, playbookId?: string, playbookName?: string, playbookVersion?: number, status?: string, durationMs?: number | null } }} row
 */
export function activityText(row) {
  const kind = String(row.kind || '');
  const base = { kind, actor: String(row.actor || ''), at: String(row.at || ''), alertId: String(row.alertId || '') };
  if (kind === 'run') {
    const r = row.run || {};
    const runId = String(r.runId || row.runId || '');
    if (!row.run) {
      // An older answer without the fields: the sentence is all there is.
      return { ...base, label: 'Run', text: String(row.detail || 'run playbook'), runId, status: '', statusWord: '', duration: '' };
    }
    return {
      ...base,
      label: 'Run',
      text: runTitle(r) + (r.ruleName ? ` (rule ${r.ruleName})` : ''),
      runId,
      status: String(r.status || ''),
      statusWord: statusWord(r.status),
      duration: durationText(r.durationMs),
    };
  }
  const label = kind === 'created' ? 'Alert received' : kind === 'updated' ? 'Alert changed' : kind === 'comment' ? 'Comment' : (kind || 'Activity');
  return { ...base, label, text: String(row.detail || ''), runId: '', status: '', statusWord: '', duration: '' };
}

/**
 * An alert in a picker: "High · Email messages … · 2 minutes ago" without
 * the time (the caller adds it).
 * @param {{ id?: string, title?: string, severity?: string, source?: { name?: string } }} a
 */
export function alertLabel(a) {
  const src = a.source && a.source.name ? ` · ${a.source.name}` : '';
  return `${severityWord(a.severity)} · ${String(a.title || a.id || '')}${src}`;
}
