"""The MovieLens demo: ratings -> co-occurrence -> a map in which films of a genre sit together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from conftest import read_metrics, run_cli


def knn_agreement(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each item's k nearest map neighbours that carry its label."""
    _, found = cKDTree(xy).query(xy, k + 1)
    return float((labels[found[:, 1:]] == labels[:, None]).mean())


@pytest.mark.slow
def test_the_movielens_map_separates_genres_better_than_chance(tmp_path, capsys):
    out = str(tmp_path / "demo")
    code, stdout, err = run_cli(capsys, "demo", "--out", out)  # movielens is the default dataset
    assert code == 0, err
    assert "map.png" in stdout
    layout = pd.read_parquet(f"{out}/layout.parquet")
    assert {"title", "year", "genres", "genre"} <= set(layout.columns)
    assert 2000 < len(layout) < 2500  # films rated by at least 10 of the 671 users
    xy, genres = layout[["x", "y"]].to_numpy(), layout["genre"].to_numpy()
    agreement = knn_agreement(xy, genres)
    shuffled = [knn_agreement(xy, np.random.default_rng(seed).permutation(genres)) for seed in range(5)]
    print(f"primary-genre kNN agreement in 2-D: {agreement:.3f}; shuffled labels: {np.mean(shuffled):.3f}")
    # measured 0.201 vs 0.074: the map holds genre structure well beyond chance
    assert agreement > max(shuffled) + 0.08
    assert agreement > 2.0 * np.mean(shuffled)
    metrics = read_metrics(out)
    assert metrics["knn_backend"] == "cooccurrence-cosine" and metrics["n_items"] == len(layout)
    assert metrics["trustworthiness@10"] > 0.85
