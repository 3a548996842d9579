"""Points to an RGBA raster with NumPy: counts per pixel, colour mixing, alpha by density, spreading.

The same steps as datashader's ``Canvas.points`` / ``shade`` / ``spread`` /
``dynspread`` (https://datashader.org), written with NumPy so a fresh process pays
no numba compile (datashader compiles its kernels and compositors in every new
process: about 3-4 s of each run, measured). Images are ``(h, w, 4)`` uint8 RGBA
with row 0 at the bottom (``figimage(origin="lower")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A ``w`` x ``h`` pixel grid over ``x_range`` x ``y_range`` (data units)."""

    w: int
    h: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat pixel index (row * w + column) of each point inside the grid, and which points are inside."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        column = np.floor((x.astype(np.float64) - x0) * (self.w / (x1 - x0))).astype(np.int64)
        row = np.floor((y.astype(np.float64) - y0) * (self.h / (y1 - y0))).astype(np.int64)
        column[column == self.w] = self.w - 1  # the right and top edges belong to the last pixel
        row[row == self.h] = self.h - 1
        inside = (column >= 0) & (column < self.w) & (row >= 0) & (row < self.h)
        return row[inside] * self.w + column[inside], inside

    def counts(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(h, w) int64 points per pixel."""
        flat, _ = self.pixels(x, y)
        return np.bincount(flat, minlength=self.w * self.h).reshape(self.h, self.w)

    def colour_sums(self, x: np.ndarray, y: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel, the sum of its points' RGB ``colours`` ((N, 3) in [0, 1]) and the point count:
        (h, w, 3) float64 and (h, w) int64 (memory: a few copies of the grid, whatever N and the
        number of categories)."""
        flat, inside = self.pixels(x, y)
        size = self.w * self.h
        sums = np.stack([np.bincount(flat, weights=colours[inside, channel], minlength=size) for channel in range(3)],
                        axis=1)
        return sums.reshape(self.h, self.w, 3), np.bincount(flat, minlength=size).reshape(self.h, self.w)

    def means(self, x: np.ndarray, y: np.ndarray, values: np.ndarray) -> np.ndarray:
        """(h, w) float64 mean of the finite ``values`` per pixel; NaN where a pixel has none."""
        finite = np.isfinite(values)
        flat, inside = self.pixels(x[finite], y[finite])
        numbers = values[finite][inside]
        sums = np.bincount(flat, weights=numbers, minlength=self.w * self.h)
        counts = np.bincount(flat, minlength=self.w * self.h)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sums / counts).reshape(self.h, self.w)


def equalized_alpha(counts: np.ndarray, min_alpha: int) -> np.ndarray:
    """Alpha from ``min_alpha`` to 255 by histogram equalisation of the non-zero counts; 0 where empty.

    Each occupied pixel gets the share of occupied pixels with a count at most its
    own (datashader's ``how="eq_hist"``), so sparse and dense regions both show.
    """
    alpha = np.zeros(counts.shape, dtype=np.uint8)
    occupied = counts > 0
    if not occupied.any():
        return alpha
    levels, inverse, frequency = np.unique(counts[occupied], return_inverse=True, return_counts=True)
    cdf = np.cumsum(frequency) / frequency.sum()
    if len(levels) > 1:
        cdf = (cdf - cdf[0]) / (1.0 - cdf[0])
    else:
        cdf = np.ones(1)
    alpha[occupied] = np.round(min_alpha + (255 - min_alpha) * cdf[inverse.ravel()]).astype(np.uint8)
    return alpha


def shade_mixed(sums: np.ndarray, total: np.ndarray, min_alpha: int) -> np.ndarray:
    """RGBA: each pixel's colour is the mean colour of its points (categories mixed by count).

    Parameters
    ----------
    sums : np.ndarray
        (h, w, 3) summed RGB in [0, 1] of each pixel's points (:meth:`Grid.colour_sums`).
    total : np.ndarray
        (h, w) points per pixel.
    min_alpha : int
        Alpha of the sparsest occupied pixels.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mixed = sums / total[..., None]
    rgb = np.round(np.nan_to_num(mixed) * 255).astype(np.uint8)
    return np.dstack([rgb, equalized_alpha(total, min_alpha)])


def shade_one_colour(counts: np.ndarray, color: np.ndarray, min_alpha: int) -> np.ndarray:
    """RGBA: one colour (RGB in [0, 1]), alpha by equalised density."""
    rgb = np.broadcast_to(np.round(np.asarray(color) * 255).astype(np.uint8), (*counts.shape, 3))
    return np.dstack([rgb, equalized_alpha(counts, min_alpha)])


def shade_linear(means: np.ndarray, colormap: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """RGBA: opaque colour-mapped means (linear over ``span``) where finite, transparent elsewhere.

    ``colormap`` is (L, 3) RGB in [0, 1], from the low end to the high end.
    """
    finite = np.isfinite(means)
    scaled = np.clip((np.where(finite, means, span[0]) - span[0]) / (span[1] - span[0]), 0.0, 1.0)
    level = np.round(scaled * (len(colormap) - 1)).astype(np.int64)
    rgb = np.round(colormap[level] * 255).astype(np.uint8)
    return np.dstack([rgb, np.where(finite, 255, 0).astype(np.uint8)])


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top`` where it has any alpha, else ``bottom`` (``top`` is opaque or empty)."""
    return np.where(top[..., 3:4] > 0, top, bottom)


def spread(image: np.ndarray, px: int) -> np.ndarray:
    """Grow every occupied pixel into a disk of radius ``px``, compositing copies with "over".

    Copies are laid in a fixed order (farthest offsets first, the pixel itself
    last, on top) with source-over compositing on premultiplied float32 colours.
    """
    if px <= 0:
        return image
    offsets = [(dy, dx) for dy in range(-px, px + 1) for dx in range(-px, px + 1)
               if dy * dy + dx * dx <= px * px + px]
    offsets.sort(key=lambda offset: (-(offset[0] ** 2 + offset[1] ** 2), offset))  # (0, 0) last
    h, w = image.shape[:2]
    source = image.astype(np.float32) / 255.0
    source[..., :3] *= source[..., 3:4]  # premultiplied
    result = np.zeros_like(source)
    for dy, dx in offsets:
        target = result[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        layer = source[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        target *= 1.0 - layer[..., 3:4]
        target += layer
    alpha = result[..., 3:4]
    np.divide(result[..., :3], alpha, out=result[..., :3], where=alpha > 0)
    return np.round(np.clip(result, 0.0, 1.0) * 255).astype(np.uint8)


def crowding(image: np.ndarray, px: int) -> float:
    """Share of occupied pixels with another occupied pixel within ``px`` (a square window)."""
    occupied = (image[..., 3] > 0).astype(np.int64)
    n_occupied = int(occupied.sum())
    if n_occupied == 0:
        return 0.0
    table = np.pad(occupied, ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)  # summed-area table
    h, w = occupied.shape
    rows, columns = np.nonzero(occupied)
    top, bottom = np.clip(rows - px, 0, h), np.clip(rows + px + 1, 0, h)
    left, right = np.clip(columns - px, 0, w), np.clip(columns + px + 1, 0, w)
    window = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
    return float((window > 1).sum()) / n_occupied


def dynamic_spread(image: np.ndarray, *, threshold: float = 0.5, max_px: int = 3) -> np.ndarray:
    """Spread by the largest radius up to ``max_px`` that keeps :func:`crowding` at twice
    the radius below ``threshold`` (datashader's ``dynspread`` rule)."""
    px = 0
    for candidate in range(1, max_px + 1):
        if crowding(image, 2 * candidate) > threshold:
            break
        px = candidate
    return spread(image, px)
