// The Markdown dialect as the extension uses it: in VS Code's preview (the
// plugin on VS Code's own markdown-it) and in the chat view. The renderer's
// own tests are the portal's (web/test/markdown.test.js).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import MarkdownIt from 'markdown-it';
import { playbookMarkdown, renderMarkdown } from '../../../web/src/markdown.js';

describe('the Markdown preview: the dialect on VS Code\'s markdown-it', () => {
  // VS Code makes its instance with html: true; the plugin turns it off.
  const md = playbookMarkdown(new MarkdownIt({ html: true }));

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

  it('shows raw HTML as text, and refuses javascript: links', () => {
    const html = md.render('<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://example.com)\n\n```mermaid\n<script>alert(1)</script>\n```\n');
    assert.doesNotMatch(html, /<script>/);
    assert.doesNotMatch(html, /href="javascript:/);
    assert.match(html, /<a href="https:\/\/example.com" rel="noopener noreferrer">y<\/a>/);
  });

  it('changes VS Code\'s instance in place and returns it (extendMarkdownIt hands it back)', () => {
    const vsMd = new MarkdownIt({ html: true });
    assert.equal(playbookMarkdown(vsMd), vsMd);
    assert.equal(vsMd.options.html, false);
  });
});

describe('the chat view\'s Markdown', () => {
  const chat = { headingOffset: 2, breaks: true };

  it('keeps its headings, line breaks, lists, code and tables', () => {
    const html = renderMarkdown('# Plan\nfirst line\nsecond line\n\n- a\n- b\n\n`x`\n\n| k | v |\n|---|--:|\n| a | 1 |\n', chat);
    assert.match(html, /^<h3>Plan<\/h3>\n<p>first line<br>\nsecond line<\/p>/);
    assert.match(html, /<ul>\n<li>a<\/li>\n<li>b<\/li>\n<\/ul>/);
    assert.match(html, /<code>x<\/code>/);
    assert.match(html, /<td class="align-right">1<\/td>/);
  });

  it('draws mermaid fences as placeholders the view\'s mermaid bundle draws', () => {
    assert.match(renderMarkdown('```mermaid\nflowchart LR\n  a-->b\n```', chat), /<pre class="mermaid code-line" data-line="0">flowchart LR\n  a--&gt;b\n<\/pre>/);
  });
});
