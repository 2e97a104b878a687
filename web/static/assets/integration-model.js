// @ts-check
// Integration profiles without the DOM: the fields each authentication
// method asks for (API.md "Integration profiles"), the request bodies built
// from a form's values, and the words for secrets and test results. The
// Integration profiles tab and the IDE view's Add integration dialog share
// it; web/test checks it under node.
//
// Form values are a flat object keyed by field key: "name", "description",
// "baseUrl", "authMethod", "config.<name>" and "secrets.<name>" (config and
// secrets are kept apart: api_key has a config field called "name").

/**
 * @typedef {{
 *   key: string,          // form key: config.<name> or secrets.<name>
 *   name: string,         // the API's name inside config or secrets
 *   label: string,
 *   kind: 'text' | 'url' | 'list' | 'select' | 'secret',
 *   required: boolean,
 *   options?: { value: string, label: string }[],
 *   hint?: string,
 *   placeholder?: string,
 * }} Field
 */

/** @type {Record<string, { label: string, fields: Field[] }>} */
export const METHODS = {
  oauth2_client_credentials: {
    label: 'OAuth2 client credentials',
    fields: [
      { key: 'config.tokenUrl', name: 'tokenUrl', label: 'Token endpoint', kind: 'url', required: true, placeholder: 'https://login.example.com/oauth2/token' },
      { key: 'config.clientId', name: 'clientId', label: 'Client ID', kind: 'text', required: true },
      { key: 'secrets.clientSecret', name: 'clientSecret', label: 'Client secret', kind: 'secret', required: true },
      { key: 'config.scopes', name: 'scopes', label: 'Scopes', kind: 'list', required: false, hint: 'Separated by spaces or commas, for example “https://graph.microsoft.com/.default”.' },
      { key: 'config.audience', name: 'audience', label: 'Audience (optional)', kind: 'text', required: false },
    ],
  },
  api_key: {
    label: 'API key',
    fields: [
      { key: 'config.in', name: 'in', label: 'Send the key in', kind: 'select', required: true, options: [{ value: 'header', label: 'A header' }, { value: 'query', label: 'A query parameter' }] },
      { key: 'config.name', name: 'name', label: 'Header or parameter name', kind: 'text', required: true, placeholder: 'X-API-Key' },
      { key: 'secrets.apiKey', name: 'apiKey', label: 'API key', kind: 'secret', required: true },
    ],
  },
  aws_sigv4: {
    label: 'AWS Signature Version 4',
    fields: [
      { key: 'config.region', name: 'region', label: 'Region', kind: 'text', required: true, placeholder: 'us-east-1' },
      { key: 'config.service', name: 'service', label: 'Service', kind: 'text', required: true, placeholder: 'iam' },
      { key: 'config.accessKeyId', name: 'accessKeyId', label: 'Access key ID', kind: 'text', required: true },
      { key: 'secrets.secretAccessKey', name: 'secretAccessKey', label: 'Secret access key', kind: 'secret', required: true },
      { key: 'secrets.sessionToken', name: 'sessionToken', label: 'Session token (optional)', kind: 'secret', required: false },
    ],
  },
  basic: {
    label: 'Basic (user and password)',
    fields: [
      { key: 'config.username', name: 'username', label: 'User name', kind: 'text', required: true },
      { key: 'secrets.password', name: 'password', label: 'Password', kind: 'secret', required: true },
    ],
  },
  bearer: {
    label: 'Bearer token / JWT',
    fields: [
      { key: 'secrets.token', name: 'token', label: 'Token', kind: 'secret', required: true },
    ],
  },
  hawk: {
    label: 'Hawk',
    fields: [
      { key: 'config.id', name: 'id', label: 'Key ID', kind: 'text', required: true },
      { key: 'config.algorithm', name: 'algorithm', label: 'Algorithm', kind: 'select', required: true, options: [{ value: 'sha256', label: 'SHA-256' }, { value: 'sha1', label: 'SHA-1' }] },
      { key: 'secrets.key', name: 'key', label: 'Key', kind: 'secret', required: true },
    ],
  },
};

export const METHOD_ORDER = ['oauth2_client_credentials', 'api_key', 'aws_sigv4', 'basic', 'bearer', 'hawk'];

/** The fields of a method ([] for an unknown one). @returns {Field[]} */
export function fieldsFor(method) {
  return METHODS[method] ? METHODS[method].fields : [];
}

export function methodLabel(method) {
  return METHODS[method] ? METHODS[method].label : String(method || '');
}

/** A list field's text as a list: split on commas and white space. */
export function splitList(text) {
  return String(text || '').split(/[\s,]+/).filter(Boolean);
}

/** A field's value for the form, from a profile's config (secrets are never filled in). */
export function formValue(field, config) {
  if (field.kind === 'secret') return '';
  const v = config ? config[field.name] : undefined;
  if (field.kind === 'list') return Array.isArray(v) ? v.join(' ') : '';
  if (v === undefined || v === null) return field.kind === 'select' && field.options ? field.options[0].value : '';
  return String(v);
}

/**
 * The credentials object of a method from form values: every config field
 * (optional ones left out when empty, lists split) and every secret.
 * @returns {{ config: Record<string, unknown>, secrets: Record<string, string> }}
 */
export function buildCredentials(method, values) {
  /** @type {Record<string, unknown>} */
  const config = {};
  /** @type {Record<string, string>} */
  const secrets = {};
  for (const f of fieldsFor(method)) {
    const raw = values[f.key];
    if (f.kind === 'secret') {
      // Secrets are sent as typed: spaces may be part of a key.
      const v = typeof raw === 'string' ? raw : '';
      if (v !== '' || f.required) secrets[f.name] = v;
    } else if (f.kind === 'list') {
      config[f.name] = splitList(raw);
    } else {
      const v = String(raw ?? '').trim();
      if (v !== '' || f.required) config[f.name] = v;
    }
  }
  return { config, secrets };
}

/** The POST /api/integration-profiles body. */
export function buildCreateBody(values) {
  const method = String(values.authMethod || '');
  return {
    name: String(values.name || '').trim(),
    description: String(values.description || '').trim(),
    baseUrl: String(values.baseUrl || '').trim(),
    authMethod: method,
    ...buildCredentials(method, values),
  };
}

/**
 * The PATCH body: the name and description when changed, and the whole
 * credentials object when they are replaced. Never baseUrl or authMethod.
 * @param {{ name?: string, description?: string, authMethod: string }} profile
 */
export function buildPatchBody(profile, values, replaceCredentials) {
  /** @type {Record<string, unknown>} */
  const body = {};
  const name = String(values.name || '').trim();
  const description = String(values.description || '').trim();
  if (name !== (profile.name || '')) body.name = name;
  if (description !== (profile.description || '')) body.description = description;
  if (replaceCredentials) body.credentials = buildCredentials(profile.authMethod, values);
  return body;
}

/**
 * The first required field left empty, as { key, message }, or null. Checked
 * before sending so the user sees at once which field is missing; the
 * server checks everything again.
 * @param {string[]} keys the keys the form shows (e.g. no baseUrl when editing)
 */
export function missingField(method, values, keys) {
  const top = [['name', 'Name'], ['baseUrl', 'Base API URL']];
  for (const [key, label] of top) {
    if (keys.includes(key) && !String(values[key] || '').trim()) return { key, message: `${label} is required.` };
  }
  for (const f of fieldsFor(method)) {
    if (!keys.includes(f.key) || !f.required) continue;
    const v = values[f.key];
    const empty = f.kind === 'secret' ? !v : !String(v || '').trim();
    if (empty) return { key: f.key, message: `${f.label} is required.` };
  }
  return null;
}

/**
 * Which field of the form an API error is about, or null: a 409
 * integration_name_taken is the name; a 400 invalid_integration names the
 * field in its message ("config.tokenUrl: …", "baseUrl must be https…").
 * @param {{ code?: string, message?: string }} err
 * @param {string} method
 */
export function fieldOfError(err, method) {
  if (!err) return null;
  if (err.code === 'integration_name_taken') return 'name';
  if (err.code !== 'invalid_integration' && err.code !== 'immutable_field') return null;
  const msg = String(err.message || '');
  const fields = fieldsFor(method);
  // The full path first: "config.name" must not be read as the profile's name.
  for (const f of fields) {
    if (msg.includes(f.key)) return f.key;
  }
  const word = (w) => new RegExp(`(^|[^A-Za-z0-9_])${w}([^A-Za-z0-9_]|$)`).test(msg);
  for (const key of ['baseUrl', 'authMethod', 'description']) {
    if (word(key)) return key;
  }
  for (const f of fields) {
    if (f.name !== 'name' && word(f.name)) return f.key;
  }
  if (word('name')) return 'name';
  return null;
}

/** "set" for a secret the profile holds, "not set" otherwise. */
export function secretState(profile, name) {
  const set = profile && Array.isArray(profile.secretsSet) && profile.secretsSet.includes(name);
  return set ? 'set' : 'not set';
}

/** The secrets of a profile's method with their state, for display. */
export function secretSummary(profile) {
  return fieldsFor(profile.authMethod)
    .filter((f) => f.kind === 'secret')
    .map((f) => ({ name: f.name, label: f.label, state: secretState(profile, f.name) }));
}

/**
 * A Test connection result in words: "Connected · HTTP 200 · 35 ms" or
 * "Failed · HTTP 401 · 12 ms · <error>".
 * @param {{ ok?: boolean, status?: number, durationMs?: number, error?: string | null }} r
 */
export function testResultText(r) {
  const parts = [r && r.ok ? 'Connected' : 'Failed'];
  if (r && Number(r.status) > 0) parts.push(`HTTP ${r.status}`);
  if (r && Number.isFinite(Number(r.durationMs))) parts.push(`${Math.round(Number(r.durationMs))} ms`);
  if (r && r.error) parts.push(String(r.error));
  return parts.join(' · ');
}

/** "alice@example.com" from the profile's updatedBy, else createdBy. */
export function changedBy(profile) {
  return String(profile.updatedBy || profile.createdBy || '');
}

export function changedAt(profile) {
  return String(profile.updatedAt || profile.createdAt || '');
}

/** The "in use by" cell: the playbook names, or "—". */
export function inUseText(profile) {
  const list = Array.isArray(profile.inUseBy) ? profile.inUseBy.map(String) : [];
  return list.length ? list.join(', ') : '—';
}
