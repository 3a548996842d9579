// Builds the KDBush spatial index of one layout off the main thread (see data.js spatialIndex).
import KDBush from 'kdbush';

self.onmessage = (event) => {
  const { x, y } = event.data;
  const index = new KDBush(x.length, 16, Float32Array);
  for (let i = 0; i < x.length; i += 1) index.add(x[i], y[i]);
  index.finish();
  self.postMessage(index.data, [index.data]);
};
