// The tsne-dist map viewer: a WebGL scatterplot (regl-scatterplot) of up to millions of items.
// Every string that comes from the data (ids, metadata, column and run names) is untrusted:
// it is only ever placed with textContent, never parsed as HTML.
import createScatterplot from 'regl-scatterplot';
import { CATEGORY_COLORS, MISSING_COLOR, OTHER_COLOR, SINGLE_COLOR, viridis } from './colors.js';
import { loadBuffer, loadText, loadTyped, neighboursOf, spatialIndexAsync, splitPositions } from './data.js';

const TOP_K = 20;
const MAX_MATCHES = 50;
const MAX_OUTLIER_RINGS = 20000;
const PREVIEW_POINTS = 100000;
const CONTINUOUS_COLORS = viridis(256);
const $ = (id) => document.getElementById(id);

const state = {
  manifest: null,
  n: 0,
  layouts: [],
  layoutIndex: 0,
  ids: null,
  columns: new Map(), // name -> { entry, data }
  color: { name: null, z: null, w: null, slots: [] },
  isolated: -1,
  knn: null,
  keptCounts: null, // per item, tie-aware: map neighbours as near in high-D as the k-th listed one (layout 0)
  outlier: null,
  outlierTop: null,
  showOutliers: false,
  selected: -1,
  neighbours: [],
  keptSet: new Set(),
  cameraMove: Promise.resolve(),
  mouse: [0, 0],
  timings: {},
};
const api = { state, ready: false, loaded: false, error: null, timings: state.timings, selection: null, lastSearch: null };
window.__viewer = api;
let scatterplot = null;
let resolveLoaded;
const loadedPromise = new Promise((resolve) => { resolveLoaded = resolve; });

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function setStatus(text) {
  $('status').textContent = text;
}

function formatNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return 'missing';
  if (Number.isInteger(value)) return value.toLocaleString('en');
  return Math.abs(value) >= 1000 || Math.abs(value) < 0.01 ? value.toPrecision(4) : value.toFixed(3);
}

function basePointSize(n) {
  if (n <= 1e3) return 6;
  if (n <= 1e4) return 4;
  if (n <= 1e5) return 3;
  if (n <= 1e6) return 2;
  return 1.5;
}

// ---- data -------------------------------------------------------------------------------------

async function loadColumn(entry) {
  if (state.columns.has(entry.name)) return state.columns.get(entry.name);
  let data;
  if (entry.kind === 'category') data = await loadTyped(entry.file, entry.dtype);
  else if (entry.kind === 'number') data = await loadTyped(entry.file, 'float32');
  else data = await loadText(entry);
  const column = { entry, data };
  state.columns.set(entry.name, column);
  return column;
}

function columnValue(column, i) {
  const { entry, data } = column;
  if (entry.kind === 'category') return data[i] === 0 ? 'missing' : entry.categories[data[i] - 1];
  if (entry.kind === 'number') return formatNumber(data[i]);
  return data.get(i);
}

function currentPositions() {
  return state.layouts[state.layoutIndex];
}

// ---- colour -----------------------------------------------------------------------------------

function categorySlots(entry, codes) {
  const shown = Math.min(TOP_K, entry.categories.length);
  const slots = [];
  for (let c = 0; c < shown; c += 1) {
    slots.push({ name: entry.categories[c], count: entry.counts[c], color: CATEGORY_COLORS[c] });
  }
  const otherCount = entry.counts.slice(shown).reduce((a, b) => a + b, 0);
  const otherSlot = otherCount > 0 ? slots.push({ name: `other (${entry.categories.length - shown} more)`, count: otherCount, color: OTHER_COLOR, other: true }) - 1 : -1;
  const missingSlot = entry.missing > 0 ? slots.push({ name: 'missing', count: entry.missing, color: MISSING_COLOR, missing: true }) - 1 : -1;
  const z = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    z[i] = code === 0 ? missingSlot : code <= shown ? code - 1 : otherSlot;
  }
  return { slots, z };
}

function continuousValues(entry, values) {
  const finite = [];
  const step = Math.max(1, Math.floor(values.length / 20000));
  for (let i = 0; i < values.length; i += step) if (Number.isFinite(values[i])) finite.push(values[i]);
  finite.sort((a, b) => a - b);
  const low = entry.min ?? 0;
  const high = entry.max ?? 1;
  const median = finite.length ? finite[Math.floor(finite.length / 2)] : 0;
  const log = low >= 0 && high > 100 * Math.max(median, 1e-12) && high > 10;
  const f = log ? (v) => Math.log1p(v) : (v) => v;
  const lo = f(low);
  const span = f(high) - lo || 1;
  const w = new Float32Array(values.length);
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    w[i] = Number.isFinite(v) ? Math.min(1, Math.max(0, (f(v) - lo) / span)) : 0;
  }
  return { w, log, low, high };
}

/** Colour state, legend and scatterplot options for a column (null: one colour); draws nothing. */
async function colorOptions(name) {
  const entry = state.manifest.columns.find((c) => c.name === name && c.kind !== 'text');
  const n = state.n;
  let z = new Float32Array(n);
  let w = new Float32Array(n);
  let options;
  const legend = $('legend');
  legend.replaceChildren();
  if (!entry) {
    state.color = { name: null, z, w, slots: [] };
    options = { colorBy: null, pointColor: SINGLE_COLOR };
  } else if (entry.kind === 'category') {
    const column = await loadColumn(entry);
    const { slots, z: codes } = categorySlots(entry, column.data);
    z = codes;
    state.color = { name, z, w, slots };
    options = { colorBy: 'valueA', pointColor: slots.map((s) => s.color) };
    slots.forEach((slot, index) => {
      const item = el('div', 'legend-item');
      item.dataset.slot = String(index);
      const swatch = el('span', 'swatch');
      swatch.style.background = slot.color;
      item.append(swatch, el('span', 'name', slot.name), el('span', 'count', slot.count.toLocaleString('en')));
      item.title = 'click to show only this category; click again to show all';
      item.addEventListener('click', () => isolate(index));
      legend.append(item);
    });
  } else {
    const column = await loadColumn(entry);
    const scaled = continuousValues(entry, column.data);
    w = scaled.w;
    state.color = { name, z, w, slots: [], log: scaled.log };
    options = { colorBy: 'valueB', pointColor: CONTINUOUS_COLORS };
    const bar = el('div', 'colorbar');
    bar.style.background = `linear-gradient(to right, ${viridis(9).join(', ')})`;
    const labels = el('div', 'colorbar-labels');
    labels.append(el('span', '', formatNumber(scaled.low)), el('span', '', scaled.log ? 'log scale' : ''),
      el('span', '', formatNumber(scaled.high)));
    legend.append(bar, labels);
    if (entry.missing) legend.append(el('p', 'muted', 'missing values are drawn at the low end'));
  }
  if (state.isolated >= 0) {
    state.isolated = -1;
    scatterplot.unfilter({ preventEvent: true });
  }
  return options;
}

async function setColorBy(name) {
  scatterplot.set(await colorOptions(name));
  await drawPoints();
  api.colorBy = name;
}

function isolate(slot) {
  const items = $('legend').querySelectorAll('.legend-item');
  if (state.isolated === slot) {
    state.isolated = -1;
    scatterplot.unfilter({ preventEvent: true });
    items.forEach((item) => item.classList.remove('dim'));
    return;
  }
  state.isolated = slot;
  const { z } = state.color;
  const indices = [];
  for (let i = 0; i < z.length; i += 1) if (z[i] === slot) indices.push(i);
  scatterplot.filter(indices, { preventEvent: true });
  items.forEach((item) => item.classList.toggle('dim', Number(item.dataset.slot) !== slot));
  api.isolated = { slot, count: indices.length };
}

/** True when WebGL runs on the CPU (SwiftShader, llvmpipe), where every point costs. */
function isSoftwareGL() {
  try {
    const gl = scatterplot.get('renderer').regl._gl;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const name = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    return /swiftshader|llvmpipe|softpipe|software/i.test(String(name));
  } catch (error) {
    return false;
  }
}

async function drawPreview(points) {
  const { x, y } = currentPositions();
  const { z, w } = state.color;
  const stride = Math.ceil(state.n / points);
  const m = Math.ceil(state.n / stride);
  const sample = { x: new Float32Array(m), y: new Float32Array(m), z: new Float32Array(m), w: new Float32Array(m) };
  for (let j = 0, i = 0; j < m; j += 1, i += stride) {
    sample.x[j] = x[i];
    sample.y[j] = y[i];
    sample.z[j] = z[i];
    sample.w[j] = w[i];
  }
  await scatterplot.draw(sample, { zDataType: 'categorical', wDataType: 'continuous' });
}

async function drawPoints({ transition = false } = {}) {
  const layout = currentPositions();
  const { x, y } = layout;
  if (!layout.index) layout.index = await spatialIndexAsync(layout);
  // KDBush.from() only reads the buffer, so one index serves every redraw of this layout
  const options = { zDataType: 'categorical', wDataType: 'continuous', preventFilterReset: true, spatialIndex: layout.index };
  if (transition) Object.assign(options, { transition: true, transitionDuration: 1200 });
  if (state.selected >= 0) options.select = [state.selected, ...state.neighbours];
  await scatterplot.draw({ x, y, z: state.color.z, w: state.color.w }, options);
}

// ---- tooltip ----------------------------------------------------------------------------------

function showTooltip(i) {
  if (!api.ready) return; // the preview's indices are not item indices
  const tooltip = $('tooltip');
  tooltip.replaceChildren();
  tooltip.append(el('div', 'id', state.ids ? state.ids.get(i) : `item ${i}`));
  for (const entry of state.manifest.columns) {
    const column = state.columns.get(entry.name);
    if (column) tooltip.append(el('div', '', `${entry.name}: ${columnValue(column, i)}`));
  }
  if (state.outlier) tooltip.append(el('div', 'muted', `outlier score: ${formatNumber(state.outlier[i])}`));
  if (!api.loaded) tooltip.append(el('div', 'muted', 'loading metadata…'));
  const map = $('map');
  const [mx, my] = state.mouse;
  tooltip.hidden = false;
  const left = Math.min(mx + 14, map.clientWidth - tooltip.offsetWidth - 4);
  const top = Math.min(my + 14, map.clientHeight - tooltip.offsetHeight - 4);
  tooltip.style.left = `${Math.max(0, left)}px`;
  tooltip.style.top = `${Math.max(0, top)}px`;
  api.hovered = i;
}

function hideTooltip() {
  $('tooltip').hidden = true;
  api.hovered = -1;
}

// ---- neighbours -------------------------------------------------------------------------------

function nearestOnMap(i, k) {
  const { x, y } = currentPositions();
  const best = []; // [dist2, index] sorted ascending, at most k
  const xi = x[i];
  const yi = y[i];
  for (let j = 0; j < x.length; j += 1) {
    if (j === i) continue;
    const dx = x[j] - xi;
    const dy = y[j] - yi;
    const d = dx * dx + dy * dy;
    if (best.length < k || d < best[best.length - 1][0]) {
      let p = best.length < k ? best.length : best.length - 1;
      if (best.length < k) best.push(null);
      while (p > 0 && (best[p - 1][0] > d || (best[p - 1][0] === d && best[p - 1][1] > j))) {
        best[p] = best[p - 1];
        p -= 1;
      }
      best[p] = [d, j];
    }
  }
  return best.map((entry) => entry[1]);
}

function itemLabel(i) {
  return state.ids ? state.ids.get(i) : `item ${i}`;
}

function showNeighbours(i) {
  state.selected = i;
  const panel = $('neighbours');
  const list = $('neighbours-list');
  list.replaceChildren();
  panel.hidden = false;
  if (!state.knn) {
    state.neighbours = [];
    state.keptSet = new Set();
    $('neighbours-summary').textContent = `${itemLabel(i)}: ${api.loaded ? 'this run has no kNN graph' : 'neighbours still loading…'}`;
    scatterplot.select([i], { preventEvent: true });
    api.selection = { index: i, neighbours: [], kept: 0, keptTieAware: null };
    redrawOverlay();
    return;
  }
  const neighbours = neighboursOf(state.knn, i).filter((j) => j !== i && j < state.n);
  const onMap = new Set(nearestOnMap(i, neighbours.length));
  const kept = new Set(neighbours.filter((j) => onMap.has(j)));
  state.neighbours = neighbours;
  state.keptSet = kept;
  const k = neighbours.length;
  // the exported count includes items tied with the k-th neighbour; it is for the run's own layout
  // and for the exported k (an item whose list holds itself or padding beyond N has fewer here)
  const tieAware = state.keptCounts && state.layoutIndex === 0 && k === state.knn.k ? state.keptCounts[i] : null;
  let summary = `${itemLabel(i)}: ${kept.size} of its ${k} nearest high-D neighbours are also among its ${k} nearest on the map.`;
  if (tieAware !== null && tieAware !== kept.size) {
    summary += ` Counting items as near in high-D as its ${k}-th neighbour (ties), ${tieAware} of its ${k} nearest on the map are true neighbours.`;
  }
  $('neighbours-summary').textContent = summary;
  neighbours.forEach((j) => {
    const isKept = kept.has(j);
    const li = el('li', isKept ? 'kept' : 'lost');
    li.append(el('span', 'name', itemLabel(j)), ' ',
      el('span', `tag ${isKept ? 'kept' : 'lost'}`, isKept ? 'near on map' : 'far on map'));
    li.addEventListener('click', () => focusItem(j));
    list.append(li);
  });
  scatterplot.select([i, ...neighbours], { preventEvent: true });
  api.selection = { index: i, neighbours, kept: kept.size, keptTieAware: tieAware };
  redrawOverlay();
}

function clearNeighbours() {
  state.selected = -1;
  state.neighbours = [];
  state.keptSet = new Set();
  $('neighbours').hidden = true;
  api.selection = null;
  redrawOverlay();
}

function focusItem(i) {
  const { x, y } = currentPositions();
  const distance = Math.min(scatterplot.get('camera').distance[0], 0.25);
  // a layout switch waits for this move: a points transition started during a camera transition never ends
  state.cameraMove = scatterplot.zoomToLocation([x[i], y[i]], distance, { transition: true, transitionDuration: 500 })
    .then(() => redrawOverlay());
  showNeighbours(i);
}

// ---- overlay: neighbour lines and outlier rings -----------------------------------------------

function resizeOverlay() {
  const overlay = $('overlay');
  const ratio = window.devicePixelRatio || 1;
  overlay.width = Math.round(overlay.clientWidth * ratio);
  overlay.height = Math.round(overlay.clientHeight * ratio);
  redrawOverlay();
}

function redrawOverlay() {
  const overlay = $('overlay');
  const context = overlay.getContext('2d');
  const ratio = window.devicePixelRatio || 1;
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, overlay.width, overlay.height);
  if (!scatterplot || !api.ready) return;
  if (state.showOutliers && state.outlierTop) {
    context.strokeStyle = 'rgba(214, 39, 40, 0.9)';
    context.lineWidth = 1.5;
    context.beginPath();
    const count = Math.min(state.outlierTop.length, MAX_OUTLIER_RINGS);
    for (let t = 0; t < count; t += 1) {
      const position = scatterplot.getScreenPosition(state.outlierTop[t]);
      if (!position) continue;
      context.moveTo(position[0] + 5, position[1]);
      context.arc(position[0], position[1], 5, 0, 2 * Math.PI);
    }
    context.stroke();
  }
  if (state.selected >= 0) {
    const origin = scatterplot.getScreenPosition(state.selected);
    if (!origin) return;
    context.lineWidth = 1.5;
    for (const j of state.neighbours) {
      const target = scatterplot.getScreenPosition(j);
      if (!target) continue;
      context.strokeStyle = state.keptSet.has(j) ? 'rgba(26, 152, 80, 0.9)' : 'rgba(215, 48, 39, 0.8)';
      context.beginPath();
      context.moveTo(origin[0], origin[1]);
      context.lineTo(target[0], target[1]);
      context.stroke();
    }
  }
}

async function toggleOutliers(on) {
  state.showOutliers = on;
  const info = state.manifest.outlier;
  if (on && info && !state.outlierTop) state.outlierTop = await loadTyped(info.top, 'uint32');
  $('outlier-note').textContent = on && info
    ? `Ringed: the top ${info.n_top.toLocaleString('en')} items by outlier score (${info.definition}; score ≥ ${formatNumber(info.threshold)}).`
    : '';
  api.outliersShown = on ? Math.min(state.outlierTop?.length ?? 0, MAX_OUTLIER_RINGS) : 0;
  redrawOverlay();
}

// ---- search -----------------------------------------------------------------------------------

async function search(query) {
  const q = query.trim();
  const results = $('search-results');
  results.replaceChildren();
  if (!q) return [];
  $('search-status').textContent = 'searching…';
  await loadedPromise;
  const needle = q.toLowerCase();
  const matches = [];
  const seen = new Set();
  const add = (i, where) => {
    if (matches.length < MAX_MATCHES && !seen.has(i)) {
      seen.add(i);
      matches.push({ index: i, where });
    }
  };
  const ids = state.ids.all();
  const exact = ids.indexOf(q);
  if (exact >= 0) add(exact, 'id');
  for (let i = 0; i < ids.length && matches.length < MAX_MATCHES; i += 1) {
    if (ids[i].toLowerCase().includes(needle)) add(i, 'id');
  }
  for (const entry of state.manifest.columns) {
    if (matches.length >= MAX_MATCHES) break;
    const column = state.columns.get(entry.name);
    if (entry.kind === 'text') {
      const values = column.data.all();
      for (let i = 0; i < values.length && matches.length < MAX_MATCHES; i += 1) {
        if (values[i].toLowerCase().includes(needle)) add(i, `${entry.name}: ${values[i]}`);
      }
    } else if (entry.kind === 'category') {
      const codes = new Set();
      entry.categories.forEach((name, c) => { if (name.toLowerCase().includes(needle)) codes.add(c + 1); });
      if (codes.size === 0) continue;
      const data = column.data;
      for (let i = 0; i < data.length && matches.length < MAX_MATCHES; i += 1) {
        if (codes.has(data[i])) add(i, `${entry.name}: ${entry.categories[data[i] - 1]}`);
      }
    }
  }
  $('search-status').textContent = matches.length === 0 ? `no item matches "${q}"`
    : `${matches.length >= MAX_MATCHES ? `first ${MAX_MATCHES}` : matches.length} match${matches.length === 1 ? '' : 'es'}`;
  for (const match of matches) {
    const li = el('li', '', itemLabel(match.index));
    if (match.where !== 'id') li.append(el('span', 'muted', ` (${match.where})`));
    li.addEventListener('click', () => focusItem(match.index));
    results.append(li);
  }
  api.lastSearch = { query: q, matches: matches.map((m) => m.index) };
  if (matches.length) focusItem(matches[0].index);
  return api.lastSearch.matches;
}

// ---- compare ----------------------------------------------------------------------------------

async function toggleLayout() {
  const button = $('compare-toggle');
  button.disabled = true;
  await state.cameraMove;
  state.layoutIndex = 1 - state.layoutIndex;
  await drawPoints({ transition: true });
  const other = state.manifest.layouts[1 - state.layoutIndex];
  button.textContent = `Animate to: ${other.name}`;
  button.disabled = false;
  api.layoutIndex = state.layoutIndex;
  if (state.selected >= 0) showNeighbours(state.selected); // "kept" is about the layout now shown
  else redrawOverlay();
}

// ---- start ------------------------------------------------------------------------------------

function createPlot() {
  const canvas = $('canvas');
  const size = basePointSize(state.n);
  const params = new URLSearchParams(window.location.search);
  scatterplot = createScatterplot({
    canvas,
    performanceMode: params.get('performance') === '1',
    pointSize: size,
    pointSizeSelected: 2,
    pointOutlineWidth: 1.5,
    opacityBy: params.get('opacity') === 'fixed' ? null : 'density',
    pointColor: SINGLE_COLOR,
    pointColorActive: '#111111',
    pointColorHover: '#000000',
    backgroundColor: '#ffffff',
    lassoOnLongPress: false,
    pointScaleMode: 'asinh',
  });
  api.scatterplot = scatterplot;
  scatterplot.subscribe('pointOver', showTooltip);
  scatterplot.subscribe('pointOut', hideTooltip);
  scatterplot.subscribe('select', ({ points }) => {
    if (api.ready && points.length === 1) showNeighbours(points[0]);
  });
  scatterplot.subscribe('deselect', clearNeighbours);
  scatterplot.subscribe('draw', redrawOverlay);
  canvas.addEventListener('mousemove', (event) => {
    const rect = $('map').getBoundingClientRect();
    state.mouse = [event.clientX - rect.left, event.clientY - rect.top];
  });
  canvas.addEventListener('mouseleave', hideTooltip);
  window.addEventListener('resize', resizeOverlay);
  $('size').addEventListener('input', (event) => scatterplot.set({ pointSize: size * Number(event.target.value) }));
  const applyOpacity = () => {
    const auto = $('opacity-auto').checked;
    $('opacity').disabled = auto;
    scatterplot.set(auto ? { opacityBy: 'density' } : { opacityBy: null, opacity: Number($('opacity').value) });
  };
  $('opacity-auto').addEventListener('change', applyOpacity);
  $('opacity').addEventListener('input', applyOpacity);
}

function setupControls(manifest) {
  const select = $('color-by');
  select.append(el('option', '', '(one colour)'));
  select.options[0].value = '';
  for (const entry of manifest.columns) {
    if (entry.kind === 'text') continue;
    const option = el('option', '', entry.name);
    option.value = entry.name;
    select.append(option);
  }
  select.addEventListener('change', () => setColorBy(select.value || null));
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    search($('search').value);
  });
  const outliers = $('outliers');
  outliers.disabled = !manifest.outlier;
  outliers.addEventListener('change', () => toggleOutliers(outliers.checked));
  if (manifest.layouts.length > 1) {
    const button = $('compare-toggle');
    button.hidden = false;
    button.disabled = true;
    button.textContent = `Animate to: ${manifest.layouts[1].name}`;
    button.addEventListener('click', toggleLayout);
  }
}

function summaryText(manifest) {
  const parts = [`${manifest.n_items.toLocaleString('en')} items`];
  const metrics = manifest.metrics || {};
  if (metrics['knn_recall@10'] !== undefined) parts.push(`recall@10 ${formatNumber(metrics['knn_recall@10'])}`);
  if (metrics['trustworthiness@10'] !== undefined) parts.push(`trustworthiness@10 ${formatNumber(metrics['trustworthiness@10'])}`);
  return parts.join(' · ');
}

/** Read one pixel back: returns only once the GPU (or SwiftShader) has really finished drawing. */
function syncPixels() {
  $('canvas').getContext('2d').getImageData(0, 0, 1, 1);
}

function firstFrame() {
  return new Promise((resolve) => {
    const token = scatterplot.subscribe('draw', () => {
      scatterplot.unsubscribe(token);
      syncPixels();
      resolve();
    });
    scatterplot.redraw();
  });
}

async function loadRest(manifest) {
  const jobs = [loadText(manifest.ids).then((ids) => { state.ids = ids; })];
  for (const entry of manifest.columns) jobs.push(loadColumn(entry));
  if (manifest.knn) {
    jobs.push(loadBuffer(manifest.knn.file).then((buffer) => {
      state.knn = { bytes: new Uint8Array(buffer), bits: manifest.knn.bits, k: manifest.knn.k };
    }));
  }
  if (manifest.knn && manifest.knn.kept) {
    jobs.push(loadTyped(manifest.knn.kept, 'uint8').then((kept) => { state.keptCounts = kept; }));
  }
  if (manifest.outlier) jobs.push(loadTyped(manifest.outlier.file, 'float32').then((scores) => { state.outlier = scores; }));
  if (manifest.layouts.length > 1) {
    jobs.push(loadBuffer(manifest.layouts[1].file).then((buffer) => {
      state.layouts[1] = splitPositions(buffer);
      return spatialIndexAsync(state.layouts[1]).then((index) => {
        state.layouts[1].index = index;
        $('compare-toggle').disabled = false;
      });
    }));
  }
  await Promise.all(jobs);
  state.timings.loaded = performance.now();
  api.loaded = true;
  resolveLoaded();
}

async function main() {
  const response = await fetch('data/manifest.json');
  if (!response.ok) throw new Error(`data/manifest.json: HTTP ${response.status}`);
  const manifest = await response.json();
  state.timings.manifest = performance.now();
  state.manifest = manifest;
  state.n = manifest.n_items;
  api.manifest = manifest;
  $('title').textContent = manifest.layouts[0].name || 'tsne-dist map';
  document.title = `${manifest.layouts[0].name} · tsne-dist map`;
  $('summary').textContent = summaryText(manifest);
  // The run's --color-by when it set one; else the first category (or number) column.
  const initial = (manifest.color_by && manifest.columns.find((c) => c.name === manifest.color_by))
    || manifest.columns.find((c) => c.kind === 'category') || manifest.columns.find((c) => c.kind === 'number');
  const [positions] = await Promise.all([loadBuffer(manifest.layouts[0].file), initial ? loadColumn(initial) : null]);
  state.layouts[0] = splitPositions(positions);
  state.timings.data = performance.now();
  const indexReady = spatialIndexAsync(state.layouts[0]).then((index) => { state.layouts[0].index = index; });
  createPlot();
  state.timings.plot = performance.now();
  setupControls(manifest);
  state.color = { name: null, z: new Float32Array(state.n), w: new Float32Array(state.n), slots: [] };
  $('color-by').value = initial ? initial.name : '';
  scatterplot.set(await colorOptions(initial ? initial.name : null));
  api.softwareGL = isSoftwareGL();
  const previewParam = new URLSearchParams(window.location.search).get('preview'); // ?preview=0 turns it off
  const previewPoints = previewParam === null ? PREVIEW_POINTS : Number(previewParam);
  if (api.softwareGL && previewPoints > 0 && state.n > 2 * previewPoints) {
    // Software GL draws a million points in seconds: show an evenly strided sample first.
    await drawPreview(previewPoints);
    await firstFrame();
    state.timings.preview = performance.now();
    setStatus(`drawing all ${state.n.toLocaleString('en')} points…`);
  }
  await indexReady; // built in a worker while WebGL started up
  await drawPoints();
  api.colorBy = initial ? initial.name : null;
  state.timings.drawn = performance.now();
  await firstFrame();
  state.timings.firstFrame = performance.now();
  api.ready = true;
  resizeOverlay();
  setStatus('scroll to zoom, drag to pan, hover for details, click for neighbours');
  await loadRest(manifest);
}

api.search = search;
api.setColorBy = async (name) => { $('color-by').value = name || ''; await setColorBy(name); };
api.toggleOutliers = (on) => { $('outliers').checked = on; return toggleOutliers(on); };
api.toggleLayout = toggleLayout;
api.syncPixels = syncPixels;
api.focusItem = focusItem;
api.screenPosition = (i) => {
  const rect = $('canvas').getBoundingClientRect();
  const position = scatterplot.getScreenPosition(i);
  return [rect.left + position[0], rect.top + position[1]];
};

main().catch((error) => {
  api.error = String(error && error.message ? error.message : error);
  if (window.location.protocol === 'file:') {
    api.error = `browsers do not load data files from file:// pages; serve this folder (tsne-dist view OUT, or any static web host) (${api.error})`;
  }
  setStatus(`error: ${api.error}`);
  $('summary').textContent = `error: ${api.error}`;
  console.error(error);
});
