// Builds the browser assets crmsync embeds (go:embed in internal/console)
// into ../assets/dist: GraphiQL with its Monaco workers, and the
// graphql-ws client the console uses. The output is committed; the
// versions are pinned in package-lock.json, and scripts/check-ui.sh
// rebuilds and compares. Builds are deterministic: no timestamps, content
// hashes only.
import * as esbuild from 'esbuild';
import { rmSync } from 'node:fs';

const outdir = new URL('../assets/dist/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });

const common = {
  bundle: true,
  minify: true,
  legalComments: 'eof',
  target: ['es2022'],
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
};

// The page scripts (ES modules).
await esbuild.build({
  ...common,
  entryPoints: { graphiql: 'src/graphiql.jsx', 'graphql-ws': 'src/graphql-ws.js' },
  outdir,
  format: 'esm',
  jsx: 'automatic',
  loader: { '.ttf': 'file', '.woff': 'file', '.woff2': 'file', '.svg': 'dataurl' },
  assetNames: '[name]-[hash]',
});

// Monaco's workers, as classic worker scripts next to graphiql.js.
await esbuild.build({
  ...common,
  entryPoints: {
    'editor.worker': 'monaco-editor/esm/vs/editor/editor.worker.js',
    'json.worker': 'monaco-editor/esm/vs/language/json/json.worker.js',
    'graphql.worker': 'monaco-graphql/esm/graphql.worker.js',
  },
  outdir,
  format: 'iife',
});
