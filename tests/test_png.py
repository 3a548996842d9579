"""Tests for the PNG map renderer (tsne_dist.viz.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tsne_dist.viz.png import categorical_legend, is_categorical, render_map

WIDTH, HEIGHT = 400, 300
VIRIDIS_LOW = np.array([68, 1, 84])  # viridis(0)
VIRIDIS_HIGH = np.array([253, 231, 37])  # viridis(1)


def _render(tmp_path: Path, xy: np.ndarray, values: pd.Series | None = None, **kwargs) -> np.ndarray:
    """Render to a PNG, check it is a PNG of the asked size, return RGB pixels."""
    path = tmp_path / "map.png"
    kwargs.setdefault("width", WIDTH)
    kwargs.setdefault("height", HEIGHT)
    render_map(xy, str(path), values, **kwargs)
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == (kwargs["width"], kwargs["height"])
        return np.asarray(img.convert("RGB")).astype(int)


def _inked(rgb: np.ndarray) -> np.ndarray:
    """Mask of pixels clearly darker than the white background."""
    return rgb.min(axis=-1) < 235


def _colored(rgb: np.ndarray) -> np.ndarray:
    """Mask of saturated pixels (not white, not grey, not black text)."""
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) > 60


def _vertical_clusters(n_per: int = 400, seed: int = 0) -> np.ndarray:
    """Three tight clusters stacked vertically at (0, 0), (0, 10), (0, 20).

    Stacked vertically, they sit in the horizontal middle of the plot area,
    well left of the legend or colour bar on the right.
    """
    rng = np.random.default_rng(seed)
    centers = np.repeat([[0.0, 0.0], [0.0, 10.0], [0.0, 20.0]], n_per, axis=0)
    return centers + rng.normal(scale=0.3, size=centers.shape)


def test_png_has_requested_size_and_draws_points(tmp_path: Path) -> None:
    xy = np.random.default_rng(1).normal(size=(500, 2))
    rgb = _render(tmp_path, xy, title="a title", width=320, height=240)
    assert rgb.shape == (240, 320, 3)
    assert _inked(rgb).sum() > 200


def test_categorical_clusters_get_distinct_colours(tmp_path: Path) -> None:
    xy = _vertical_clusters()
    values = pd.Series(np.repeat(["alpha", "beta", "gamma"], 400), name="group")
    rgb = _render(tmp_path, xy, values, title="groups")
    plot = rgb[:, : int(WIDTH * 0.6)]  # left of the legend
    colored = _colored(plot)

    quantized = {tuple(px // 32) for px in plot[colored]}
    assert len(quantized) >= 3

    bands = np.array_split(np.arange(HEIGHT), 3)  # one cluster per horizontal band
    means = []
    for rows in bands:
        band, mask = plot[rows], colored[rows]
        assert mask.sum() > 30, "each cluster must be drawn in colour"
        means.append(band[mask].mean(axis=0))
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.linalg.norm(means[i] - means[j]) > 60


def test_categorical_legend_collapses_to_top_k() -> None:
    values = pd.Series(list("aaaaabbbbcccdde") + [None, None])
    entries = categorical_legend(values, top_k=2)
    assert entries == [("a", 5), ("b", 4), ("other", 6), ("missing", 2)]
    assert sum(count for _, count in entries) == len(values)


def test_categorical_legend_without_extras_and_with_clashing_labels() -> None:
    assert categorical_legend(pd.Series(["x", "y", "x"]), top_k=5) == [("x", 2), ("y", 1)]
    entries = categorical_legend(pd.Series(["other", "other", "b", "c"]), top_k=1)
    labels = [label for label, _ in entries]
    assert entries[0] == ("other", 2)
    assert len(set(labels)) == len(labels) == 2
    assert entries[1][1] == 2


def test_categorical_legend_ignores_index_and_counts_integers() -> None:
    values = pd.Series([3, 3, 1, 2, 3], index=[10, 4, 7, 0, 2])
    assert categorical_legend(values, top_k=20) == [("3", 3), ("1", 1), ("2", 1)]


def test_is_categorical_follows_dtype_rules() -> None:
    assert is_categorical(pd.Series(["a", "b"]))
    assert is_categorical(pd.Series([True, False]))
    assert is_categorical(pd.Series(["a", "b"], dtype="category"))
    assert is_categorical(pd.Series(np.arange(50) % 7))
    assert is_categorical(pd.Series([1, None, 2], dtype="Int64"))
    assert not is_categorical(pd.Series(np.arange(51)))
    assert not is_categorical(pd.Series([0.5, 1.5, 0.5]))


def test_top_k_render_with_many_categories(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    xy = rng.normal(size=(2000, 2))
    values = pd.Series(rng.integers(0, 40, size=2000).astype(str))
    values[::2] = "big"
    values[1::10] = None
    rgb = _render(tmp_path, xy, values, top_k=1)  # "big", "other", "missing"
    assert _colored(rgb).sum() > 100  # "big" in colour
    assert (_inked(rgb) & ~_colored(rgb)).sum() > 100  # "other"/"missing" in grey


def test_continuous_values_follow_colormap_and_bar(tmp_path: Path) -> None:
    y = np.linspace(0.0, 100.0, 2000)
    xy = np.column_stack([np.zeros_like(y), y])
    rgb = _render(tmp_path, xy, pd.Series(y, name="score"))

    plot = rgb[:, : int(WIDTH * 0.6)]
    rows = np.flatnonzero(_colored(plot).any(axis=1))
    top, bottom = plot[rows[0]], plot[rows[-1]]
    top_px = top[_colored(top[None])[0]].mean(axis=0)
    bottom_px = bottom[_colored(bottom[None])[0]].mean(axis=0)
    assert np.linalg.norm(top_px - VIRIDIS_HIGH) < 60  # high values at the top
    assert np.linalg.norm(bottom_px - VIRIDIS_LOW) < 60

    bar = rgb[:, int(WIDTH * 0.75):].reshape(-1, 3)
    assert (np.linalg.norm(bar - VIRIDIS_HIGH, axis=1) < 30).any()
    assert (np.linalg.norm(bar - VIRIDIS_LOW, axis=1) < 30).any()


def test_nan_values_are_drawn_grey(tmp_path: Path) -> None:
    xy = _vertical_clusters(n_per=200)
    values = pd.Series(np.where(np.arange(600) < 200, np.nan, np.arange(600.0)))
    plot = _render(tmp_path, xy, values)[:, : int(WIDTH * 0.6)]
    bottom_band = plot[2 * HEIGHT // 3 :]  # the cluster at y=0 is all NaN
    grey = _inked(bottom_band) & ~_colored(bottom_band)
    assert grey.sum() > 30
    assert _colored(bottom_band).sum() == 0

    all_nan = _render(tmp_path, xy, pd.Series(np.full(600, np.nan)))
    assert _inked(all_nan).sum() > 30
    assert _colored(all_nan).sum() == 0


@pytest.mark.parametrize(
    ("xy", "values"),
    [
        (np.full((50, 2), 3.5), None),
        (np.full((51, 2), -2.0), pd.Series(["a", "b", "c"] * 17)),
        (np.full((50, 2), 1e9), pd.Series(np.linspace(0, 1, 50))),
        (np.array([[1.0, 2.0]]), None),
        (np.array([[1.0, 2.0]]), pd.Series([0.5])),
    ],
    ids=["same-single", "same-categorical", "same-continuous-far", "one", "one-continuous"],
)
def test_degenerate_layouts_render_a_visible_point(tmp_path: Path, xy: np.ndarray, values: pd.Series | None) -> None:
    rgb = _render(tmp_path, xy, values)
    plot = rgb[:, : int(WIDTH * 0.6)]
    assert _inked(plot).sum() >= 9  # spread to more than one pixel


@pytest.mark.parametrize("shape", [(10,), (10, 3), (0, 2), (2, 5, 2)])
def test_bad_xy_shape_raises(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        render_map(np.zeros(shape), str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_bad_values_length_and_options_raise(tmp_path: Path) -> None:
    xy = np.zeros((5, 2))
    with pytest.raises(ValueError, match="entries"):
        render_map(xy, str(tmp_path / "x.png"), pd.Series([1, 2, 3]))
    with pytest.raises(ValueError, match="top_k"):
        render_map(xy, str(tmp_path / "x.png"), pd.Series(list("abcde")), top_k=-1)
    with pytest.raises(ValueError, match="finite"):
        render_map(np.array([[0.0, np.nan]]), str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_the_numpy_raster_counts_equalises_and_spreads() -> None:
    from tsne_dist.viz.raster import Grid, dynamic_spread, equalized_alpha, shade_mixed, spread

    grid = Grid(w=10, h=8, x_range=(0.0, 1.0), y_range=(0.0, 1.0))
    x = np.array([0.05, 0.05, 0.95, 1.0, 0.5, 2.0])  # x = 1.0 is the last column; 2.0 is outside
    y = np.array([0.05, 0.05, 0.95, 1.0, 0.5, 0.5])
    colours = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])[np.array([0, 1, 1, 1, 0, 0])]
    sums, total = grid.colour_sums(x, y, colours)
    assert total.sum() == 5 and total[0, 0] == 2 and total[7, 9] == 2 and sums[7, 9].tolist() == [0, 0, 2]
    alpha = equalized_alpha(total, min_alpha=110)
    assert alpha[1, 1] == 0 and alpha[4, 5] == 110 and alpha[0, 0] == alpha[7, 9] == 255
    image = shade_mixed(sums, total, min_alpha=110)
    assert image[0, 0, :3].tolist() == [128, 0, 128] and image[4, 5, :3].tolist() == [255, 0, 0]  # mixed by count

    single = np.zeros((9, 9, 4), dtype=np.uint8)
    single[4, 4] = [10, 20, 30, 255]
    grown = spread(single, 1)
    assert (grown[..., 3] > 0).sum() == 9 and (grown[grown[..., 3] > 0][:, :3] == [10, 20, 30]).all()
    assert (dynamic_spread(single)[..., 3] > 0).sum() > 9  # a lone point grows
    dense = np.full((9, 9, 4), 255, dtype=np.uint8)
    np.testing.assert_array_equal(dynamic_spread(dense), dense)  # a full image does not


def test_a_categorical_column_with_only_missing_values_draws_every_point_as_missing(tmp_path: Path) -> None:
    xy = np.random.default_rng(0).normal(size=(50, 2))
    assert render_map(xy, tmp_path / "m.png", pd.Series([None] * 50, dtype=object)) == "categorical"
    assert categorical_legend(pd.Series([None] * 50, dtype=object)) == [("missing", 50)]
