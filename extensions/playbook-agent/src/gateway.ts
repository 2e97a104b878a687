// A small client for the gateway routes the workspace's bearer token may call.
// No vscode import here: it runs (and is tested) in plain Node.
import { networkReason } from './agent/network';

export interface EditSession {
  id: string;
  playbookId: string | null;
  name: string;
  folder?: string;
}

export interface Problem {
  path: string;
  line?: number;
  message: string;
}

export interface SaveResult {
  playbook: { id?: string; name: string; status?: string };
  version: { number: number };
}

/** Which request failed. */
export type Route = 'session' | 'save' | 'validate' | 'usage' | 'profiles' | 'llm';

export interface ValidationResult {
  passed: boolean;
  errors: Problem[];
  warnings: Problem[];
  lines?: number;
}

export interface LlmUsage {
  day: string;
  used: number;
  budget: number;
  model?: string;
  configured: boolean;
}

export interface IntegrationProfile {
  name: string;
  baseUrl: string;
  authMethod: string;
}

/**
 * A failure talking to the gateway. `code` is the gateway's error code
 * (`no_session`, `validation_failed`, `stale_session`, …) or one of ours:
 * `not_configured`, `network`, `timeout`, `bad_response`, `http_<status>`.
 * Messages never contain the token.
 */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly route?: Route,
    readonly problems: Problem[] = [],
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

export interface GatewayOptions {
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

export class GatewayClient {
  /** The gateway's base URL, without a trailing slash, credentials, query or fragment. */
  readonly baseUrl: string;
  readonly #token: string; // a true private field: not in JSON, inspect or logs
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(env: Record<string, string | undefined> = process.env, opts: GatewayOptions = {}) {
    const rawUrl = env.PLAYBOOK_GATEWAY_URL?.trim();
    if (!rawUrl) {
      throw new GatewayError('not_configured',
        'This workspace was not started by Playbook Studio (PLAYBOOK_GATEWAY_URL is not set).');
    }
    const token = env.PLAYBOOK_GATEWAY_TOKEN?.trim();
    if (!token) {
      throw new GatewayError('not_configured',
        'This workspace was not started by Playbook Studio (PLAYBOOK_GATEWAY_TOKEN is not set).');
    }
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new GatewayError('not_configured', 'PLAYBOOK_GATEWAY_URL is not a valid URL.');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new GatewayError('not_configured', 'PLAYBOOK_GATEWAY_URL must be an http or https URL.');
    }
    this.baseUrl = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
    this.#token = token;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  /** GET /api/workspace/session: the owner's live edit session. */
  async currentSession(): Promise<EditSession> {
    const body = await this.request('GET', '/api/workspace/session', 'session');
    if (!isObject(body) || typeof body.id !== 'string' || body.id === '') {
      throw badResponse('session', 'the session has no id');
    }
    return {
      id: body.id,
      playbookId: typeof body.playbookId === 'string' ? body.playbookId : null,
      name: typeof body.name === 'string' ? body.name : '',
      folder: typeof body.folder === 'string' ? body.folder : undefined,
    };
  }

  /** POST /api/edit-sessions/{id}/save: store the folder as a new version. */
  async save(sessionId: string): Promise<SaveResult> {
    const body = await this.request('POST', `/api/edit-sessions/${encodeURIComponent(sessionId)}/save`, 'save');
    const playbook = isObject(body) ? body.playbook : undefined;
    const version = isObject(body) ? body.version : undefined;
    if (!isObject(playbook) || typeof playbook.name !== 'string' ||
        !isObject(version) || typeof version.number !== 'number') {
      throw badResponse('save', 'the answer lacks playbook.name or version.number');
    }
    return {
      playbook: {
        id: typeof playbook.id === 'string' ? playbook.id : undefined,
        name: playbook.name,
        status: typeof playbook.status === 'string' ? playbook.status : undefined,
      },
      version: { number: version.number },
    };
  }

  /** POST /api/edit-sessions/{id}/validate: the same checks as Save, nothing stored. */
  async validate(sessionId: string): Promise<ValidationResult> {
    const body = await this.request('POST', `/api/edit-sessions/${encodeURIComponent(sessionId)}/validate`, 'validate');
    if (!isObject(body) || typeof body.passed !== 'boolean') {
      throw badResponse('validate', 'the answer lacks "passed"');
    }
    return {
      passed: body.passed,
      errors: parseProblems(Array.isArray(body.errors) ? body.errors : []),
      warnings: parseProblems(Array.isArray(body.warnings) ? body.warnings : []),
      lines: typeof body.lines === 'number' ? body.lines : undefined,
    };
  }

  /** GET /api/llm/usage: today's token use and whether a model is configured. */
  async llmUsage(): Promise<LlmUsage> {
    const body = await this.request('GET', '/api/llm/usage', 'usage');
    if (!isObject(body) || typeof body.configured !== 'boolean') throw badResponse('usage', 'the answer lacks "configured"');
    return {
      day: typeof body.day === 'string' ? body.day : '',
      used: typeof body.used === 'number' ? body.used : 0,
      budget: typeof body.budget === 'number' ? body.budget : 0,
      model: typeof body.model === 'string' ? body.model : undefined,
      configured: body.configured,
    };
  }

  /** GET /api/integration-profiles: name, base URL and auth method of each (never secrets). */
  async integrationProfiles(): Promise<IntegrationProfile[]> {
    const body = await this.request('GET', '/api/integration-profiles', 'profiles');
    const list = isObject(body) && Array.isArray(body.profiles) ? body.profiles : undefined;
    if (!list) throw badResponse('profiles', 'the answer lacks "profiles"');
    return list.filter(isObject).filter((p) => typeof p.name === 'string' && p.name !== '').map((p) => ({
      name: p.name as string,
      baseUrl: typeof p.baseUrl === 'string' ? p.baseUrl : '',
      authMethod: typeof p.authMethod === 'string' ? p.authMethod : '',
    }));
  }

  /**
   * POST /api/llm/v1/chat/completions with `body`; resolves with the raw
   * response (any status) for the agent's chat client, which streams it.
   * Only the caller's signal bounds it: answers stream for minutes.
   */
  async chatCompletions(body: string, signal: AbortSignal): Promise<Response> {
    return this.fetchImpl(this.baseUrl + '/api/llm/v1/chat/completions', {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${this.#token}`,
        'Content-Type': 'application/json',
        Accept: 'text/event-stream, application/json',
      },
      body,
      signal,
      redirect: 'error',
    });
  }

  private async request(method: string, path: string, route: Route): Promise<unknown> {
    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers: { Authorization: `Bearer ${this.#token}`, Accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      throw this.transportError(err, route);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.transportError(err, route);
    }
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok) {
      if (body === undefined) throw badResponse(route, `HTTP ${res.status} without a JSON body`);
      return body;
    }
    const error = isObject(body) && isObject(body.error) ? body.error : {};
    const code = typeof error.code === 'string' && error.code ? error.code : `http_${res.status}`;
    const message = typeof error.message === 'string' && error.message ? error.message : `HTTP ${res.status}`;
    const rawProblems = isObject(body) && Array.isArray(body.problems) ? body.problems
      : Array.isArray(error.problems) ? error.problems : [];
    throw new GatewayError(code, message, res.status, route, parseProblems(rawProblems));
  }

  private transportError(err: unknown, route: Route): GatewayError {
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new GatewayError('timeout', `no answer within ${duration(this.timeoutMs)}`, undefined, route);
    }
    return new GatewayError('network', networkReason(err), undefined, route);
  }
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

function parseProblems(raw: unknown[]): Problem[] {
  return raw.filter(isObject).map((p) => ({
    path: typeof p.path === 'string' ? p.path : '',
    line: typeof p.line === 'number' && Number.isFinite(p.line) ? p.line : undefined,
    message: typeof p.message === 'string' ? p.message : 'invalid',
  }));
}

function badResponse(route: Route, what: string): GatewayError {
  return new GatewayError('bad_response', what, undefined, route);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
