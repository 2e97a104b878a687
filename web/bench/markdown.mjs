// The portal's Markdown renderer on hostile and ordinary READMEs, for
// `make bench` (cmd/bench runs it): one `name<TAB>ms<TAB>ms<TAB>ratio` line
// per figure, the median of 7 renders after a warm-up, the ratio against
// plain markdown-it (the library alone) in the same run.
import MarkdownIt from 'markdown-it';
import { readFileSync } from 'node:fs';
import { renderMarkdown } from '../src/markdown.js';

const plain = new MarkdownIt();
const portal = { headingOffset: 2, headingIds: true, newTab: true };
const readme = readFileSync(new URL('../../internal/playbook/testdata/phishing/README.md', import.meta.url), 'utf8');

function median(/** @type {() => void} */ f) {
  f();
  const times = [];
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[3];
}

for (const [name, text] of [
  ['markdown_brackets_100k_ms', '['.repeat(100_000)],
  ['markdown_brackets_closed_100k_ms', '['.repeat(99_999) + ']'],
  ['markdown_emphasis_100k_ms', '*a'.repeat(50_000)],
  ['markdown_readme_x100_ms', Array(100).fill(readme).join('\n\n')],
]) {
  const ours = median(() => renderMarkdown(text, portal));
  const base = median(() => plain.render(text));
  process.stdout.write(`${name}\t${ours.toFixed(1)}\tms\t${(ours / base).toFixed(2)}\n`);
}
