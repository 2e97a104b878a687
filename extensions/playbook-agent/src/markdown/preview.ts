// The Markdown preview script (markdown.previewScripts) and the chat view's
// diagram renderer: mermaid bundled by esbuild, no remote resources.
// In the preview it draws every <pre class="mermaid"> on load and after
// each update; the chat view calls window.playbookMermaid.render().
import mermaid from 'mermaid';

declare global {
  interface Window {
    playbookMermaid?: {
      render(source: string): Promise<string>;
      renderAll(root?: ParentNode): Promise<void>;
    };
  }
}

let counter = 0;
let configuredTheme = '';

function theme(): 'dark' | 'default' {
  const cls = document.body?.classList;
  return cls && (cls.contains('vscode-dark') || cls.contains('vscode-high-contrast')) && !cls.contains('vscode-high-contrast-light')
    ? 'dark' : 'default';
}

function configure(): void {
  const t = theme();
  if (t === configuredTheme) return;
  configuredTheme = t;
  mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: t, flowchart: { htmlLabels: false } });
}

async function render(source: string): Promise<string> {
  configure();
  const id = `pbs-mermaid-${Date.now().toString(36)}-${counter++}`;
  const { svg } = await mermaid.render(id, source);
  return svg;
}

async function renderAll(root: ParentNode = document): Promise<void> {
  configure();
  const nodes = Array.from(root.querySelectorAll<HTMLElement>('pre.mermaid:not([data-processed])'));
  for (const node of nodes) {
    const source = node.textContent ?? '';
    node.setAttribute('data-processed', 'true');
    try {
      const svg = await render(source);
      node.innerHTML = svg;
      node.classList.add('mermaid-drawn');
    } catch (err) {
      node.classList.add('mermaid-error');
      const note = document.createElement('div');
      note.className = 'mermaid-error-message';
      note.textContent = `This diagram could not be drawn: ${err instanceof Error ? err.message : String(err)}`;
      node.textContent = source;
      node.appendChild(note);
    }
  }
}

window.playbookMermaid = { render, renderAll };
window.dispatchEvent(new Event('playbook-mermaid-ready'));

// In the Markdown preview: draw now, and again whenever the preview updates.
if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', () => void renderAll());
} else {
  void renderAll();
}
window.addEventListener('vscode.markdown.updateContent', () => void renderAll());
