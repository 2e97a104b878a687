// What the user is told about a save, and where problems go. No vscode import:
// saveCommand.ts shows these; the tests check them in plain Node.
import { GatewayError, Problem, SaveResult } from './gateway';

export const NOT_AVAILABLE = 'Saving from the IDE is not available yet on this gateway: save from the portal.';
export const NOT_ALLOWED = 'This workspace is not allowed to save (no live edit session).';
export const NO_SESSION = 'There is no live edit session for this workspace (it was closed or has expired). Reopen the playbook from the portal.';
export const STALE_SESSION = 'This editor lost its edit session (it was taken over or ended). Reopen the playbook from the portal.';

/** How many problems the error message names; all of them go to the Problems panel. */
export const PROBLEMS_IN_MESSAGE = 3;

export function savedMessage(result: SaveResult): string {
  return `Saved ${result.playbook.name} as version ${result.version.number} (disabled until activated in the portal).`;
}

/** The message for a failed save. `gatewayUrl` names the gateway for network errors. */
export function errorMessage(err: unknown, gatewayUrl?: string): string {
  if (!(err instanceof GatewayError)) {
    return `Saving failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  const where = gatewayUrl ?? 'the configured address';
  switch (err.code) {
    case 'not_configured':
      return err.message;
    case 'network':
    case 'timeout':
      return `Cannot reach Playbook Studio at ${where}: ${err.message}`;
    case 'bad_response':
      return `Unexpected answer from Playbook Studio at ${where}: ${err.message}`;
    case 'validation_failed':
      return validationMessage(err.problems);
    case 'stale_session':
      return STALE_SESSION;
    case 'not_implemented':
      return NOT_AVAILABLE;
    case 'no_session':
      return NO_SESSION;
  }
  switch (err.status) {
    case 401:
    case 403:
      return NOT_ALLOWED;
    case 404:
      // The save route, or a gateway without the workspace routes at all.
      return NOT_AVAILABLE;
    case 501:
      return NOT_AVAILABLE;
    case 409:
      return `Playbook Studio did not save: ${err.message}`;
  }
  return `Playbook Studio could not save (HTTP ${err.status ?? '?'}, ${err.code}): ${err.message}`;
}

export function validationMessage(problems: Problem[]): string {
  if (problems.length === 0) {
    return 'Playbook Studio did not save: the playbook is not valid.';
  }
  const shown = problems.slice(0, PROBLEMS_IN_MESSAGE).map(formatProblem).join('; ');
  const more = problems.length > PROBLEMS_IN_MESSAGE ? `; and ${problems.length - PROBLEMS_IN_MESSAGE} more` : '';
  const noun = problems.length === 1 ? 'problem' : 'problems';
  return `Playbook Studio did not save: ${problems.length} ${noun}: ${shown}${more}. See the Problems panel.`;
}

function formatProblem(p: Problem): string {
  const loc = p.path ? (p.line ? `${p.path}:${p.line}` : p.path) : 'playbook';
  return `${loc}: ${p.message}`;
}

export interface FileDiagnostics {
  /** Slash-separated path relative to the playbook folder; '' for the folder itself. */
  path: string;
  items: { line: number; message: string }[];
}

/**
 * Groups problems by file for the Problems panel. Lines become 0-based.
 * Paths that would leave the playbook folder (absolute, `..`) are kept on the
 * folder itself rather than pointed elsewhere.
 */
export function diagnosticsByFile(problems: Problem[]): FileDiagnostics[] {
  const byPath = new Map<string, FileDiagnostics>();
  for (const p of problems) {
    const path = safeRelativePath(p.path);
    const line = p.line && p.line > 0 ? Math.floor(p.line) - 1 : 0;
    let entry = byPath.get(path);
    if (!entry) {
      entry = { path, items: [] };
      byPath.set(path, entry);
    }
    entry.items.push({ line, message: p.message });
  }
  return [...byPath.values()];
}

export function safeRelativePath(path: string): string {
  const parts = path.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.');
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || parts.includes('..')) return '';
  return parts.join('/');
}
