// The renderer's work grows linearly with its input, counted in parser
// steps rather than timed (the machines are noisy): a README of 100,000 "["
// once took 200 ms, markdown-it's link rule looking for a closing bracket
// from each opening one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMarkdown, renderMarkdown } from '../src/markdown.js';

/** Parser steps (inline rule calls and token skips) to render text. */
function steps(/** @type {string} */ text) {
  const md = createMarkdown({ headingOffset: 2, headingIds: true, newTab: true });
  let n = 0;
  const skip = md.inline.skipToken.bind(md.inline);
  md.inline.skipToken = (/** @type {any} */ state) => { n++; return skip(state); };
  const rules = md.inline.ruler.getRules('').map((fn) => (/** @type {any} */ s, /** @type {boolean} */ silent) => { n++; return fn(s, silent); });
  // @ts-ignore: the ruler's rule cache, the one place every inline rule is called from
  md.inline.ruler.__cache__ = { '': rules };
  md.render(text);
  return n;
}

const shapes = {
  'unclosed [': (/** @type {number} */ n) => '['.repeat(n),
  'unclosed ![': (/** @type {number} */ n) => '!['.repeat(n / 2),
  'unclosed [x': (/** @type {number} */ n) => '[x'.repeat(n / 2),
  '[ closed at the end': (/** @type {number} */ n) => '['.repeat(n - 1) + ']',
  '] then [': (/** @type {number} */ n) => ']' + '['.repeat(n - 1),
  'emphasis *a': (/** @type {number} */ n) => '*a'.repeat(n / 2),
  'links': (/** @type {number} */ n) => '[a](b) '.repeat(n / 7),
  'backticks': (/** @type {number} */ n) => '`'.repeat(n),
  'angle brackets': (/** @type {number} */ n) => '<'.repeat(n),
};

describe('the renderer on hostile READMEs', () => {
  for (const [name, make] of Object.entries(shapes)) {
    it(`${name}: a bounded number of steps per character, and twice the text twice the steps`, () => {
      const a = steps(make(2000));
      const b = steps(make(4000));
      assert.ok(a / 2000 <= 50, `${a} steps for 2,000 characters`);
      assert.ok(b <= 2.2 * a + 100, `2,000 characters: ${a} steps, 4,000: ${b}`);
    });
  }

  it('takes an unclosed bracket as text at once', () => {
    assert.ok(steps('['.repeat(4000)) <= 10 * 4000);
    assert.equal(renderMarkdown('[['.repeat(3) + 'a'), '<p>[[[[[[a</p>\n');
    assert.equal(renderMarkdown('![x'), '<p>![x</p>\n');
    assert.equal(renderMarkdown('[[a]](b)'), '<p><a href="b" rel="noopener noreferrer">[a]</a></p>\n');
    assert.match(renderMarkdown('[a [b] c](https://x.test) ['), /<a href="https:\/\/x.test" rel="noopener noreferrer">a \[b\] c<\/a> \[/);
    assert.match(renderMarkdown('![alt](https://x.test/i.png) !['), /🖼 alt<\/a> !\[/);
  });
});
