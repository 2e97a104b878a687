// The portal's side of the renderer (static/assets/markdown-view.js): how a
// README is rendered, and the lazily loaded bundle. Parsing into the page
// (markdownFragment) needs a DOM: the browser tests (e2e/) cover it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadRenderer, README_OPTIONS } from '../static/assets/markdown-view.js';
import { renderMarkdown } from '../src/markdown.js';

const README = `# Phishing triage

Checks the sender with \`threat_intel\`, see [the runbook](https://wiki.example/soc) or [below](#md-flow).

## Flow

\`\`\`mermaid
flowchart TD
  A[Alert] --> B{Known sender?}
\`\`\`
`;

describe('a README in the portal', () => {
  const html = renderMarkdown(README, README_OPTIONS);

  it('sits under the page\'s headings, with ids for #links', () => {
    assert.match(html, /^<h3 id="md-phishing-triage">Phishing triage<\/h3>/);
    assert.match(html, /<h4 id="md-flow">Flow<\/h4>/);
  });

  it('opens absolute links in a new tab, #links in the page', () => {
    assert.match(html, /<a href="https:\/\/wiki.example\/soc" rel="noopener noreferrer" target="_blank">the runbook<\/a>/);
    assert.match(html, /<a href="#md-flow" rel="noopener noreferrer">below<\/a>/);
  });

  it('leaves the diagram to diagram.js, as a placeholder', () => {
    assert.match(html, /<pre class="mermaid code-line" data-line="6">flowchart TD\n  A\[Alert\] --&gt; B\{Known sender\?\}\n<\/pre>/);
  });

  it('uses one frozen set of options for every README', () => {
    assert.ok(Object.isFrozen(README_OPTIONS));
  });
});

describe('loadRenderer', () => {
  it('loads the bundle once', async () => {
    const first = loadRenderer();
    assert.equal(loadRenderer(), first);
    const r = await first;
    assert.equal(typeof r.renderMarkdown, 'function');
    assert.equal(r.renderMarkdown(README, README_OPTIONS), renderMarkdown(README, README_OPTIONS));
  });
});
