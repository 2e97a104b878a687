// Bundles mermaid (and everything it imports) into one ES module under
// static/assets/vendor/, which the gateway embeds. Run by scripts/build-web.sh.
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

await build({
  entryPoints: { mermaid: join(here, 'src', 'mermaid-entry.js') },
  outdir,
  bundle: true,
  format: 'esm',
  splitting: false, // one file: dynamic imports of diagram types are inlined
  minify: true,
  target: ['es2022'],
  legalComments: 'eof',
  logLevel: 'warning',
  plugins: [noElk],
  define: { 'process.env.NODE_ENV': '"production"' },
});
