// The chat-completions client: OpenAI-compatible, streaming, with tool
// calling. It talks only through a Transport, which in the extension is the
// gateway's LLM endpoint (the gateway adds the model and holds the key).
import { networkReason } from './network';
import { SseParser } from './sse';
import { Completion, CompletionAccumulator, ChunkEffect, StreamError } from './stream';

export interface ToolCallMessage {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCallMessage[] }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface ToolSpec {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ToolSpec[];
}

/** Sends one request body; resolves with the HTTP response (any status). */
export type Transport = (body: string, signal: AbortSignal) => Promise<Response>;

/**
 * Why a call failed:
 * - no_model: the gateway has no model configured (503 no_model)
 * - budget: the tenant's daily token budget is used up (429 token_budget_exhausted)
 * - rate_limited: the provider asks to slow down (another 429)
 * - context_too_long: the provider refused the request (400, usually the context) or the gateway found it too large (413)
 * - provider: the provider is unreachable or failed (502, other 5xx)
 * - unauthorized: the workspace's token was refused (401, 403)
 * - unavailable: the gateway has no LLM endpoint (404)
 * - network, timeout: the gateway could not be reached, or went silent
 * - bad_response: the answer could not be understood
 * - aborted: the user stopped it
 */
export type LlmErrorKind =
  | 'no_model' | 'budget' | 'rate_limited' | 'context_too_long' | 'provider' | 'unauthorized'
  | 'unavailable' | 'network' | 'timeout' | 'bad_response' | 'aborted';

export class LlmError extends Error {
  constructor(
    readonly kind: LlmErrorKind,
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

export interface ClientOptions {
  /** How long to wait for the answer's headers (the model thinking before its first token). */
  firstByteTimeoutMs?: number;
  /** How long the stream may stay silent between two pieces. */
  idleTimeoutMs?: number;
}

export interface CompleteOptions {
  signal?: AbortSignal;
  onChunk?: (effect: ChunkEffect) => void;
}

export const DEFAULT_FIRST_BYTE_TIMEOUT_MS = 150_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 90_000;

export class ChatClient {
  private readonly firstByteTimeoutMs: number;
  private readonly idleTimeoutMs: number;

  constructor(private readonly transport: Transport, opts: ClientOptions = {}) {
    this.firstByteTimeoutMs = opts.firstByteTimeoutMs ?? DEFAULT_FIRST_BYTE_TIMEOUT_MS;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  async complete(req: ChatRequest, opts: CompleteOptions = {}): Promise<Completion> {
    const body: Record<string, unknown> = { messages: req.messages, stream: true };
    if (req.tools && req.tools.length > 0) {
      body.tools = req.tools;
      body.tool_choice = 'auto';
    }
    const ctl = new AbortController();
    let timedOut = false;
    const onAbort = () => ctl.abort();
    if (opts.signal?.aborted) throw new LlmError('aborted', 'stopped');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => { timedOut = true; ctl.abort(); }, ms);
    };
    const fail = (err: unknown): LlmError => {
      if (err instanceof LlmError) return err;
      if (opts.signal?.aborted) return new LlmError('aborted', 'stopped');
      if (timedOut) return new LlmError('timeout', 'the model did not answer in time');
      if (err instanceof StreamError) return classifyMessage(err.message, err.code);
      return new LlmError('network', networkReason(err));
    };
    try {
      arm(this.firstByteTimeoutMs);
      let res: Response;
      try {
        res = await this.transport(JSON.stringify(body), ctl.signal);
      } catch (err) {
        throw fail(err);
      }
      if (!res.ok) {
        let text = '';
        try {
          text = await res.text();
        } catch (err) {
          throw fail(err);
        }
        throw httpError(res.status, text);
      }
      arm(this.idleTimeoutMs);
      const type = res.headers.get('content-type') ?? '';
      const acc = new CompletionAccumulator();
      if (!type.includes('text/event-stream')) {
        // A server that does not stream answers with the whole completion.
        let text: string;
        try {
          text = await res.text();
        } catch (err) {
          throw fail(err);
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          throw new LlmError('bad_response', 'the model\'s answer is not valid JSON');
        }
        try {
          const effect = acc.pushChunk(parsed);
          opts.onChunk?.(effect);
        } catch (err) {
          throw fail(err);
        }
        if (!acc.sawChunk) throw new LlmError('bad_response', 'the model\'s answer has no choices');
        return acc.result();
      }
      if (!res.body) throw new LlmError('bad_response', 'the answer has no body');
      const parser = new SseParser();
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      const take = (events: { data: string }[]) => {
        for (const ev of events) {
          if (acc.done) return;
          const effect = acc.pushData(ev.data);
          if (effect.content || effect.toolStarted) opts.onChunk?.(effect);
        }
      };
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          arm(this.idleTimeoutMs);
          take(parser.feed(decoder.decode(value, { stream: true })));
          if (acc.done) break;
        }
        take(parser.feed(decoder.decode()));
        take(parser.end());
      } catch (err) {
        if (err instanceof LlmError || err instanceof StreamError || opts.signal?.aborted || timedOut) throw fail(err);
        throw new LlmError('network', `the answer broke off (${networkReason(err)})`);
      } finally {
        reader.cancel().catch(() => undefined);
      }
      if (!acc.sawChunk) {
        throw new LlmError('bad_response', acc.malformed > 0
          ? 'the model\'s answer could not be read (malformed stream)'
          : 'the model sent an empty answer');
      }
      return acc.result();
    } finally {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** Maps an HTTP error answer of the gateway's LLM endpoint. */
export function httpError(status: number, text: string): LlmError {
  let code: string | undefined;
  let message = '';
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } | string };
    if (typeof body.error === 'object' && body.error) {
      if (typeof body.error.code === 'string') code = body.error.code;
      if (typeof body.error.message === 'string') message = body.error.message;
    } else if (typeof body.error === 'string') {
      message = body.error;
    }
  } catch {
    message = text.trim().slice(0, 300);
  }
  if (!message) message = `HTTP ${status}`;
  if (code === 'no_model') return new LlmError('no_model', message, status, code);
  if (code === 'token_budget_exhausted') return new LlmError('budget', message, status, code);
  switch (status) {
    case 429:
      return new LlmError('rate_limited', message, status, code);
    case 400:
    case 413:
      return new LlmError('context_too_long', message, status, code);
    case 401:
    case 403:
      return new LlmError('unauthorized', message, status, code);
    case 404:
    case 405:
      return new LlmError('unavailable', message, status, code);
    case 503:
      return new LlmError('provider', message, status, code);
  }
  if (status >= 500) return new LlmError('provider', message, status, code);
  return new LlmError('bad_response', message, status, code);
}

function classifyMessage(message: string, code?: string): LlmError {
  if (/context|too long|maximum.*tokens|token limit/i.test(message)) {
    return new LlmError('context_too_long', message, undefined, code);
  }
  return new LlmError('provider', message, undefined, code);
}
