// Bundles the portal's two ES modules under static/assets/vendor/, which
// the gateway embeds: mermaid (and everything it imports), and the Markdown
// renderer (src/markdown.js with markdown-it; the agent extension bundles
// the same file). Run by scripts/build-web.sh.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// elkjs (1.5 MB, the optional "elk" layout) is left out: a diagram asking
// for it gets an error and the portal shows its source instead. Flowcharts
// use the default dagre layout.
const noElk = {
  name: 'no-elk',
  setup(b) {
    b.onResolve({ filter: /^elkjs(\/|$)/ }, (args) => ({ path: args.path, namespace: 'no-elk' }));
    b.onLoad({ filter: /.*/, namespace: 'no-elk' }, () => ({
      contents: 'export default class ELK { layout() { return Promise.reject(new Error("The elk layout is not available here; remove it to use the default layout.")); } }',
      loader: 'js',
    }));
  },
};

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, 'static', 'assets', 'vendor');
mkdirSync(outdir, { recursive: true });

/** @type {import('esbuild').BuildOptions} */
const common = {
  outdir,
  bundle: true,
  format: 'esm',
  minify: true,
  target: ['es2022'],
  legalComments: 'eof',
  logLevel: 'warning',
};

await build({
  ...common,
  entryPoints: { markdown: join(here, 'src', 'markdown.js') },
});

await build({
  ...common,
  entryPoints: { mermaid: join(here, 'src', 'mermaid-entry.js') },
  splitting: false, // one file: dynamic imports of diagram types are inlined
  plugins: [noElk],
  define: { 'process.env.NODE_ENV': '"production"' },
});
