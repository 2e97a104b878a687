import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { SseParser } from '../src/agent/sse';
import { CompletionAccumulator, StreamError } from '../src/agent/stream';

function feedAll(pieces: string[]): { data: string; event: string }[] {
  const p = new SseParser();
  const out = pieces.flatMap((x) => p.feed(x));
  return [...out, ...p.end()];
}

describe('SseParser', () => {
  it('splits events at blank lines and strips one space after the colon', () => {
    assert.deepEqual(feedAll(['data: a\n\ndata:b\n\n']).map((e) => e.data), ['a', 'b']);
  });

  it('keeps partial lines across pieces, even split inside "data:" or a \\r\\n pair', () => {
    const text = 'data: {"x":1}\r\n\r\ndata: {"y":2}\r\n\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const events = feedAll([text.slice(0, cut), text.slice(cut)]);
      assert.deepEqual(events.map((e) => e.data), ['{"x":1}', '{"y":2}'], `cut at ${cut}`);
    }
    // One character at a time.
    assert.deepEqual(feedAll([...text]).map((e) => e.data), ['{"x":1}', '{"y":2}']);
  });

  it('joins multi-line data with \\n and accepts \\r line ends', () => {
    assert.deepEqual(feedAll(['data: line1\rdata: line2\r\r']).map((e) => e.data), ['line1\nline2']);
  });

  it('ignores comments, ids, retries and unknown fields; keeps the event name', () => {
    const events = feedAll([': keep-alive\n\nid: 7\nretry: 100\nevent: delta\nfoo: bar\ndata: x\n\n']);
    assert.deepEqual(events, [{ event: 'delta', data: 'x' }]);
  });

  it('dispatches a last event that lacks its blank line when the stream ends', () => {
    assert.deepEqual(feedAll(['data: [DONE]']).map((e) => e.data), ['[DONE]']);
  });

  it('does not dispatch an event without data', () => {
    assert.deepEqual(feedAll(['event: ping\n\n']), []);
  });
});

const chunk = (delta: unknown, finish: string | null = null) => JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] });

describe('CompletionAccumulator', () => {
  it('assembles content deltas and reports each piece', () => {
    const acc = new CompletionAccumulator();
    const seen: string[] = [];
    for (const d of [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hel' }), chunk({ content: 'lo' }), chunk({}, 'stop'), '[DONE]']) {
      const e = acc.pushData(d);
      if (e.content) seen.push(e.content);
    }
    assert.deepEqual(seen, ['Hel', 'lo']);
    assert.equal(acc.done, true);
    const r = acc.result();
    assert.equal(r.content, 'Hello');
    assert.equal(r.finishReason, 'stop');
    assert.deepEqual(r.toolCalls, []);
  });

  it('assembles tool-call argument fragments by index, interleaved, and announces each tool once', () => {
    const acc = new CompletionAccumulator();
    const started: string[] = [];
    const pieces = [
      chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'write_file', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'val', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 1, function: { name: 'idate', arguments: '{}' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"path":"play' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: 'book.py","content":"x = 1\\n"}' } }] }),
      chunk({}, 'tool_calls'),
      JSON.stringify({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 5 } }),
      '[DONE]',
    ];
    for (const p of pieces) {
      const e = acc.pushData(p);
      if (e.toolStarted) started.push(`${e.toolStarted.index}:${e.toolStarted.name}`);
    }
    const r = acc.result();
    assert.deepEqual(started, ['0:write_file', '1:val']);
    assert.deepEqual(r.toolCalls, [
      { id: 'call_a', name: 'write_file', arguments: '{"path":"playbook.py","content":"x = 1\\n"}' },
      { id: 'call_b', name: 'validate', arguments: '{}' },
    ]);
    assert.deepEqual(JSON.parse(r.toolCalls[0].arguments), { path: 'playbook.py', content: 'x = 1\n' });
    assert.equal(r.finishReason, 'tool_calls');
    assert.deepEqual(r.usage, { prompt_tokens: 10, completion_tokens: 5 });
  });

  it('does not double a name that a server repeats in every chunk, and takes object arguments', () => {
    const acc = new CompletionAccumulator();
    acc.pushData(chunk({ tool_calls: [{ index: 0, id: 'c1', function: { name: 'read_file' } }] }));
    acc.pushData(chunk({ tool_calls: [{ index: 0, function: { name: 'read_file', arguments: { path: 'README.md' } } }] }));
    assert.deepEqual(acc.result().toolCalls, [{ id: 'c1', name: 'read_file', arguments: '{"path":"README.md"}' }]);
  });

  it('gives an id to a tool call that came without one', () => {
    const acc = new CompletionAccumulator();
    acc.pushData(chunk({ tool_calls: [{ function: { name: 'validate', arguments: '{}' } }] }));
    const [call] = acc.result().toolCalls;
    assert.equal(call.name, 'validate');
    assert.match(call.id, /^call_0_/);
  });

  it('skips and counts malformed chunks without losing the good ones', () => {
    const acc = new CompletionAccumulator();
    for (const d of ['{not json', chunk({ content: 'a' }), '[1,2]', '"text"', JSON.stringify({ foo: 1 }), chunk({ content: 'b' }), '']) acc.pushData(d);
    assert.equal(acc.result().content, 'ab');
    assert.equal(acc.malformed, 4);
    assert.equal(acc.sawChunk, true);
  });

  it('throws a StreamError for an error chunk', () => {
    const acc = new CompletionAccumulator();
    assert.throws(() => acc.pushData(JSON.stringify({ error: { message: 'context length exceeded', code: 'context_length_exceeded' } })),
      (e: unknown) => e instanceof StreamError && e.code === 'context_length_exceeded' && /context length/.test(e.message));
  });

  it('reads a whole (non-streamed) completion with message.tool_calls', () => {
    const acc = new CompletionAccumulator();
    acc.pushChunk({
      choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: 'ok', tool_calls: [{ id: 'x', type: 'function', function: { name: 'validate', arguments: '{}' } }] } }],
    });
    assert.deepEqual(acc.result().toolCalls, [{ id: 'x', name: 'validate', arguments: '{}' }]);
    assert.equal(acc.result().content, 'ok');
  });
});
