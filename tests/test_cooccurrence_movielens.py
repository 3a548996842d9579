"""The MovieLens demo: ratings -> co-occurrence -> a map in which films of an era sit together."""

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
def test_the_movielens_map_separates_release_eras_and_genres_better_than_chance(tmp_path, capsys):
    out = str(tmp_path / "demo")
    code, stdout, err = run_cli(capsys, "demo", "--out", out)  # movielens is the default dataset
    assert code == 0, err
    assert "map.png" in stdout and "label agreement@10" in stdout
    layout = pd.read_parquet(f"{out}/layout.parquet")
    assert {"title", "year", "genres", "genre", "era"} <= set(layout.columns)
    assert 2000 < len(layout) < 2500  # films rated by at least 10 of the 671 users
    eras = layout["era"].value_counts()
    assert len(eras) == 5 and eras.min() > 0.15 * len(layout)  # five eras of about equal size
    assert all(low <= high for low, high in (name.split("-") for name in eras.index))

    # The demo's label, the release era, as the run itself scored it (metrics.json).
    metrics = read_metrics(out)
    assert metrics["label"] == "era"
    assert metrics["silhouette_2d"] > 0  # measured 0.111
    assert metrics["label_agreement@10"] >= 3 * metrics["label_agreement_shuffled@10"]  # 0.652 vs 0.202
    assert metrics["knn_backend"] == "cooccurrence-cosine" and metrics["n_items"] == len(layout)
    assert metrics["trustworthiness@10"] > 0.85

    # Genre (each film's rarest genre) sits together too, though less than era.
    xy, genres = layout[["x", "y"]].to_numpy(), layout["genre"].to_numpy()
    agreement = knn_agreement(xy, genres)
    shuffled = [knn_agreement(xy, np.random.default_rng(seed).permutation(genres)) for seed in range(5)]
    assert agreement > 2.5 * np.mean(shuffled)  # measured 2.96x
