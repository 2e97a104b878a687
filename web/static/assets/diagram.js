// @ts-check
// Mermaid diagrams, drawn without loosening the portal's CSP: a hidden
// same-origin frame (/render/mermaid, with a policy of its own) lays the
// diagram out with mermaid (securityLevel "strict"), and the portal shows
// the SVG it returns as an <img> from a data: URL: no script in it can run,
// and its styles stay inside the image.

import { el } from './core.js';

let frame = null;
let ready = null;

function renderer() {
  if (ready) return ready;
  ready = new Promise((resolve, reject) => {
    frame = document.createElement('iframe');
    frame.src = '/render/mermaid';
    frame.title = 'Diagram renderer';
    frame.className = 'renderer-frame';
    frame.tabIndex = -1;
    frame.setAttribute('aria-hidden', 'true');
    const timer = setTimeout(() => reject(new Error('The diagram renderer did not load.')), 20000);
    const check = () => {
      try {
        const w = frame.contentWindow;
        if (w && typeof w.renderMermaid === 'function') {
          clearTimeout(timer);
          resolve(w);
          return true;
        }
      } catch (_) {
        // not our document (the frame was refused): the timer reports it
      }
      return false;
    };
    frame.addEventListener('load', () => {
      if (check()) return;
      try {
        frame.contentWindow.addEventListener('renderer-ready', check, { once: true });
      } catch (_) {
        clearTimeout(timer);
        reject(new Error('The diagram renderer could not be loaded.'));
      }
    });
    document.body.append(frame);
  });
  ready.catch(() => { ready = null; frame?.remove(); frame = null; });
  return ready;
}

/** Renders Mermaid source to {svg, width, height}. */
export async function renderMermaid(source) {
  const w = await renderer();
  return w.renderMermaid(source);
}

/**
 * A figure that shows the diagram once drawn, and its source on request.
 * It shows the source itself when the diagram cannot be drawn.
 */
export function diagramFigure(source, label = 'Flow diagram') {
  const status = el('p', { class: 'muted small diagram-status', role: 'status' }, 'Drawing the diagram…');
  const canvas = el('div', { class: 'diagram-canvas', 'data-testid': 'diagram' }, status);
  const src = el('pre', { class: 'md-code', tabindex: '0' }, el('code', null, source));
  const details = el('details', { class: 'diagram-source' }, el('summary', null, 'Mermaid source'), src);
  const fig = el('figure', { class: 'diagram' }, canvas, details);

  renderMermaid(source).then(({ svg, width, height }) => {
    const img = el('img', {
      class: 'diagram-img',
      alt: `${label}. Its Mermaid source follows.`,
      'data-testid': 'diagram-img',
    });
    if (width && height) {
      img.width = width;
      img.height = height;
    }
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
    canvas.replaceChildren(img);
  }).catch((err) => {
    const msg = err && err.message ? String(err.message).split('\n')[0] : 'unknown error';
    status.textContent = `The diagram could not be drawn (${msg}). Its source is below.`;
    status.classList.add('diagram-error');
    details.open = true;
  });
  return fig;
}
