// Bundle the viewer with esbuild into ../tsne_dist/viz/static/ (or the folder in argv[2]).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] || join(here, '..', 'tsne_dist', 'viz', 'static'));
mkdirSync(outdir, { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  minify: process.env.VIEWER_MINIFY !== '0',
  format: 'iife',
  target: ['chrome100', 'firefox100', 'safari15'],
  outfile: join(outdir, 'viewer.js'),
  legalComments: 'linked',
  logLevel: 'warning',
});
await build({
  entryPoints: [join(here, 'src', 'spatial-worker.js')],
  bundle: true,
  minify: process.env.VIEWER_MINIFY !== '0',
  format: 'iife',
  target: ['chrome100', 'firefox100', 'safari15'],
  outfile: join(outdir, 'spatial-worker.js'),
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(here, 'src', 'index.html'), join(outdir, 'index.html'));
copyFileSync(join(here, 'src', 'viewer.css'), join(outdir, 'viewer.css'));
console.log(`viewer bundle written to ${outdir}`);
