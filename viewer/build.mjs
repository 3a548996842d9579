// Bundle the viewer with esbuild into ../tsne_dist/viz/static/ (or the folder in argv[2]).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] || join(here, '..', 'tsne_dist', 'viz', 'static'));
mkdirSync(outdir, { recursive: true });

for (const name of ['main.js', 'spatial-worker.js']) {
  await build({
    entryPoints: [join(here, 'src', name)],
    bundle: true,
    minify: process.env.VIEWER_MINIFY !== '0',
    format: 'iife',
    target: ['chrome100', 'firefox100', 'safari15'],
    outfile: join(outdir, name === 'main.js' ? 'viewer.js' : name),
    legalComments: 'linked',
    logLevel: 'warning',
  });
}
copyFileSync(join(here, 'src', 'index.html'), join(outdir, 'index.html'));
copyFileSync(join(here, 'src', 'viewer.css'), join(outdir, 'viewer.css'));
console.log(`viewer bundle written to ${outdir}`);
