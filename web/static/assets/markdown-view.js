// @ts-check
// The portal's side of the one Markdown renderer (web/src/markdown.js,
// bundled with markdown-it into vendor/markdown.js by scripts/build-web.sh).

/** @typedef {typeof import('../../src/markdown.js')} Renderer */
/** @typedef {import('../../src/markdown.js').MarkdownOptions} MarkdownOptions */

/**
 * How the portal shows a playbook's README: its # is an h3 under the page's
 * h1 and h2, headings have ids for #links, absolute links open in a new tab.
 * @type {Readonly<MarkdownOptions>}
 */
export const README_OPTIONS = Object.freeze({ headingOffset: 2, headingIds: true, newTab: true });

// Imported when first needed rather than statically: before the first web
// build (vendor/ is empty) the rest of the portal still loads, and a README
// shows as plain text. A string variable, so that tsc does not look for it.
const RENDERER_URL = new URL('./vendor/markdown.js', import.meta.url).href;

/** @type {Promise<Renderer> | null} */
let loading = null;

/** The renderer module; a failed load is tried again on the next call. */
export function loadRenderer() {
  if (!loading) {
    loading = import(RENDERER_URL);
    loading.catch(() => { loading = null; });
  }
  return loading;
}

/**
 * Parses the renderer's HTML into nodes. It is parsed in an inert document
 * (nothing in it runs or loads), and the renderer only writes markup of its
 * own (raw HTML in the text is escaped, links are allowed ones). Each
 * diagram placeholder is replaced by diagram(source); code blocks get the
 * portal's look and can be scrolled with the keyboard.
 * @param {string} html
 * @param {string} mermaidSelector the placeholders (the renderer's MERMAID_SELECTOR)
 * @param {(source: string) => Node} diagram
 * @returns {DocumentFragment}
 */
export function markdownFragment(html, mermaidSelector, diagram) {
  const body = new DOMParser().parseFromString(html, 'text/html').body;
  for (const pre of body.querySelectorAll('pre')) {
    if (pre.matches(mermaidSelector)) {
      pre.replaceWith(diagram(pre.textContent || ''));
    } else {
      pre.classList.add('md-code');
      pre.tabIndex = 0;
    }
  }
  const frag = document.createDocumentFragment();
  frag.append(...body.childNodes);
  return frag;
}
