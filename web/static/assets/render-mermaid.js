// @ts-check
// The diagram renderer: runs in a hidden same-origin frame of the portal
// (/render/mermaid, whose CSP allows the inline styles mermaid writes into
// its SVG). The portal calls window.renderMermaid(source) and shows the SVG
// it gets back as an image, where no script can run.

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif';

// The mermaid bundle (built by scripts/build-web.sh). A string variable,
// so that tsc does not look for the module.
const MERMAID_URL = '/assets/vendor/mermaid.js';

/** @type {Promise<import('mermaid').Mermaid> | null} */
let loading = null;
function load() {
  if (!loading) {
    loading = import(MERMAID_URL).then((m) => {
      const mermaid = m.default;
      mermaid.initialize({
        startOnLoad: false,
        securityLevel: 'strict', // labels are sanitised, no click handlers
        layout: 'dagre', // the bundle leaves the (1.5 MB) elk layout out
        theme: 'neutral',
        fontFamily: FONT,
        htmlLabels: false, // plain SVG text: the image has no HTML layout
        flowchart: { htmlLabels: false, useMaxWidth: false },
        logLevel: 'fatal',
      });
      return mermaid;
    });
  }
  return loading;
}

// Gives the SVG a fixed width and height from its viewBox, so it has an
// intrinsic size as an image.
function sized(svgText) {
  const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
  const svg = doc.documentElement;
  if (!svg || svg.nodeName !== 'svg') return { svg: svgText, width: 0, height: 0 };
  const vb = (svg.getAttribute('viewBox') || '').split(/[\s,]+/).map(Number);
  let width = 0;
  let height = 0;
  if (vb.length === 4 && vb.every(Number.isFinite)) {
    width = Math.ceil(vb[2]);
    height = Math.ceil(vb[3]);
    svg.setAttribute('width', String(width));
    svg.setAttribute('height', String(height));
    svg.removeAttribute('style'); // max-width from mermaid; the page sizes the image
  }
  return { svg: new XMLSerializer().serializeToString(svg), width, height };
}

let n = 0;
window.renderMermaid = async (source) => {
  const mermaid = await load();
  const id = 'pbs-diagram-' + ++n;
  try {
    const { svg } = await mermaid.render(id, String(source));
    return sized(svg);
  } finally {
    // mermaid leaves its scratch element behind when a diagram fails
    document.getElementById('d' + id)?.remove();
    document.getElementById(id)?.remove();
  }
};
window.dispatchEvent(new Event('renderer-ready'));
document.documentElement.dataset.ready = 'true';
