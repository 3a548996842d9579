"""Perplexity calibration hits its entropy target; P is symmetric, normalised, and matches openTSNE."""

from __future__ import annotations

import numpy as np
from openTSNE.affinity import PerplexityBasedNN

from tsne_dist.affinity import conditional_probabilities, joint_probabilities
from tsne_dist.datasets import load_digits
from tsne_dist.neighbors import nearest_neighbors


def test_each_row_reaches_the_target_perplexity():
    rng = np.random.default_rng(0)
    distances = np.sort(rng.gamma(2.0, 3.0, size=(500, 60)), axis=1)
    for perplexity in (5.0, 20.0):
        probabilities = conditional_probabilities(distances, perplexity)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
        entropy = -(probabilities * np.log(np.where(probabilities > 0, probabilities, 1.0))).sum(axis=1)
        np.testing.assert_allclose(np.exp(entropy), perplexity, rtol=1e-4)


def test_joint_probabilities_match_opentsne_on_digits():
    vectors, _ = load_digits()
    knn = nearest_neighbors(vectors, 90, backend="bruteforce")
    P = joint_probabilities(knn.indices, knn.distances, 30.0)
    assert P.dtype == np.float32 and P.indices.dtype == np.int32
    assert abs(P.sum() - 1.0) < 1e-5
    assert abs(P - P.T).max() < 1e-9
    assert P.diagonal().sum() == 0
    reference = PerplexityBasedNN(vectors.astype(np.float64), perplexity=30, method="exact", random_state=0).P
    assert abs(P - reference).sum() < 1e-3


def test_identical_and_zero_distances_give_finite_uniform_rows():
    probabilities = conditional_probabilities(np.zeros((10, 30)), 10.0)
    np.testing.assert_allclose(probabilities, 1 / 30)
    mixed = np.zeros((4, 30))
    mixed[:, 20:] = 5.0  # 20 duplicates at distance 0, more than the perplexity
    probabilities = conditional_probabilities(mixed, 10.0)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
