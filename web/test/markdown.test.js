// The one Markdown renderer (src/markdown.js), as the portal, the chat view
// and the preview use it; and the portal's bundle of it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import MarkdownIt from 'markdown-it';
import { createMarkdown, isAllowedLink, MERMAID_SELECTOR, playbookMarkdown, renderMarkdown } from '../src/markdown.js';

const portal = { headingOffset: 2, headingIds: true, newTab: true };

describe('raw HTML', () => {
  it('is shown as text, in blocks and inline', () => {
    const html = renderMarkdown('<script>alert(1)</script>\n\nA <img src=x onerror="alert(1)"> and <b>bold</b>.\n\n<div onclick="x()">\n\nblock\n\n</div>\n');
    assert.doesNotMatch(html, /<script|<img|<b>|<div/);
    assert.match(html, /<p>&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/p>/);
    assert.match(html, /A &lt;img src=x onerror=&quot;alert\(1\)&quot;&gt; and &lt;b&gt;bold&lt;\/b&gt;\./);
  });

  it('stays off when the host\'s markdown-it had it on (VS Code\'s preview)', () => {
    const md = playbookMarkdown(new MarkdownIt({ html: true }));
    assert.equal(md.options.html, false);
    assert.doesNotMatch(md.render('<iframe src="https://example.com"></iframe>'), /<iframe/);
  });
});

describe('links', () => {
  const bad = [
    '[x](javascript:alert(1))',
    '[x](JavaScript:alert(1))',
    '[x](&#106;avascript:alert(1))',
    '[x](<java\tscript:alert(1)>)',
    '[x](javascript%3Aalert(1))',
    '[x](data:text/html;base64,PHNjcmlwdD4=)',
    '[x](vbscript:msgbox(1))',
    '[x](file:///etc/passwd)',
    '[x](vscode:extension/evil)',
    '<javascript:alert(1)>',
    '<data:text/html,hi>',
    '[x][r]\n\n[r]: javascript:alert(1)',
    '![x](javascript:alert(1))',
    '![x](data:image/png;base64,iVBORw0KGgo=)',
  ];
  for (const src of bad) {
    it(`${JSON.stringify(src)} is not a link`, () => {
      const html = renderMarkdown(src, portal);
      assert.doesNotMatch(html, /<a /, html);
      assert.doesNotMatch(html, /href=/, html);
    });
  }

  it('allowed links get rel="noopener noreferrer"; absolute ones open in a new tab in the portal', () => {
    const html = renderMarkdown('[a](https://example.com/x?y=1) [b](http://example.com) [c](mailto:soc@example.com) [d](docs/run.md) [e](#steps) [f](//cdn.example.com/x)', portal);
    assert.match(html, /<a href="https:\/\/example.com\/x\?y=1" rel="noopener noreferrer" target="_blank">a<\/a>/);
    assert.match(html, /<a href="http:\/\/example.com" rel="noopener noreferrer" target="_blank">b<\/a>/);
    assert.match(html, /<a href="mailto:soc@example.com" rel="noopener noreferrer" target="_blank">c<\/a>/);
    assert.match(html, /<a href="docs\/run.md" rel="noopener noreferrer">d<\/a>/);
    assert.match(html, /<a href="#steps" rel="noopener noreferrer">e<\/a>/);
    assert.match(html, /<a href="\/\/cdn.example.com\/x" rel="noopener noreferrer" target="_blank">f<\/a>/);
  });

  it('opens no new tab where the host does not ask for one (chat, preview)', () => {
    assert.equal(renderMarkdown('[a](https://example.com)'), '<p><a href="https://example.com" rel="noopener noreferrer">a</a></p>\n');
  });

  it('makes bare http(s) URLs links, but not bare host names', () => {
    const html = renderMarkdown('See https://example.com/a, or example.com.');
    assert.match(html, /<a href="https:\/\/example.com\/a" rel="noopener noreferrer">https:\/\/example.com\/a<\/a>, or example.com\./);
  });

  it('shows an image as a link to it (nothing is loaded from elsewhere)', () => {
    const html = renderMarkdown('![the flow](https://example.com/flow.png "Flow")', portal);
    assert.equal(html, '<p><a href="https://example.com/flow.png" title="Flow" rel="noopener noreferrer" target="_blank">🖼 the flow</a></p>\n');
    assert.doesNotMatch(html, /<img/);
  });

  it('isAllowedLink', () => {
    for (const ok of ['https://a', 'HTTP://a', 'mailto:a@b', 'a/b', './a', '../a', '#x', '?q=1', '/abs', '', 'notes/a:b.md']) {
      assert.equal(isAllowedLink(ok), true, ok);
    }
    for (const no of ['javascript:x', ' javascript:x', '\u0001javascript:x', 'java\nscript:x', 'data:x', 'vbscript:x', 'file:x', 'ftp://x', 'blob:x', 'java%09script:x', '%6Aavascript:x']) {
      assert.equal(isAllowedLink(no), false, JSON.stringify(no));
    }
  });
});

describe('mermaid fences', () => {
  it('become the placeholder, the source escaped', () => {
    const html = renderMarkdown('```mermaid\nflowchart TD\n  A["x < 3 & y"] --> B</pre><script>alert(1)</script>\n```\n');
    assert.equal(html, '<pre class="mermaid code-line" data-line="0">flowchart TD\n  A[&quot;x &lt; 3 &amp; y&quot;] --&gt; B&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;\n</pre>\n');
    assert.equal(MERMAID_SELECTOR, 'pre.mermaid');
  });

  it('whatever the case, fence or extra words', () => {
    assert.match(renderMarkdown('~~~ Mermaid title\nflowchart LR\n~~~\n'), /^<pre class="mermaid code-line" data-line="0">flowchart LR\n<\/pre>/);
  });

  it('other fences stay code blocks', () => {
    assert.equal(renderMarkdown('```python\nprint("<hi>")\n```\n'), '<pre><code class="language-python">print(&quot;&lt;hi&gt;&quot;)\n</code></pre>\n');
  });
});

describe('blocks and inlines', () => {
  it('tables: alignment as a class (no style attribute), in a scrolling wrapper', () => {
    const html = renderMarkdown('| Step | Who | Time |\n|:--|:-:|--:|\n| `check` | SOC | 5 |\n', portal);
    assert.equal(html, [
      '<div class="md-table-wrap"><table>',
      '<thead>',
      '<tr>',
      '<th class="align-left">Step</th>',
      '<th class="align-center">Who</th>',
      '<th class="align-right">Time</th>',
      '</tr>',
      '</thead>',
      '<tbody>',
      '<tr>',
      '<td class="align-left"><code>check</code></td>',
      '<td class="align-center">SOC</td>',
      '<td class="align-right">5</td>',
      '</tr>',
      '</tbody>',
      '</table></div>',
      '',
    ].join('\n'));
    assert.doesNotMatch(html, /style=/);
  });

  it('code: inline and indented, escaped', () => {
    assert.equal(renderMarkdown('Use `ctx.integration("<x>")`.'), '<p>Use <code>ctx.integration(&quot;&lt;x&gt;&quot;)</code>.</p>\n');
    assert.equal(renderMarkdown('    a < b\n'), '<pre><code>a &lt; b\n</code></pre>\n');
  });

  it('headings: offset (at most h6) and unique ids in the portal', () => {
    const html = renderMarkdown('# Phishing triage\n\n## Steps\n\n## Steps\n\n##### Deep\n\n### `ctx` & more', portal);
    assert.equal(html, [
      '<h3 id="md-phishing-triage">Phishing triage</h3>',
      '<h4 id="md-steps">Steps</h4>',
      '<h4 id="md-steps-2">Steps</h4>',
      '<h6 id="md-deep">Deep</h6>',
      '<h5 id="md-ctx-more"><code>ctx</code> &amp; more</h5>',
      '',
    ].join('\n'));
    assert.equal(renderMarkdown('# Title'), '<h1>Title</h1>\n', 'no offset, no id by default');
  });

  it('lists, emphasis, quotes and rules', () => {
    assert.equal(renderMarkdown('1. one\n2. **two**\n   - a\n   - *b*\n\n> quoted\n\n---\n'), [
      '<ol>', '<li>one</li>', '<li><strong>two</strong>', '<ul>', '<li>a</li>', '<li><em>b</em></li>', '</ul>', '</li>', '</ol>',
      '<blockquote>', '<p>quoted</p>', '</blockquote>', '<hr>', '',
    ].join('\n'));
  });

  it('line breaks: only where asked (the chat view)', () => {
    assert.equal(renderMarkdown('a\nb'), '<p>a\nb</p>\n');
    assert.equal(renderMarkdown('a\nb', { breaks: true }), '<p>a<br>\nb</p>\n');
  });

  it('keeps one instance per set of options', () => {
    assert.notEqual(createMarkdown(), createMarkdown());
    assert.equal(renderMarkdown('x', { breaks: true }), renderMarkdown('x', { breaks: true }));
  });
});

describe('the portal\'s bundle (static/assets/vendor/markdown.js)', () => {
  const bundle = new URL('../static/assets/vendor/markdown.js', import.meta.url);
  it('renders as the source does', async () => {
    assert.ok(existsSync(bundle), 'run scripts/build-web.sh first: it builds the bundle');
    const built = await import(bundle.href);
    const text = '# T\n\n[x](javascript:alert(1)) [y](https://e.example)\n\n```mermaid\nflowchart LR\n```\n\n| a |\n|--:|\n| 1 |\n';
    assert.equal(built.renderMarkdown(text, portal), renderMarkdown(text, portal));
    assert.equal(built.MERMAID_SELECTOR, MERMAID_SELECTOR);
  });
});
