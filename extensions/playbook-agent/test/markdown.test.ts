import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import MarkdownIt from 'markdown-it';
import { mermaidPlugin } from '../src/markdown/mermaidPlugin';

describe('the markdown-it mermaid plugin (Markdown preview)', () => {
  const md = mermaidPlugin(new MarkdownIt());

  it('turns a ```mermaid fence into <pre class="mermaid">, escaped, with its source line', () => {
    const html = md.render('# Doc\n\n```mermaid\nflowchart TD\n  A[Start] --> B{"x < 3 & y"}\n```\n');
    assert.match(html, /<pre class="mermaid code-line" data-line="2">flowchart TD\n  A\[Start\] --&gt; B\{&quot;x &lt; 3 &amp; y&quot;\}\n<\/pre>/);
    assert.doesNotMatch(html, /<code/);
  });

  it('accepts an info string with more words and any case', () => {
    assert.match(md.render('```Mermaid title\nflowchart LR\n```\n'), /<pre class="mermaid/);
  });

  it('leaves other fences to the previous renderer', () => {
    const html = md.render('```python\nprint("<hi>")\n```\n');
    assert.match(html, /<pre><code class="language-python">print\(&quot;&lt;hi&gt;&quot;\)\n<\/code><\/pre>/);
  });

  it('keeps no raw HTML from the diagram source', () => {
    const html = md.render('```mermaid\n<script>alert(1)</script>\n```\n');
    assert.doesNotMatch(html, /<script>/);
  });
});
