// A small, safe Markdown renderer: it builds DOM nodes (never HTML strings),
// so nothing in the text can become markup. It covers what playbook READMEs
// use: headings, paragraphs, emphasis, code spans and fenced code, lists
// (nested), block quotes, rules, GFM tables, links and autolinks. Raw HTML
// in the text is shown as text. Links go only to http(s) and mailto URLs
// (and #anchors); images are shown as links, since the portal loads no
// images from elsewhere. Fenced ```mermaid blocks are handed to
// opts.diagram(source), which returns a node.

const FENCE = /^( {0,3})(`{3,}|~{3,})[ \t]*([^`]*?)[ \t]*$/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+(.*))?$/;
const TABLE_DELIM = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;

function h(tag, cls, ...children) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

export function safeHref(raw) {
  const href = String(raw || '').trim();
  if (href.startsWith('#')) return href;
  try {
    const u = new URL(href);
    if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:') return u.href;
  } catch (_) {
    // relative or invalid: not a link here
  }
  return null;
}

function slug(text) {
  return 'md-' + String(text).toLowerCase().trim().replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-+|-+$/g, '');
}

// ---------------------------------------------------------------------------
// Inline

const ESCAPABLE = /[\\`*_{}\[\]()#+\-.!|~<>"'$&%=:;,?@^]/;

function findClosing(text, from, delim) {
  // The next run of exactly delim not preceded by whitespace.
  let i = from;
  while (i < text.length) {
    const j = text.indexOf(delim, i);
    if (j < 0) return -1;
    if (j > from && !/\s/.test(text[j - 1]) && text[j - 1] !== '\\') {
      if (delim.length === 1 && text[j + 1] === delim) { i = j + 2; continue; }
      return j;
    }
    i = j + delim.length;
  }
  return -1;
}

function parseLinkTarget(text, open) {
  // text[open] === '('; returns {href, title, end} or null.
  let i = open + 1;
  while (text[i] === ' ') i++;
  let href = '';
  if (text[i] === '<') {
    const close = text.indexOf('>', i);
    if (close < 0) return null;
    href = text.slice(i + 1, close);
    i = close + 1;
  } else {
    let depth = 0;
    const start = i;
    while (i < text.length) {
      const c = text[i];
      if (c === '\\') { i += 2; continue; }
      if (c === '(') depth++;
      else if (c === ')') { if (depth === 0) break; depth--; } else if (c === ' ') break;
      i++;
    }
    href = text.slice(start, i);
  }
  while (text[i] === ' ') i++;
  let title = '';
  if (text[i] === '"' || text[i] === "'") {
    const q = text[i];
    const close = text.indexOf(q, i + 1);
    if (close < 0) return null;
    title = text.slice(i + 1, close);
    i = close + 1;
    while (text[i] === ' ') i++;
  }
  if (text[i] !== ')') return null;
  return { href, title, end: i + 1 };
}

function findBracketEnd(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') { i++; continue; }
    if (c === '`') {
      const close = text.indexOf('`', i + 1);
      if (close > 0) { i = close; continue; }
    }
    if (c === '[') depth++;
    else if (c === ']') { depth--; if (depth === 0) return i; }
  }
  return -1;
}

function linkNode(href, children, title) {
  const safe = safeHref(href);
  if (!safe) {
    const span = h('span', 'md-link-text');
    span.append(...children);
    if (href) span.title = String(href);
    return span;
  }
  const a = h('a');
  a.href = safe;
  if (!safe.startsWith('#')) {
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
  }
  if (title) a.title = title;
  a.append(...children);
  return a;
}

const BARE_URL = /^(https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]])/;

/** Inline Markdown to an array of nodes. */
export function inline(text) {
  const out = [];
  let buf = '';
  const flush = () => {
    if (buf) out.push(document.createTextNode(buf));
    buf = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);

    if (c === '\\' && i + 1 < text.length) {
      if (text[i + 1] === '\n') { flush(); out.push(h('br')); i += 2; continue; }
      if (ESCAPABLE.test(text[i + 1])) { buf += text[i + 1]; i += 2; continue; }
    }
    if (c === '\n') {
      if (/ {2,}$/.test(buf)) { buf = buf.replace(/ +$/, ''); flush(); out.push(h('br')); } else buf += '\n';
      i++;
      continue;
    }
    if (c === '`') {
      const run = /^`+/.exec(rest)[0];
      const close = text.indexOf(run, i + run.length);
      if (close > 0) {
        flush();
        let code = text.slice(i + run.length, close).replace(/\n/g, ' ');
        if (/^ .* $/.test(code) && code.trim()) code = code.slice(1, -1);
        out.push(h('code', null, code));
        i = close + run.length;
        continue;
      }
      buf += run;
      i += run.length;
      continue;
    }
    if (c === '<') {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(rest);
      if (m) { flush(); out.push(linkNode(m[1], [m[1].replace(/^mailto:/i, '')])); i += m[0].length; continue; }
    }
    if ((c === 'h' || c === 'H') && (i === 0 || /[\s(]/.test(text[i - 1]))) {
      const m = BARE_URL.exec(rest);
      if (m) { flush(); out.push(linkNode(m[1], [m[1]])); i += m[1].length; continue; }
    }
    if (c === '!' && text[i + 1] === '[') {
      const end = findBracketEnd(text, i + 1);
      if (end > 0 && text[end + 1] === '(') {
        const t = parseLinkTarget(text, end + 1);
        if (t) {
          flush();
          const alt = text.slice(i + 2, end) || 'image';
          out.push(linkNode(t.href, [`🖼 ${alt}`], t.title || `Image: ${alt}`));
          i = t.end;
          continue;
        }
      }
    }
    if (c === '[') {
      const end = findBracketEnd(text, i);
      if (end > 0 && text[end + 1] === '(') {
        const t = parseLinkTarget(text, end + 1);
        if (t) {
          flush();
          out.push(linkNode(t.href, inline(text.slice(i + 1, end)), t.title));
          i = t.end;
          continue;
        }
      }
    }
    if (c === '*' || c === '_' || c === '~') {
      const double = text[i + 1] === c;
      const delim = double ? c + c : c;
      const after = text[i + delim.length];
      const before = i > 0 ? text[i - 1] : ' ';
      const intraword = c === '_' && /[\p{L}\p{N}]/u.test(before);
      if (after && !/\s/.test(after) && !intraword && (c !== '~' || double)) {
        const close = findClosing(text, i + delim.length, delim);
        const closeAfter = close >= 0 ? text[close + delim.length] : '';
        if (close > i + delim.length - 1 && !(c === '_' && closeAfter && /[\p{L}\p{N}]/u.test(closeAfter))) {
          flush();
          const inner = inline(text.slice(i + delim.length, close));
          const tag = c === '~' ? 'del' : double ? 'strong' : 'em';
          out.push(h(tag, null, ...inner));
          i = close + delim.length;
          continue;
        }
      }
      buf += delim;
      i += delim.length;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------
// Blocks

function isBlank(line) {
  return /^[ \t]*$/.test(line);
}

function startsBlock(line) {
  return FENCE.test(line) || ATX.test(line) || HR.test(line) || QUOTE.test(line) || LIST.test(line);
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') { cur += '|'; i++; continue; }
    if (s[i] === '`') {
      const close = s.indexOf('`', i + 1);
      if (close > 0) { cur += s.slice(i, close + 1); i = close; continue; }
    }
    if (s[i] === '|') { cells.push(cur.trim()); cur = ''; continue; }
    cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function renderTable(header, delim, rows) {
  const aligns = splitRow(delim).map((d) => {
    const l = d.startsWith(':');
    const r = d.endsWith(':');
    return l && r ? 'center' : r ? 'right' : l ? 'left' : '';
  });
  const table = h('table', 'md-table');
  const thead = h('thead');
  const tr = h('tr');
  const heads = splitRow(header);
  heads.forEach((cell, i) => {
    const th = h('th', aligns[i] ? 'align-' + aligns[i] : null, ...inline(cell));
    th.scope = 'col';
    tr.append(th);
  });
  thead.append(tr);
  table.append(thead);
  const tbody = h('tbody');
  for (const row of rows) {
    const r = h('tr');
    const cells = splitRow(row);
    for (let i = 0; i < heads.length; i++) {
      r.append(h('td', aligns[i] ? 'align-' + aligns[i] : null, ...inline(cells[i] || '')));
    }
    tbody.append(r);
  }
  table.append(tbody);
  return h('div', 'md-table-wrap', table);
}

function codeBlock(code, lang) {
  const pre = h('pre', 'md-code');
  const c = h('code', null, code);
  if (lang) c.dataset.lang = lang;
  pre.append(c);
  pre.tabIndex = 0; // scrollable regions must be reachable by keyboard
  return pre;
}

function blocks(lines, ctx, depth) {
  const frag = document.createDocumentFragment();
  let i = 0;
  let para = [];
  const endPara = () => {
    if (para.length) {
      frag.append(h('p', null, ...inline(para.join('\n').trim())));
      para = [];
    }
  };

  while (i < lines.length) {
    const line = lines[i];

    if (isBlank(line)) { endPara(); i++; continue; }

    let m = FENCE.exec(line);
    if (m) {
      endPara();
      const indent = m[1].length;
      const fence = m[2];
      const lang = (m[3] || '').split(/\s+/)[0].toLowerCase();
      const body = [];
      i++;
      while (i < lines.length) {
        const close = new RegExp('^ {0,3}' + (fence[0] === '`' ? '`' : '~') + '{' + fence.length + ',}[ \\t]*$');
        if (close.test(lines[i])) { i++; break; }
        body.push(lines[i].replace(new RegExp('^ {0,' + indent + '}'), ''));
        i++;
      }
      const src = body.join('\n');
      if (lang === 'mermaid' && ctx.diagram) frag.append(ctx.diagram(src));
      else frag.append(codeBlock(src, lang));
      continue;
    }

    m = ATX.exec(line);
    if (m) {
      endPara();
      const level = Math.min(6, m[1].length + ctx.headingOffset);
      const text = (m[2] || '').trim();
      const hd = h('h' + level, 'md-h', ...inline(text));
      hd.id = ctx.uniqueId(slug(text));
      frag.append(hd);
      i++;
      continue;
    }

    if (para.length && SETEXT.test(line)) {
      const level = Math.min(6, (line.trim()[0] === '=' ? 1 : 2) + ctx.headingOffset);
      const text = para.join(' ').trim();
      para = [];
      const hd = h('h' + level, 'md-h', ...inline(text));
      hd.id = ctx.uniqueId(slug(text));
      frag.append(hd);
      i++;
      continue;
    }

    if (HR.test(line)) { endPara(); frag.append(h('hr')); i++; continue; }

    if (QUOTE.test(line)) {
      endPara();
      const body = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = QUOTE.exec(lines[i]);
        body.push(q ? q[1] : lines[i]);
        i++;
      }
      const bq = h('blockquote');
      bq.append(depth < 8 ? blocks(body, ctx, depth + 1) : body.join('\n'));
      frag.append(bq);
      continue;
    }

    m = LIST.exec(line);
    if (m && (para.length === 0 || (m[4] && m[4].trim()))) {
      endPara();
      const ordered = /\d/.test(m[2]);
      const list = h(ordered ? 'ol' : 'ul', 'md-list');
      if (ordered) {
        const start = parseInt(m[2], 10);
        if (start !== 1) list.start = start;
      }
      let loose = false;
      const items = [];
      while (i < lines.length) {
        const lm = LIST.exec(lines[i]);
        if (!lm || /\d/.test(lm[2]) !== ordered) break;
        const content = lm[4] || '';
        const pad = lm[1].length + lm[2].length + Math.min(4, Math.max(1, (lm[3] || ' ').length - content.length));
        const body = [content];
        i++;
        let sawBlank = false;
        while (i < lines.length) {
          const l = lines[i];
          if (isBlank(l)) { sawBlank = true; body.push(''); i++; continue; }
          const ind = /^ */.exec(l)[0].length;
          if (ind >= pad) { if (sawBlank) loose = true; body.push(l.slice(pad)); sawBlank = false; i++; continue; }
          if (!sawBlank && !startsBlock(l)) { body.push(l.trim()); i++; continue; } // lazy continuation
          break;
        }
        while (body.length && isBlank(body[body.length - 1])) body.pop();
        const next = i < lines.length ? LIST.exec(lines[i]) : null;
        if (sawBlank && next && /\d/.test(next[2]) === ordered) loose = true;
        items.push(body);
      }
      for (const body of items) {
        const li = h('li');
        const inner = depth < 8 ? blocks(body, ctx, depth + 1) : document.createTextNode(body.join('\n'));
        if (!loose && inner.childNodes && inner.firstChild && inner.firstChild.nodeName === 'P') {
          // A tight list: the first paragraph's content sits in the item.
          const p = inner.firstChild;
          inner.removeChild(p);
          li.append(...p.childNodes);
        }
        li.append(inner);
        list.append(li);
      }
      frag.append(list);
      continue;
    }

    if (line.includes('|') && i + 1 < lines.length && TABLE_DELIM.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      endPara();
      const header = line;
      const delim = lines[i + 1];
      i += 2;
      const rows = [];
      while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|')) { rows.push(lines[i]); i++; }
      frag.append(renderTable(header, delim, rows));
      continue;
    }

    if (para.length === 0 && /^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || isBlank(lines[i]))) {
        body.push(lines[i].replace(/^( {4}|\t)/, ''));
        i++;
      }
      while (body.length && isBlank(body[body.length - 1])) body.pop();
      frag.append(codeBlock(body.join('\n'), ''));
      continue;
    }

    para.push(line);
    i++;
  }
  endPara();
  return frag;
}

/**
 * Renders Markdown text into a DocumentFragment.
 * opts.headingOffset: added to heading levels (a README's # becomes h3 with 2).
 * opts.diagram(source): a node for a ```mermaid block.
 */
export function renderMarkdown(text, opts = {}) {
  const lines = String(text || '').replace(/\r\n?/g, '\n').replace(/\t/g, '    ').split('\n');
  const used = new Set();
  const ctx = {
    headingOffset: opts.headingOffset || 0,
    diagram: opts.diagram || null,
    uniqueId(base) {
      let id = base || 'md';
      let n = 1;
      while (used.has(id)) id = `${base}-${++n}`;
      used.add(id);
      return id;
    },
  };
  return blocks(lines, ctx, 0);
}
