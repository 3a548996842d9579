// Colour palettes: 20 distinguishable categories, greys for "other" and "missing", viridis for numbers.

export const CATEGORY_COLORS = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#393b79',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#9edae5', '#dbdb8d', '#637939',
];
export const OTHER_COLOR = '#9e9e9e';
export const MISSING_COLOR = '#d9d9d9';
export const SINGLE_COLOR = '#3b6fb6';

const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37],
];

function hex(rgb) {
  return `#${rgb.map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
}

/** n colours along viridis. */
export function viridis(n) {
  const colors = [];
  for (let i = 0; i < n; i += 1) {
    const t = (i / (n - 1)) * (VIRIDIS.length - 1);
    const lo = Math.floor(t);
    const hi = Math.min(lo + 1, VIRIDIS.length - 1);
    const f = t - lo;
    colors.push(hex(VIRIDIS[lo].map((v, c) => v + (VIRIDIS[hi][c] - v) * f)));
  }
  return colors;
}
