"""Render a 2-D t-SNE layout to a PNG.

:mod:`.raster` rasterises the points with NumPy (cost O(N), so 10 million points are fine);
matplotlib only frames that raster and draws the title and the legend or colour
bar. Matplotlib is used through :class:`matplotlib.figure.Figure` and the Agg
canvas directly, so importing this module never changes the pyplot backend of
the caller.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backend_bases import RendererBase
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D

from .raster import Grid, dynamic_spread, over, shade_linear, shade_mixed, shade_one_colour, spread

__all__ = ["categorical_legend", "is_categorical", "render_map"]

logger = logging.getLogger(__name__)

#: Integer columns with at most this many distinct values are categories.
MAX_INTEGER_CATEGORIES = 50
OTHER_LABEL = "other"
MISSING_LABEL = "missing"
POINT_COLOR = "#1f4e99"
OTHER_COLOR = "#9a9a9a"
MISSING_COLOR = "#c4c4c4"
NAN_COLOR = "#bdbdbd"
FRAME_COLOR = "#d0d0d0"
BACKGROUND = "white"
CONTINUOUS_CMAP = "viridis"
_DPI = 100
_MAX_LABEL_CHARS = 40
_MIN_SIZE_PX = 64

Rect = tuple[int, int, int, int]  # left, bottom, width, height in figure pixels
Shader = Callable[[Grid], np.ndarray]  # a pixel grid -> (h, w, 4) uint8 RGBA, row 0 at the bottom


# --------------------------------------------------------------------------- API


def render_map(
    xy: np.ndarray,
    path: str | os.PathLike[str],
    values: pd.Series | None = None,
    *,
    title: str = "",
    top_k: int = 20,
    width: int = 1000,
    height: int = 1000,
) -> str:
    """Render a 2-D layout to a PNG, coloured by an optional per-point value.

    Parameters
    ----------
    xy : numpy.ndarray
        Finite coordinates, shape ``(N, 2)``, ``N >= 1``.
    path : str or os.PathLike
        Where to write the PNG; missing parent folders are created.
    values : pandas.Series, optional
        One value per point, matched by position (the index is ignored).
        ``None`` draws every point in one colour. Categorical values
        (object, string, category or bool dtype, or an integer dtype with at
        most 50 distinct values) colour the ``top_k`` most frequent categories
        and merge the rest into "other" and nulls into "missing", with a
        legend of counts. Other numeric values are averaged per pixel and
        shaded with a colour map plus a colour bar; NaN/inf values are drawn
        in grey underneath.
    title : str, optional
        Figure title; none when empty.
    top_k : int, optional
        How many categories get their own colour (default 20).
    width, height : int, optional
        Size of the PNG in pixels (default 1000 x 1000).

    Returns
    -------
    str
        How points were coloured: ``single``, ``categorical`` or ``continuous``.

    Raises
    ------
    ValueError
        If ``xy`` is not a non-empty finite ``(N, 2)`` array, ``values`` does
        not have ``N`` entries, ``top_k`` is negative, or the size is below
        64 pixels.

    Notes
    -----
    Both axes use the same scale (a t-SNE map has no preferred direction), and
    the data range is padded so points on the edge stay visible. Where the
    map is sparse, points are spread by up to 3 pixels (a fixed 2 up to 5,000
    points, 1 up to 20,000). The raster is NumPy (:mod:`.raster`), so there is
    no compile step in a fresh process.
    """
    started = time.perf_counter()
    xy = _check_xy(xy)
    values = _check_values(values, len(xy))
    _check_options(top_k, width, height)

    lo, hi = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
    center = (lo + hi) / 2
    frame = _point_frame(xy, center)
    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor=BACKGROUND)
    renderer = FigureCanvasAgg(fig).get_renderer()
    top_px = _add_title(fig, title, height)

    if values is None:
        mode, right_px, shader = "single", 0, _single_shader(frame)
    elif is_categorical(values):
        mode = "categorical"
        right_px, shader = _categorical_panel(fig, renderer, frame, values, top_k, top_px)
    else:
        mode = "continuous"
        right_px, shader = _continuous_panel(fig, renderer, frame, values, top_px)

    rect = _plot_rect(width, height, top_px, right_px)
    x_range, y_range = _data_ranges(hi - lo, rect[2], rect[3])
    grid = Grid(w=rect[2], h=rect[3], x_range=x_range, y_range=y_range)
    image = _spread(shader(grid), len(xy))
    _draw_image(fig, image, rect)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=_DPI, facecolor=BACKGROUND, format="png")
    logger.debug("rendered a %s map of %d points (%dx%d px) in %.2f s", mode, len(xy), width, height,
                 time.perf_counter() - started)
    return mode


def is_categorical(values: pd.Series) -> bool:
    """Tell whether ``render_map`` colours these values by category.

    Parameters
    ----------
    values : pandas.Series
        Per-point values.

    Returns
    -------
    bool
        ``True`` for bool, object, string, category and any other non-numeric
        dtype, and for integer dtypes with at most 50 distinct values;
        ``False`` for floats and other integers (shaded continuously).
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_integer_dtype(dtype):
        return bool(values.nunique(dropna=True) <= MAX_INTEGER_CATEGORIES)
    return not pd.api.types.is_float_dtype(dtype)


def categorical_legend(values: pd.Series, top_k: int = 20) -> list[tuple[str, int]]:
    """Legend entries for categorical values: the categories ``render_map`` shows.

    Parameters
    ----------
    values : pandas.Series
        Per-point categorical values.
    top_k : int, optional
        How many of the most frequent categories are kept (default 20).

    Returns
    -------
    list of (str, int)
        ``(label, count)`` for the kept categories in descending count order
        (ties in order of first appearance), then ``("other", n)`` for the
        merged rest and ``("missing", n)`` for nulls, each only when ``n > 0``.
        Counts sum to ``len(values)``; labels are unique.
    """
    return _categorical_codes(values, top_k).entries


# ------------------------------------------------------------------ validation


def _check_xy(xy: np.ndarray) -> np.ndarray:
    """Return ``xy`` as a float64 ``(N, 2)`` array, or raise ``ValueError``."""
    arr = np.asarray(xy)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"xy must have shape (N, 2) with N >= 1, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"xy must be a real numeric array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("xy must be finite (no NaN or inf coordinates)")
    return arr


def _check_values(values: pd.Series | None, n: int) -> pd.Series | None:
    """Return ``values`` as a Series of length ``n`` (or ``None``)."""
    if values is None:
        return None
    if not isinstance(values, pd.Series):
        values = pd.Series(values)
    if len(values) != n:
        raise ValueError(f"values has {len(values)} entries but xy has {n} points")
    return values.reset_index(drop=True)


def _check_options(top_k: int, width: int, height: int) -> None:
    """Raise ``ValueError`` for a negative ``top_k`` or a too small image."""
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if width < _MIN_SIZE_PX or height < _MIN_SIZE_PX:
        raise ValueError(f"width and height must be >= {_MIN_SIZE_PX} px, got {width}x{height}")


# ----------------------------------------------------------------- categorical


@dataclass(frozen=True)
class _Categories:
    """Per-point legend codes and the legend they index."""

    codes: pd.Categorical
    entries: list[tuple[str, int]]
    n_kept: int
    has_other: bool
    has_missing: bool


def _categorical_codes(values: pd.Series, top_k: int) -> _Categories:
    """Map each value to its legend entry in O(N); see :func:`categorical_legend`."""
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    is_null = codes < 0
    counts = np.bincount(codes[~is_null], minlength=len(uniques))
    first = np.argsort(-counts, kind="stable")[:top_k]
    kept = first[counts[first] > 0]
    n_missing = int(is_null.sum())
    n_other = len(values) - n_missing - int(counts[kept].sum())

    labels = [_short_label(uniques[i]) for i in kept]
    tallies = [int(counts[i]) for i in kept]
    remap = np.full(len(uniques), len(kept), dtype=np.int64)  # not kept -> "other"
    remap[kept] = np.arange(len(kept))
    point_codes = np.where(is_null, 0, remap[np.maximum(codes, 0)] if len(uniques) else 0)  # nulls: set below
    for extra, n_extra in ((OTHER_LABEL, n_other), (MISSING_LABEL, n_missing)):
        if n_extra > 0:
            labels.append(extra)
            tallies.append(n_extra)
    if n_missing > 0:
        point_codes[is_null] = len(labels) - 1
    labels = _unique_labels(labels)
    return _Categories(
        codes=pd.Categorical.from_codes(point_codes, categories=labels),
        entries=list(zip(labels, tallies)),
        n_kept=len(kept),
        has_other=n_other > 0,
        has_missing=n_missing > 0,
    )


def _short_label(value: object) -> str:
    """Label text for one category; long ones keep their start and end around an ellipsis."""
    text = str(value)
    if len(text) <= _MAX_LABEL_CHARS:
        return text
    tail = _MAX_LABEL_CHARS // 3
    return text[: _MAX_LABEL_CHARS - tail - 1] + "\u2026" + text[-tail:]


def _unique_labels(labels: list[str]) -> list[str]:
    """Make labels unique by suffixing repeats (``"1"`` and ``1`` both print 1)."""
    seen: set[str] = set()
    out = []
    for label in labels:
        candidate, k = label, 2
        while candidate in seen:
            candidate, k = f"{label} #{k}", k + 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _category_colors(cats: _Categories) -> dict[str, str]:
    """Distinct glasbey colours for kept categories; greys for other and missing."""
    palette = _category_palette()
    extras = [OTHER_COLOR] * cats.has_other + [MISSING_COLOR] * cats.has_missing
    colors = [palette[i % len(palette)] for i in range(cats.n_kept)] + extras
    return {label: color for (label, _), color in zip(cats.entries, colors)}


def _category_palette(min_chroma: float = 0.15) -> list[str]:
    """Glasbey colours minus the greyish ones, which "other"/"missing" would resemble."""
    import colorcet  # 0.5 s to import: only for categorical maps
    rgb = np.array([to_rgb(c) for c in colorcet.palette["glasbey_category10"]])
    chroma = rgb.max(axis=1) - rgb.min(axis=1)
    return [to_hex(c) for c in rgb[chroma >= min_chroma]]


def _categorical_panel(
    fig: Figure,
    renderer: RendererBase,
    frame: pd.DataFrame,
    values: pd.Series,
    top_k: int,
    top_px: int,
) -> tuple[int, Shader]:
    """Add the category column and legend; return legend width and shader."""
    cats = _categorical_codes(values, top_k)
    colors = _category_colors(cats)
    codes = np.asarray(cats.codes.codes)
    legend_px = _add_legend(fig, renderer, cats.entries, colors, _series_name(values), top_px)
    rgb = np.array([to_rgb(colors[label]) for label, _ in cats.entries])

    def shade(grid: Grid) -> np.ndarray:
        sums, total = grid.colour_sums(frame["x"].to_numpy(), frame["y"].to_numpy(), rgb[codes])
        return shade_mixed(sums, total, min_alpha=110)

    return legend_px, shade


# ------------------------------------------------------------------ continuous


def _continuous_panel(
    fig: Figure,
    renderer: RendererBase,
    frame: pd.DataFrame,
    values: pd.Series,
    top_px: int,
) -> tuple[int, Shader]:
    """Add the value column and colour bar; return bar width and shader."""
    raw = values.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = np.where(np.isfinite(raw), raw, np.nan)  # a copy: never edit the caller's data
    n_finite = int(np.isfinite(numbers).sum())
    frame["v"] = numbers
    cmap = colormaps[CONTINUOUS_CMAP](np.linspace(0.0, 1.0, 256))[:, :3]
    if n_finite == 0:
        logger.warning("no finite values to colour by; drawing all %d points in grey", len(numbers))
        return 0, _continuous_shader(frame, cmap, None)
    span = (float(np.nanmin(numbers)), float(np.nanmax(numbers)))
    if span[1] <= span[0]:  # one value: widen so both the shading and the bar work
        pad = max(abs(span[0]) * 1e-3, 0.5)
        span = (span[0] - pad, span[1] + pad)
    if n_finite < len(numbers):
        logger.info("%d of %d values are NaN/inf; drawn in grey", len(numbers) - n_finite, len(numbers))
    bar_px = _add_colorbar(fig, renderer, span, _series_name(values), top_px)
    return bar_px, _continuous_shader(frame, cmap, span)


def _continuous_shader(frame: pd.DataFrame, cmap: np.ndarray, span: tuple[float, float] | None) -> Shader:
    """Shader: every point in grey, under the per-pixel mean of finite values."""

    def shade(grid: Grid) -> np.ndarray:
        x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
        counts = grid.counts(x, y)
        grey = shade_one_colour(counts, np.array(to_rgb(NAN_COLOR)), min_alpha=255)
        if span is None:
            return grey
        return over(shade_linear(grid.means(x, y, frame["v"].to_numpy()), cmap, span), grey)

    return shade


def _spread(image: np.ndarray, n_points: int) -> np.ndarray:
    """Grow points so a sparse map stays readable: fixed disks for small N, dynamic beyond."""
    if n_points <= 20_000:
        return spread(image, px=2 if n_points <= 5_000 else 1)
    return dynamic_spread(image, threshold=0.5, max_px=3)


def _single_shader(frame: pd.DataFrame) -> Shader:
    """Shader: one colour, alpha by point density."""

    def shade(grid: Grid) -> np.ndarray:
        counts = grid.counts(frame["x"].to_numpy(), frame["y"].to_numpy())
        return shade_one_colour(counts, np.array(to_rgb(POINT_COLOR)), min_alpha=110)

    return shade


# ---------------------------------------------------------------------- figure


def _font_pt(height: int) -> float:
    """Base font size in points for an image of this height."""
    return float(np.clip(height / 85.0, 6.0, 12.0))


def _margin_px(width: int, height: int) -> int:
    """Outer margin of the figure in pixels."""
    return max(4, round(0.015 * min(width, height)))


def _add_title(fig: Figure, title: str, height: int) -> int:
    """Draw the title at the top; return the pixels it takes (margin included)."""
    width = round(fig.get_figwidth() * _DPI)
    margin = _margin_px(width, height)
    if not title:
        return margin
    size = _font_pt(height) * 1.3
    band = round(size * _DPI / 72 * 1.8)
    fig.text(0.5, 1 - (margin + band / 2) / height, title, ha="center", va="center", fontsize=size)
    return margin + band


def _add_legend(
    fig: Figure,
    renderer: RendererBase,
    entries: list[tuple[str, int]],
    colors: dict[str, str],
    name: str | None,
    top_px: int,
) -> int:
    """Draw the category legend at the top right, shrunk to fit; return its width in px."""
    width, height = (round(v * _DPI) for v in fig.get_size_inches())
    margin = _margin_px(width, height)
    room_w, room_h = 0.35 * width, height - top_px - margin
    size = _font_pt(height)
    while True:
        legend = _legend_at(fig, entries, colors, name, size, (1 - margin / width, 1 - top_px / height))
        box = legend.get_window_extent(renderer)
        shrink = min(room_w / box.width, room_h / box.height)
        if shrink >= 1.0 or size <= 3.0:
            break
        legend.remove()
        size = max(3.0, size * shrink * 0.97)
    return round(box.width) + 2 * margin


def _legend_at(
    fig: Figure,
    entries: list[tuple[str, int]],
    colors: dict[str, str],
    name: str | None,
    size: float,
    corner: tuple[float, float],
) -> Legend:
    """One figure legend, its upper right corner at ``corner`` (figure fraction)."""
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=size * 0.8,
               markerfacecolor=colors[label], markeredgecolor="none")
        for label, _ in entries
    ]
    labels = [f"{label} ({count:,})" for label, count in entries]
    return fig.legend(
        handles, labels, title=name, loc="upper right", frameon=False, bbox_to_anchor=corner,
        fontsize=size, title_fontsize=size, borderaxespad=0.0, borderpad=0.0,
        handletextpad=0.3, labelspacing=0.35, alignment="left",
    )


def _add_colorbar(
    fig: Figure,
    renderer: RendererBase,
    span: tuple[float, float],
    name: str | None,
    top_px: int,
) -> int:
    """Draw a colour bar for ``span`` at the right; return its width in px."""
    width, height = (round(v * _DPI) for v in fig.get_size_inches())
    margin = _margin_px(width, height)
    bar_w = max(8, round(0.018 * width))
    bar_h = 0.6 * (height - top_px - margin)
    bottom = height - top_px - bar_h
    cax = fig.add_axes((0.5, bottom / height, bar_w / width, bar_h / height))
    mappable = ScalarMappable(norm=Normalize(*span), cmap=colormaps[CONTINUOUS_CMAP])
    bar = fig.colorbar(mappable, cax=cax)
    bar.ax.tick_params(labelsize=_font_pt(height))
    if name:
        bar.set_label(name, fontsize=_font_pt(height))
    box = cax.get_tightbbox(renderer)  # bar plus tick labels and label, in px
    left = 0.5 * width + (width - margin - box.x1)
    cax.set_position((left / width, bottom / height, bar_w / width, bar_h / height))
    return round(box.width) + 2 * margin


def _plot_rect(width: int, height: int, top_px: int, right_px: int) -> Rect:
    """Pixel rectangle left for the points, after title and side panel."""
    margin = _margin_px(width, height)
    right_px = min(right_px, round(0.5 * width))
    w = max(16, width - margin - max(right_px, margin))
    h = max(16, height - top_px - margin)
    return margin, margin, w, h


def _point_frame(xy: np.ndarray, center: np.ndarray) -> pd.DataFrame:
    """Points as float32 columns ``x``, ``y`` relative to ``center``.

    Centring first keeps float32 far more precise than a pixel, and float32
    halves the memory of the copy the raster reads (10 M points: 80 MB).
    """
    return pd.DataFrame({
        "x": (xy[:, 0] - center[0]).astype(np.float32),
        "y": (xy[:, 1] - center[1]).astype(np.float32),
    })


def _data_ranges(
    span: np.ndarray, w: int, h: int, pad: float = 0.03
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Equal-scale x and y ranges, centred on 0, for data of extent ``span``.

    The larger extent (relative to the raster side) fills the ``w`` x ``h``
    raster minus a ``pad`` fraction on each side; identical points (zero
    extent) get a window one unit wide.
    """
    per_px = max(span[0] / w, span[1] / h) * (1 + 2 * pad)
    if not per_px > 1e-30:  # all points identical (or float32 would flush them to 0)
        per_px = 1.0 / min(w, h)
    half_w, half_h = per_px * w / 2, per_px * h / 2
    return (-half_w, half_w), (-half_h, half_h)


def _draw_image(fig: Figure, image: np.ndarray, rect: Rect) -> None:
    """Place the (h, w, 4) raster pixel for pixel at ``rect`` and frame it without axes."""
    left, bottom, w, h = rect
    width, height = (round(v * _DPI) for v in fig.get_size_inches())
    fig.figimage(np.ascontiguousarray(image), xo=left, yo=bottom, origin="lower", zorder=1)
    ax = fig.add_axes((left / width, bottom / height, w / width, h / height), facecolor="none", zorder=2)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(FRAME_COLOR)
        spine.set_linewidth(0.8)


def _series_name(values: pd.Series) -> str | None:
    """The series name as legend title text, if it has one."""
    return None if values.name is None else str(values.name)
