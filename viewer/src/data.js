// Loading and decoding the binary data written by tsne_dist/viz/export.py.
import KDBush from 'kdbush';

const TYPED = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, float32: Float32Array };

/** Fetch data/NAME as an ArrayBuffer, inflating it when it starts with the gzip magic bytes. */
export async function loadBuffer(name) {
  const response = await fetch(`data/${encodeURIComponent(name)}`);
  if (!response.ok) throw new Error(`data/${name}: HTTP ${response.status}`);
  const buffer = await response.arrayBuffer();
  const head = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
  if (head.length === 2 && head[0] === 0x1f && head[1] === 0x8b) {
    const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).arrayBuffer();
  }
  return buffer;
}

export async function loadTyped(name, dtype) {
  return new TYPED[dtype](await loadBuffer(name));
}

/** A text column: one UTF-8 blob plus per-item byte lengths. */
export class TextColumn {
  constructor(bytes, lengths) {
    this.bytes = bytes;
    this.offsets = new Float64Array(lengths.length + 1);
    for (let i = 0; i < lengths.length; i += 1) this.offsets[i + 1] = this.offsets[i] + lengths[i];
    this.decoder = new TextDecoder();
    this.cache = null;
  }

  get(i) {
    if (this.cache) return this.cache[i];
    return this.decoder.decode(this.bytes.subarray(this.offsets[i], this.offsets[i + 1]));
  }

  /** All values decoded once (for search). */
  all() {
    if (!this.cache) {
      const n = this.offsets.length - 1;
      const values = new Array(n);
      for (let i = 0; i < n; i += 1) values[i] = this.get(i);
      this.cache = values;
    }
    return this.cache;
  }
}

export async function loadText(entry) {
  const [bytes, lengths] = await Promise.all([
    loadBuffer(entry.file), loadTyped(entry.lengths, entry.lengths_dtype),
  ]);
  return new TextColumn(new Uint8Array(bytes), lengths);
}

/** Split interleaved (N, 2) float32 positions into x and y arrays. */
export function splitPositions(buffer) {
  const xy = new Float32Array(buffer);
  const n = xy.length / 2;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i += 1) {
    x[i] = xy[2 * i];
    y[i] = xy[2 * i + 1];
  }
  return { x, y };
}

/** The k neighbour indices of item i from the bit-packed kNN stream (see export.pack_bits). */
export function neighboursOf(knn, i) {
  const { bytes, bits, k } = knn;
  const mask = bits === 32 ? 0xffffffff : (2 ** bits) - 1;
  const result = new Array(k);
  for (let j = 0; j < k; j += 1) {
    const position = (i * k + j) * bits;
    const byte = Math.floor(position / 8);
    const word = (bytes[byte] | (bytes[byte + 1] << 8) | (bytes[byte + 2] << 16) | (bytes[byte + 3] << 24)) >>> 0;
    result[j] = (word >>> (position % 8)) & mask;
  }
  return result;
}

/**
 * The KDBush spatial index (serialised ArrayBuffer) of one layout, built straight from typed
 * arrays: regl-scatterplot would otherwise copy a million points to a worker to build it.
 */
export function spatialIndex({ x, y }) {
  const index = new KDBush(x.length, 16, Float32Array);
  for (let i = 0; i < x.length; i += 1) index.add(x[i], y[i]);
  index.finish();
  return index.data;
}

/** spatialIndex() in a worker (spatial-worker.js), falling back to this thread if workers fail. */
export function spatialIndexAsync(layout) {
  return new Promise((resolve) => {
    let worker;
    try {
      worker = new Worker('spatial-worker.js');
    } catch (error) {
      resolve(spatialIndex(layout));
      return;
    }
    worker.onmessage = (event) => {
      worker.terminate();
      resolve(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      resolve(spatialIndex(layout));
    };
    const x = layout.x.slice();
    const y = layout.y.slice();
    worker.postMessage({ x, y }, [x.buffer, y.buffer]);
  });
}
