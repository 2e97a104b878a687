#!/usr/bin/env node
// scripted-llm: an OpenAI-compatible chat-completions server that replays
// fixed transcripts, for tests only (the extension's unit tests and the
// browser test, where it stands in as the gateway's LLM_BASE_URL).
//
//   node test/scripted-llm.mjs --transcript FILE [--transcript FILE ...]
//        [--host 127.0.0.1] [--port 0] [--delay-ms 10] [--chunk-size 24] [--port-file FILE]
//
// It prints one JSON line on stdout once listening: {"listening":"http://127.0.0.1:PORT"}
// (and writes that URL to --port-file when given), then serves:
//   POST /chat/completions, POST /v1/chat/completions   the replay (SSE when "stream": true)
//   GET  /v1/models, /models                             one model, "scripted"
//   GET  /_scripted/requests                             what it was asked, as JSON (for assertions)
//   POST /_scripted/reset                                forget requests and attempt counters
//   GET  /healthz                                        "ok"
// It stops on SIGTERM or SIGINT.
//
// A transcript file is JSON:
//   { "name": "phishing playbook",
//     "match": "phishing",        // optional: picked when the first user message contains this (case-insensitive);
//                                 // a transcript without "match" is the fallback
//     "steps": [ STEP, ... ] }
// The step answered is the number of assistant messages already in the request, so the
// same conversation always gets the same step (retries included). A STEP is
//   { "expect": { "lastRole": "tool", "lastContains": "Act mode", "systemContains": "PLAN MODE" },   // optional checks
//     "reply": { "content": "text", "tool_calls": [ { "name": "write_file", "arguments": { ... } } ],
//                "usage": { "prompt_tokens": 100, "completion_tokens": 20 } } }
// or { "attempts": [ ATTEMPT, ... ] }: the first request at this step gets the first attempt, the
// next request the next one, and the last attempt repeats. An ATTEMPT (or a STEP) is a "reply", or
//   { "error": { "status": 429, "code": "rate_limited", "message": "…" } }   an HTTP error
//   { "garbage": ["data: {not json"], "reply": … }                           malformed SSE lines first
//   { "breakAfter": 3, "reply": … }                                          the connection drops after 3 chunks
//   { "hangMs": 5000, … }                                                    waits before answering
//   { "raw": "data: …\n\n" }                                                 this exact SSE body
// "arguments" may be an object (sent as JSON text, streamed in fragments) or a string (sent as is,
// e.g. invalid JSON). Past the last step it answers "(the scripted transcript has ended)".
import * as http from 'node:http';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, delayMs: 10, chunkSize: 24, transcripts: [], portFile: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--transcript': opts.transcripts.push(next()); break;
      case '--host': opts.host = next(); break;
      case '--port': opts.port = Number(next()); break;
      case '--delay-ms': opts.delayMs = Number(next()); break;
      case '--chunk-size': opts.chunkSize = Math.max(1, Number(next())); break;
      case '--port-file': opts.portFile = next(); break;
      case '-h': case '--help':
        process.stdout.write('usage: scripted-llm.mjs --transcript FILE [...] [--host H] [--port P] [--delay-ms N] [--chunk-size N] [--port-file F]\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (opts.transcripts.length === 0) throw new Error('give at least one --transcript FILE');
  return opts;
}

function loadTranscript(file) {
  const t = JSON.parse(readFileSync(file, 'utf8'));
  if (!t || !Array.isArray(t.steps)) throw new Error(`${file}: a transcript needs "steps"`);
  return { name: t.name || file, match: typeof t.match === 'string' ? t.match.toLowerCase() : '', steps: t.steps };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function contentOf(m) {
  if (!m) return '';
  if (typeof m.content === 'string') return m.content;
  if (Array.isArray(m.content)) return m.content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
  return '';
}

export function startServer(opts) {
  const transcripts = opts.transcripts.map((t) => (typeof t === 'string' ? loadTranscript(t) : t));
  const attempts = new Map(); // "transcript#step" -> requests served
  let requests = [];

  const pick = (messages) => {
    const firstUser = contentOf(messages.find((m) => m.role === 'user')).toLowerCase();
    return transcripts.find((t) => t.match && firstUser.includes(t.match)) ?? transcripts.find((t) => !t.match) ?? transcripts[0];
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      if (req.method === 'GET' && url.pathname === '/healthz') return text(res, 200, 'ok');
      if (req.method === 'GET' && (url.pathname === '/v1/models' || url.pathname === '/models')) {
        return json(res, 200, { object: 'list', data: [{ id: 'scripted', object: 'model', owned_by: 'tests' }] });
      }
      if (req.method === 'GET' && url.pathname === '/_scripted/requests') return json(res, 200, requests);
      if (req.method === 'POST' && url.pathname === '/_scripted/reset') {
        requests = [];
        attempts.clear();
        return json(res, 200, { ok: true });
      }
      if (req.method !== 'POST' || (url.pathname !== '/chat/completions' && url.pathname !== '/v1/chat/completions')) {
        return json(res, 404, { error: { code: 'not_found', message: `scripted-llm: no route ${req.method} ${url.pathname}` } });
      }
      const raw = await readBody(req);
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        return json(res, 400, { error: { code: 'bad_request', message: 'scripted-llm: the request is not JSON' } });
      }
      const messages = Array.isArray(body.messages) ? body.messages : [];
      const transcript = pick(messages);
      const stepIndex = messages.filter((m) => m.role === 'assistant').length;
      const step = transcript.steps[stepIndex];
      const key = `${transcript.name}#${stepIndex}`;
      const n = attempts.get(key) ?? 0;
      attempts.set(key, n + 1);
      const last = messages[messages.length - 1];
      const system = contentOf(messages.find((m) => m.role === 'system'));
      requests.push({
        at: new Date().toISOString(), transcript: transcript.name, step: stepIndex, attempt: n,
        messages: messages.length, lastRole: last?.role ?? '', lastContent: contentOf(last).slice(0, 400),
        stream: body.stream === true, tools: Array.isArray(body.tools) ? body.tools.map((t) => t?.function?.name) : [],
        mode: /PLAN MODE/.test(system) ? 'plan' : /ACT MODE/.test(system) ? 'act' : '', bytes: raw.length,
      });
      if (!step) {
        return answer(res, body, { content: '(the scripted transcript has ended)' }, stepIndex, {}, opts);
      }
      const failed = checkExpect(step.expect, messages, system);
      if (failed) {
        process.stderr.write(`scripted-llm: ${transcript.name} step ${stepIndex}: ${failed}\n`);
        return json(res, 500, { error: { code: 'transcript_mismatch', message: `scripted-llm: step ${stepIndex}: ${failed}` } });
      }
      const attempt = Array.isArray(step.attempts) ? step.attempts[Math.min(n, step.attempts.length - 1)] : step;
      if (attempt.hangMs) await sleep(attempt.hangMs);
      if (res.destroyed) return undefined;
      if (attempt.error) {
        const e = attempt.error;
        return json(res, e.status ?? 500, { error: { code: e.code ?? 'scripted_error', message: e.message ?? 'scripted error' } });
      }
      if (typeof attempt.raw === 'string') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        return res.end(attempt.raw);
      }
      return answer(res, body, attempt.reply ?? { content: '' }, stepIndex, attempt, opts);
    } catch (err) {
      if (!res.headersSent) json(res, 500, { error: { code: 'scripted_failure', message: String(err) } });
      else res.destroy();
    }
    return undefined;
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      const addr = server.address();
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${host}:${addr.port}`,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

function checkExpect(expect, messages, system) {
  if (!expect) return '';
  const last = messages[messages.length - 1];
  if (expect.lastRole && last?.role !== expect.lastRole) return `expected the last message from "${expect.lastRole}", got "${last?.role}"`;
  if (expect.lastContains && !contentOf(last).toLowerCase().includes(String(expect.lastContains).toLowerCase())) {
    return `expected the last message to contain ${JSON.stringify(expect.lastContains)}, got ${JSON.stringify(contentOf(last).slice(0, 200))}`;
  }
  if (expect.systemContains && !system.includes(expect.systemContains)) return `expected the system prompt to contain ${JSON.stringify(expect.systemContains)}`;
  return '';
}

async function answer(res, body, reply, stepIndex, attempt, opts) {
  const id = `chatcmpl-scripted-${stepIndex}`;
  const created = Math.floor(Date.now() / 1000);
  const model = typeof body.model === 'string' && body.model ? body.model : 'scripted';
  const calls = (reply.tool_calls ?? []).map((c, i) => ({
    id: c.id ?? `call_${stepIndex}_${i}`,
    name: c.name,
    args: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {}),
  }));
  const content = reply.content ?? '';
  const usage = reply.usage ?? {
    prompt_tokens: Math.ceil(JSON.stringify(body.messages ?? []).length / 4),
    completion_tokens: Math.ceil((content.length + calls.reduce((s, c) => s + c.args.length, 0)) / 4),
  };
  usage.total_tokens = (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0);
  const finish = calls.length ? 'tool_calls' : 'stop';

  if (body.stream !== true) {
    return json(res, 200, {
      id, object: 'chat.completion', created, model,
      choices: [{
        index: 0, finish_reason: finish,
        message: {
          role: 'assistant', content: content || null,
          ...(calls.length ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.args } })) } : {}),
        },
      }],
      usage,
    });
  }

  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  const size = opts.chunkSize ?? 24;
  const delay = opts.delayMs ?? 10;
  const chunk = (delta, finishReason = null) => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finishReason }] });
  const lines = [];
  for (const g of attempt.garbage ?? []) lines.push(g);
  lines.push(`data: ${JSON.stringify(chunk({ role: 'assistant', content: '' }))}`);
  for (let i = 0; i < content.length; i += size) lines.push(`data: ${JSON.stringify(chunk({ content: content.slice(i, i + size) }))}`);
  calls.forEach((c, index) => {
    lines.push(`data: ${JSON.stringify(chunk({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] }))}`);
    for (let i = 0; i < c.args.length; i += size * 4) {
      lines.push(`data: ${JSON.stringify(chunk({ tool_calls: [{ index, function: { arguments: c.args.slice(i, i + size * 4) } }] }))}`);
    }
  });
  lines.push(`data: ${JSON.stringify(chunk({}, finish))}`);
  lines.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}`);
  lines.push('data: [DONE]');
  let sent = 0;
  for (const line of lines) {
    if (res.destroyed) return undefined;
    if (attempt.breakAfter !== undefined && sent >= attempt.breakAfter) {
      res.socket?.destroy();
      return undefined;
    }
    res.write(`${line}\n\n`);
    sent++;
    if (delay > 0) await sleep(delay);
  }
  res.end();
  return undefined;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res, status, body) {
  const t = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(t) });
  res.end(t);
}

function text(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function isMain() {
  try {
    return Boolean(process.argv[1]) && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`scripted-llm: ${err.message}\n`);
    process.exit(2);
  }
  startServer(opts).then(({ url, close }) => {
    if (opts.portFile) writeFileSync(opts.portFile, url + '\n');
    process.stdout.write(JSON.stringify({ listening: url }) + '\n');
    const stop = () => close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (err) => {
    process.stderr.write(`scripted-llm: ${err.message}\n`);
    process.exit(1);
  });
}
