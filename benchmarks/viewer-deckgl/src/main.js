// benchmarks only: draw the exported map (positions + first category column) with deck.gl's
// ScatterplotLayer, exposing the same timings as the real viewer (window.__bench).
import { Deck, OrthographicView } from '@deck.gl/core';
import { ScatterplotLayer } from '@deck.gl/layers';

const api = { timings: {}, ready: false, error: null };
window.__bench = api;
const PALETTE = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194],
  [23, 190, 207], [188, 189, 34], [57, 59, 121], [174, 199, 232], [255, 187, 120], [152, 223, 138], [255, 152, 150],
  [197, 176, 213], [196, 156, 148], [247, 182, 210], [158, 218, 229], [219, 219, 141], [99, 121, 57],
  [158, 158, 158], [217, 217, 217],
];

async function loadBuffer(name) {
  const response = await fetch(`../data/${name}`);
  const buffer = await response.arrayBuffer();
  const head = new Uint8Array(buffer, 0, 2);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    return new Response(new Blob([buffer]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
  }
  return buffer;
}

async function main() {
  const manifest = await (await fetch('../data/manifest.json')).json();
  api.timings.manifest = performance.now();
  const category = manifest.columns.find((c) => c.kind === 'category');
  const [positionBuffer, codeBuffer] = await Promise.all([
    loadBuffer(manifest.layouts[0].file), loadBuffer(category.file)]);
  const positions = new Float32Array(positionBuffer);
  const codes = category.dtype === 'uint8' ? new Uint8Array(codeBuffer) : new Uint16Array(codeBuffer);
  const n = manifest.n_items;
  const colors = new Uint8Array(n * 4);
  for (let i = 0; i < n; i += 1) {
    const code = codes[i];
    const rgb = PALETTE[code === 0 ? 21 : code <= 20 ? code - 1 : 20];
    colors[4 * i] = rgb[0];
    colors[4 * i + 1] = rgb[1];
    colors[4 * i + 2] = rgb[2];
    colors[4 * i + 3] = 255;
  }
  api.timings.data = performance.now();
  const side = Math.min(window.innerWidth, window.innerHeight);
  let viewState = { target: [0, 0, 0], zoom: Math.log2(side / 2) };
  let waiting = [];
  const layer = new ScatterplotLayer({
    id: 'points',
    data: { length: n, attributes: { getPosition: { value: positions, size: 2 }, getFillColor: { value: colors, size: 4 } } },
    radiusUnits: 'pixels',
    getRadius: 1.5,
    opacity: 0.6,
    pickable: true,
  });
  const deck = new Deck({
    parent: document.body,
    views: new OrthographicView({ flipY: false }),
    viewState,
    controller: true,
    layers: [layer],
    onViewStateChange: ({ viewState: next }) => { viewState = next; deck.setProps({ viewState }); },
    onAfterRender: () => { const done = waiting; waiting = []; done.forEach((resolve) => resolve()); },
  });
  const nextRender = () => new Promise((resolve) => { waiting.push(resolve); });
  api.deck = deck;
  api.syncPixels = () => {
    const gl = deck.getCanvas().getContext('webgl2');
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  };
  await nextRender();
  api.timings.drawn = performance.now();
  api.syncPixels(); // until the pixels are really there
  api.timings.firstFrame = performance.now();
  api.ready = true;
  api.zoomBy = async (factor) => {
    viewState = { ...viewState, zoom: viewState.zoom + Math.log2(factor), target: [0.1, 0.1, 0] };
    const rendered = nextRender();
    deck.setProps({ viewState });
    await rendered;
    api.syncPixels();
  };
}

main().catch((error) => { api.error = String(error); console.error(error); });
