// Turns OpenAI-compatible chat-completion chunks (streamed) or a whole
// answer (not streamed) into one assistant turn: its text and its tool
// calls, the arguments of each call assembled from fragments by index.

export interface ToolCall {
  id: string;
  name: string;
  /** The raw JSON text of the arguments, as the model wrote it. */
  arguments: string;
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

export interface Completion {
  content: string;
  toolCalls: ToolCall[];
  finishReason?: string;
  usage?: Usage;
  /** Chunks that were not JSON or not shaped like a chunk, and were skipped. */
  malformed: number;
}

/** What one chunk changed, for showing it as it arrives. */
export interface ChunkEffect {
  content?: string;
  toolStarted?: { index: number; name: string };
}

interface PartialCall {
  id: string;
  name: string;
  args: string;
  announced: boolean;
}

/** An error object sent inside the stream (some providers do). */
export class StreamError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'StreamError';
  }
}

export class CompletionAccumulator {
  content = '';
  finishReason?: string;
  usage?: Usage;
  malformed = 0;
  /** `data: [DONE]` seen. */
  done = false;
  /** At least one well-formed chunk seen. */
  sawChunk = false;
  private calls = new Map<number, PartialCall>();

  /** Takes the data of one SSE event. Throws StreamError for an error chunk. */
  pushData(data: string): ChunkEffect {
    const text = data.trim();
    if (text === '') return {};
    if (text === '[DONE]') {
      this.done = true;
      return {};
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(text);
    } catch {
      this.malformed++;
      return {};
    }
    return this.pushChunk(chunk);
  }

  pushChunk(chunk: unknown): ChunkEffect {
    if (!isObject(chunk)) {
      this.malformed++;
      return {};
    }
    if (isObject(chunk.error)) {
      const e = chunk.error;
      throw new StreamError(typeof e.message === 'string' ? e.message : 'the model reported an error',
        typeof e.code === 'string' ? e.code : undefined);
    }
    if (isObject(chunk.usage)) this.usage = chunk.usage as Usage;
    const choices = chunk.choices;
    if (!Array.isArray(choices)) {
      // A usage-only last chunk has choices: []; anything else is not a chunk.
      if (!isObject(chunk.usage)) this.malformed++;
      else this.sawChunk = true;
      return {};
    }
    this.sawChunk = true;
    const choice = choices[0];
    if (!isObject(choice)) return {};
    if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
    const effect: ChunkEffect = {};
    // Streaming chunks carry `delta`; a whole answer carries `message`.
    const delta = isObject(choice.delta) ? choice.delta : isObject(choice.message) ? choice.message : undefined;
    if (!delta) return effect;
    if (typeof delta.content === 'string' && delta.content !== '') {
      this.content += delta.content;
      effect.content = delta.content;
    }
    if (Array.isArray(delta.tool_calls)) {
      delta.tool_calls.forEach((raw, position) => {
        if (!isObject(raw)) return;
        const index = typeof raw.index === 'number' ? raw.index : position;
        let call = this.calls.get(index);
        if (!call) {
          call = { id: '', name: '', args: '', announced: false };
          this.calls.set(index, call);
        }
        if (typeof raw.id === 'string' && raw.id) call.id = raw.id;
        const fn = isObject(raw.function) ? raw.function : undefined;
        if (fn) {
          if (typeof fn.name === 'string' && fn.name) {
            // Fragments append; a provider that repeats the whole name each chunk does not double it.
            call.name = fn.name.startsWith(call.name) ? fn.name : call.name + fn.name;
          }
          if (typeof fn.arguments === 'string') call.args += fn.arguments;
          else if (isObject(fn.arguments)) call.args += JSON.stringify(fn.arguments); // some servers send an object
        }
        if (call.name && !call.announced) {
          call.announced = true;
          effect.toolStarted = { index, name: call.name };
        }
      });
    }
    return effect;
  }

  result(): Completion {
    const toolCalls = [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .filter(([, c]) => c.name !== '' || c.args !== '')
      .map(([index, c]) => ({ id: c.id || `call_${index}_${Math.random().toString(36).slice(2, 10)}`, name: c.name, arguments: c.args }));
    return { content: this.content, toolCalls, finishReason: this.finishReason, usage: this.usage, malformed: this.malformed };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
