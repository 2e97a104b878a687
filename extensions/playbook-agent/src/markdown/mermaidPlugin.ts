// A markdown-it plugin for VS Code's Markdown preview: a ```mermaid fence
// becomes <pre class="mermaid">…</pre>, which the preview script
// (preview.ts, bundling mermaid) draws as a diagram. Other fences are left
// to the renderer that was there before. No vscode import.

// Only the parts of markdown-it this plugin touches (the extension does not bundle markdown-it).
interface FenceToken {
  info: string;
  content: string;
  map?: [number, number] | null;
}
type Rule = (tokens: FenceToken[], idx: number, options: unknown, env: unknown, self: unknown) => string;
export interface MarkdownItLike {
  renderer: { rules: { fence?: Rule } };
  utils?: { escapeHtml?: (s: string) => string };
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function isMermaidInfo(info: string): boolean {
  return info.trim().split(/\s+/)[0]?.toLowerCase() === 'mermaid';
}

export function mermaidPlugin<T extends MarkdownItLike>(md: T): T {
  const previous = md.renderer.rules.fence;
  md.renderer.rules.fence = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    if (isMermaidInfo(token.info)) {
      // data-line keeps the preview's scroll sync with the editor.
      const line = token.map ? ` data-line="${token.map[0]}"` : '';
      return `<pre class="mermaid code-line"${line}>${escapeHtml(token.content)}</pre>\n`;
    }
    if (previous) return previous(tokens, idx, options, env, self);
    return `<pre><code>${escapeHtml(token.content)}</code></pre>\n`;
  };
  return md;
}
