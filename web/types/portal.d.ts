// What the portal's pages put on window (type-checking only; not served).

/** A diagram laid out by the renderer frame (render-mermaid.js). */
interface RenderedDiagram {
  svg: string;
  width: number;
  height: number;
}

interface Window {
  /** Set by the diagram renderer frame (render-mermaid.js); diagram.js calls it. */
  renderMermaid?: (source: string) => Promise<RenderedDiagram>;
}
