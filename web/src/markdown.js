// @ts-check
// Playbook Studio's one Markdown dialect, shared by the portal (bundled by
// web/build.mjs into static/assets/vendor/markdown.js), the agent's chat
// view and VS Code's Markdown preview (bundled by the extension's build).
//
// It is markdown-it with:
// - html: false: raw HTML in the text is shown as text, never as markup;
// - a link allowlist: http:, https:, mailto: and relative or #fragment links.
//   Anything else (javascript:, data:, vbscript:, file:, …) is not a link:
//   markdown-it then shows the Markdown as plain text;
// - rel="noopener noreferrer" on every link (and target=_blank on absolute
//   links where the host asks for it);
// - ```mermaid fences as a placeholder, <pre class="mermaid">source</pre>,
//   which each host draws its own way (the portal in its sandboxed renderer
//   frame, the chat view and the preview with their mermaid bundle).
import MarkdownIt from 'markdown-it';

/** @typedef {import('markdown-it').MarkdownIt} Md */
/** @typedef {import('markdown-it').Token} Token */
/** @typedef {import('markdown-it').RendererRule} RendererRule */

/**
 * @typedef {object} MarkdownOptions
 * @property {number} [headingOffset] added to heading levels (2: a README's # becomes h3)
 * @property {boolean} [headingIds] give headings an id ("md-" and a slug of the text), for #fragment links
 * @property {boolean} [newTab] absolute links open in a new tab (target=_blank)
 * @property {boolean} [breaks] a single newline in a paragraph is a line break
 */

/** Where a placeholder for a diagram is, in the rendered HTML. */
export const MERMAID_SELECTOR = 'pre.mermaid';

const ALLOWED_SCHEMES = new Set(['http', 'https', 'mailto']);
const SCHEME = /^([a-z][a-z0-9+.-]*):/i;

// What a browser ignores in a URL before it reads the scheme: leading
// controls and spaces, and tabs and newlines anywhere ("java\tscript:").
function browserView(/** @type {string} */ url) {
  return String(url).replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+/, '');
}

/**
 * Whether a link target may become a link: http:, https:, mailto:, or no
 * scheme at all (a relative path, a #fragment, a //host URL).
 * @param {string} url
 */
export function isAllowedLink(url) {
  const allowed = (/** @type {string} */ u) => {
    const m = SCHEME.exec(browserView(u));
    return m ? ALLOWED_SCHEMES.has(m[1].toLowerCase()) : true;
  };
  // markdown-it percent-encodes what it validates ("java%09script:"); a
  // browser reads that as a relative path, but such a link is refused too.
  let decoded = url;
  try {
    decoded = decodeURIComponent(url);
  } catch {
    // not valid percent-encoding: the URL as it is decides
  }
  return allowed(url) && allowed(decoded);
}

/** Whether an (allowed) link leaves the page: it has a scheme or a host. */
function isAbsolute(/** @type {string} */ url) {
  const u = browserView(url);
  return SCHEME.test(u) || u.startsWith('//');
}

/** @param {string} info a fence's info string */
function isMermaid(info) {
  return info.trim().split(/\s+/)[0].toLowerCase() === 'mermaid';
}

/** A token's attribute as a string ('' when missing). */
function attr(/** @type {Token} */ t, /** @type {string} */ name) {
  return String(t.attrGet(name) ?? '');
}

function slug(/** @type {string} */ text) {
  return 'md-' + text.toLowerCase().trim().replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-+|-+$/g, '');
}

/**
 * The dialect as a markdown-it plugin: createMarkdown() uses it, and the
 * extension applies it to VS Code's own markdown-it for the Markdown
 * preview, so the preview shows what the portal will show.
 * @param {Md} md
 * @param {MarkdownOptions} [options]
 * @returns {Md}
 */
export function playbookMarkdown(md, options = {}) {
  // maxNesting also bounds how far markdown-it's link rule looks into
  // nested brackets from each "[" (its default, 100, made "[[[…]" cost a
  // hundred steps per character); 20 levels are more than a README nests.
  md.set({ html: false, maxNesting: 20 });
  md.validateLink = isAllowedLink;
  md.inline.ruler.before('link', 'pbs_unclosed_bracket', unclosedBracket);

  const offset = options.headingOffset || 0;
  if (offset || options.headingIds) {
    md.core.ruler.push('pbs_headings', (state) => {
      const used = new Set();
      const tokens = state.tokens;
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i];
        if (t.type !== 'heading_open' && t.type !== 'heading_close') continue;
        t.tag = 'h' + Math.min(6, Number(t.tag.slice(1)) + offset);
        if (options.headingIds && t.type === 'heading_open') {
          const text = (tokens[i + 1].children || []).map((c) => c.content).join('');
          const base = slug(text);
          let id = base;
          for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
          used.add(id);
          t.attrSet('id', id);
        }
      }
    });
  }

  const linkOpen = md.renderer.rules.link_open;
  md.renderer.rules.link_open = (tokens, idx, opts, env, self) => {
    const t = tokens[idx];
    t.attrSet('rel', 'noopener noreferrer');
    if (options.newTab && isAbsolute(attr(t, 'href'))) t.attrSet('target', '_blank');
    return linkOpen ? linkOpen(tokens, idx, opts, env, self) : self.renderToken(tokens, idx, opts);
  };

  const fence = md.renderer.rules.fence;
  md.renderer.rules.fence = (tokens, idx, opts, env, self) => {
    const t = tokens[idx];
    if (isMermaid(t.info)) {
      // code-line and data-line keep the preview's scroll in step with the editor.
      const line = t.map ? ` data-line="${t.map[0]}"` : '';
      return `<pre class="mermaid code-line"${line}>${md.utils.escapeHtml(t.content)}</pre>\n`;
    }
    return fence ? fence(tokens, idx, opts, env, self) : self.renderToken(tokens, idx, opts);
  };
  return md;
}

/**
 * An inline rule that takes a "[" or "![" with no "]" after it as text at
 * once. markdown-it's link and image rules look for the closing bracket
 * from every opening one, and with none to find they walk the rest of the
 * text each time: a README of 100,000 "[" took 200 ms. The first "]" at or
 * after a position is remembered per inline state, so finding it costs one
 * pass over the text in all.
 * @param {any} state markdown-it's StateInline
 * @param {boolean} silent
 */
function unclosedBracket(state, silent) {
  const src = state.src;
  let pos = state.pos;
  const bang = src.charCodeAt(pos) === 0x21 /* ! */;
  if (bang) pos++;
  if (src.charCodeAt(pos) !== 0x5b /* [ */) return false;
  let close = state.pbsClose;
  if (close === undefined || (close !== -1 && close < pos)) {
    close = src.indexOf(']', pos);
    state.pbsClose = close;
  }
  if (close !== -1 && close < state.posMax) return false;
  if (!silent) state.pending += src.slice(state.pos, pos + 1);
  state.pos = pos + 1;
  return true;
}

/**
 * A markdown-it instance for text shown in the portal and the chat view.
 * Besides the dialect: bare http(s) URLs become links; table alignment is a
 * class (align-left|center|right), as the portal's CSP allows no style
 * attributes; tables sit in a scrolling div.md-table-wrap; images are shown
 * as links to them, since nothing is loaded from elsewhere.
 * @param {MarkdownOptions} [options]
 * @returns {Md}
 */
export function createMarkdown(options = {}) {
  const md = new MarkdownIt({ html: false, linkify: true, breaks: !!options.breaks });
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: false }); // "example.com" stays text
  md.use(playbookMarkdown, options);

  md.core.ruler.push('pbs_align', (state) => {
    for (const t of state.tokens) {
      if (t.type !== 'th_open' && t.type !== 'td_open') continue;
      const m = /^text-align:(left|center|right)$/.exec(attr(t, 'style'));
      t.attrs = t.attrs && t.attrs.filter(([name]) => name !== 'style');
      if (m) t.attrSet('class', 'align-' + m[1]);
    }
  });
  md.renderer.rules.table_open = () => '<div class="md-table-wrap"><table>\n';
  md.renderer.rules.table_close = () => '</table></div>\n';

  const esc = md.utils.escapeHtml;
  md.renderer.rules.image = (tokens, idx, opts, env, self) => {
    const t = tokens[idx];
    const alt = self.renderInlineAsText(t.children || [], opts, env) || 'image';
    const src = attr(t, 'src'); // already checked by validateLink
    const title = attr(t, 'title') || `Image: ${alt}`;
    const target = options.newTab && isAbsolute(src) ? ' target="_blank"' : '';
    return `<a href="${esc(src)}" title="${esc(title)}" rel="noopener noreferrer"${target}>🖼 ${esc(alt)}</a>`;
  };
  return md;
}

/** @type {Map<string, Md>} */
const instances = new Map();

/**
 * Renders Markdown to HTML (safe to parse into a page: see the top of this file).
 * @param {string} text
 * @param {MarkdownOptions} [options]
 * @returns {string}
 */
export function renderMarkdown(text, options = {}) {
  const key = JSON.stringify([options.headingOffset || 0, !!options.headingIds, !!options.newTab, !!options.breaks]);
  let md = instances.get(key);
  if (!md) {
    md = createMarkdown(options);
    instances.set(key, md);
  }
  return md.render(String(text ?? ''));
}
