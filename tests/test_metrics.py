"""Sampled metrics equal their exact definitions where both can be computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.manifold import trustworthiness

from tsne_dist.metrics import collapse_check, neighbour_quality, silhouettes


def test_trustworthiness_equals_sklearn_when_every_item_is_sampled():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(800, 12))
    layout = vectors[:, :2] + 0.5 * rng.normal(size=(800, 2))
    quality = neighbour_quality(vectors, layout, k=10, sample=5000)
    assert quality.n_sampled == 800
    assert abs(quality.trustworthiness - trustworthiness(vectors, layout, n_neighbors=10)) < 1e-12


def test_recall_is_one_for_a_perfect_map_and_low_for_a_random_one():
    rng = np.random.default_rng(1)
    flat = rng.normal(size=(1000, 2))
    vectors = np.hstack([flat, np.zeros((1000, 3))])  # 2-D data in 5-D
    assert neighbour_quality(vectors, flat, k=10).recall == 1.0
    shuffled = neighbour_quality(vectors, rng.permutation(flat), k=10)
    assert shuffled.recall < 0.05 and shuffled.trustworthiness < 0.6


def test_sampled_estimates_are_close_to_full_values():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(3000, 8))
    layout = vectors[:, :2] + 0.3 * rng.normal(size=(3000, 2))
    full = neighbour_quality(vectors, layout, k=10, sample=3000)
    sampled = neighbour_quality(vectors, layout, k=10, sample=1000, seed=5)
    assert sampled.n_sampled == 1000
    assert abs(sampled.recall - full.recall) < 0.03
    assert abs(sampled.trustworthiness - full.trustworthiness) < 0.01


def test_silhouettes_need_two_labels_and_separate_clusters():
    rng = np.random.default_rng(3)
    labels = pd.Series(np.repeat(["a", "b"], 200))
    vectors = rng.normal(size=(400, 5)) + np.repeat([[0.0], [8.0]], 200, axis=0)
    layout = vectors[:, :2]
    scores = silhouettes(vectors, layout, labels)
    assert scores["silhouette_2d"] > 0.5 and scores["silhouette_hd"] > 0.5
    assert silhouettes(vectors, layout, pd.Series(["a"] * 400)) is None
    with_missing = labels.where(np.arange(400) % 3 > 0)
    assert silhouettes(vectors, layout, with_missing) is not None


def test_collapse_warnings():
    rng = np.random.default_rng(4)
    healthy, warnings = collapse_check(rng.normal(size=(2000, 32)))
    assert warnings == [] and healthy["effective_rank"] > 20
    line = np.outer(rng.normal(size=500), rng.normal(size=16)) + 100.0
    figures, warnings = collapse_check(line)
    assert figures["effective_rank"] < 1.5
    assert any("effective dimensions" in warning for warning in warnings)
    assert any("mean pairwise cosine" in warning for warning in warnings)
    dead = rng.normal(size=(500, 20))
    dead[:, 5:] = 1.0
    assert any("never vary" in warning for warning in collapse_check(dead)[1])
    assert collapse_check(np.ones((100, 4)))[1] == ["all vectors are identical: the map cannot show any structure"]
