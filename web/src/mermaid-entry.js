// The one npm dependency the portal ships: mermaid, bundled by esbuild into
// static/assets/vendor/mermaid.js (see build.mjs). Only the diagram
// renderer frame (static/render-mermaid.html) loads it.
import mermaid from 'mermaid';

export default mermaid;
