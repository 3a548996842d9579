// node build.mjs OUTDIR: bundle the deck.gl benchmark page into OUTDIR (index.html + deck.js).
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2]);
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'main.js')], bundle: true, minify: true, format: 'iife',
  outfile: join(outdir, 'deck.js'), logLevel: 'warning',
});
writeFileSync(join(outdir, 'index.html'),
  '<!doctype html><html><head><meta charset="utf-8"><style>html,body{margin:0;height:100%;overflow:hidden}</style>'
  + '</head><body><script src="deck.js"></script></body></html>\n');
