"""Our engine: FFT repulsion vs the exact sum, CPU twins vs the xp code, engine and repulsion choice, quality vs openTSNE."""

from __future__ import annotations

import numpy as np
import pytest
from openTSNE import TSNEEmbedding
from openTSNE.affinity import Affinities

import tsne_dist
from tsne_dist.affinity import joint_probabilities
from tsne_dist.datasets import load_digits, synthetic_catalog
from tsne_dist.metrics import neighbour_quality
from tsne_dist.neighbors import nearest_neighbors
from tsne_dist.tsne import choose_engine, pca_init, resolve_repulsion
from tsne_dist.tsne.gradient import (attraction, attraction_numba, choose_boxes, edge_list, exact_repulsion,
                                     repulsion)
from tsne_dist.tsne.optimizer import Embedding


def clustered_layout(n_points: int, seed: int = 0) -> np.ndarray:
    """A t-SNE-like layout: 12 blobs of different sizes in a unit-ish square."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1, 1, size=(12, 2))
    which = rng.integers(0, 12, size=n_points)
    return centres[which] + rng.normal(size=(n_points, 2)) * rng.uniform(0.02, 0.12, size=12)[which, None]


@pytest.mark.parametrize("span", [0.05, 5.0, 40.0, 120.0])
@pytest.mark.parametrize("dof", [1.0, 0.6])
def test_fft_repulsion_matches_exact_sum(span, dof):
    y = clustered_layout(2000) * span / 2
    exact_forces, exact_z = exact_repulsion(y, dof)
    # accurate grid: 4 nodes per box, 2 boxes per unit of span
    forces, z = repulsion(y, dof, n_interpolation_points=4, boxes_per_unit=2.0, max_boxes=1000)
    assert abs(z - exact_z) / exact_z < 1e-3
    assert np.linalg.norm(forces - exact_forces) / np.linalg.norm(exact_forces) < 1e-3
    # openTSNE's default grid (3 nodes, one box per unit, at least 50): a few per cent at large spans
    forces, z = repulsion(y, dof)
    assert abs(z - exact_z) / exact_z < 1e-2
    assert np.linalg.norm(forces - exact_forces) / np.linalg.norm(exact_forces) < 5e-2


def test_boxes_grow_with_the_span_and_are_capped():
    assert choose_boxes(3.0) == 50
    assert choose_boxes(180.2) == 181
    assert choose_boxes(10_000.0) == 500
    assert choose_boxes(100.0, boxes_per_unit=2.0) == 200


def test_cpu_twins_equal_the_xp_code():
    vectors, _ = synthetic_catalog(1500, 16, seed=3)
    knn = nearest_neighbors(vectors, 30, backend="bruteforce")
    P = joint_probabilities(knn.indices, knn.distances, 10.0)
    edges = edge_list(P)
    y = clustered_layout(1500, seed=1) * 20
    xp_forces, xp_kl = attraction(y, edges, 0.8, with_kl=True)
    nb_forces, nb_kl = attraction_numba(y, edges, 0.8, with_kl=True)
    np.testing.assert_allclose(nb_forces, xp_forces, rtol=1e-9, atol=1e-15)
    assert abs(nb_kl - xp_kl) < 1e-9 * abs(xp_kl)
    xp_rep, xp_z = repulsion(y, use_numba=False)
    nb_rep, nb_z = repulsion(y, use_numba=True)
    np.testing.assert_allclose(nb_rep, xp_rep, rtol=1e-9, atol=1e-15)
    assert abs(nb_z - xp_z) < 1e-9 * xp_z


def test_optimising_further_equals_one_long_run():
    vectors, _ = synthetic_catalog(800, 16, seed=4)
    knn = nearest_neighbors(vectors, 30, backend="bruteforce")
    P = joint_probabilities(knn.indices, knn.distances, 10.0)
    init = pca_init(vectors, 0)
    once = Embedding(init, P).optimize(120, exaggeration=12, momentum=0.5)
    twice = Embedding(init, P).optimize(60, exaggeration=12, momentum=0.5).optimize(60, exaggeration=12, momentum=0.5)
    np.testing.assert_array_equal(once.layout, twice.layout)
    assert twice.iteration == 120 and [h[0] for h in twice.history] == [50, 100]
    before = twice.kl_divergence
    twice.optimize(100, exaggeration=1.0)
    assert twice.kl_divergence < before


# openTSNE's schedule with a shorter main phase: KL agreed within 0.7 % and recall@10 within 0.002 on both
# data sets at 250 + 250 iterations (benchmarks/bench_engine.py compares full-length runs at 10k-100k items).
MAIN_ITERATIONS = 250


def _opentsne_on(P, init) -> tuple[np.ndarray, float]:
    affinities = Affinities()
    affinities.P = P.astype(np.float64)
    embedding = TSNEEmbedding(init.copy(), affinities, negative_gradient_method="fft", random_state=0, n_jobs=-1)
    embedding = embedding.optimize(250, exaggeration=12, momentum=0.5)
    embedding = embedding.optimize(MAIN_ITERATIONS, momentum=0.8)
    return np.asarray(embedding), float(embedding.kl_divergence)


@pytest.mark.slow
def test_numpy_engine_matches_opentsne_on_the_same_p_and_init():
    # digits only in the suite (MNIST 5k end to end against openTSNE is test_quality's);
    # benchmarks/bench_engine.py compares the engines at larger sizes
    name = "digits"
    vectors, _ = load_digits()
    knn = nearest_neighbors(vectors, 90, backend="bruteforce")
    P = joint_probabilities(knn.indices, knn.distances, 30.0)
    init = pca_init(vectors, 0)
    ours = Embedding(init, P, repulsion="fft")  # the FFT grid against openTSNE's (Barnes-Hut: test_barnes_hut.py)
    ours.optimize(250, exaggeration=12, momentum=0.5).optimize(MAIN_ITERATIONS, momentum=0.8)
    theirs_layout, theirs_kl = _opentsne_on(P, init)
    ours_quality = neighbour_quality(vectors, ours.layout)
    theirs_quality = neighbour_quality(vectors, theirs_layout)
    print(f"{name}: KL ours {ours.kl_divergence:.4f} openTSNE {theirs_kl:.4f}; recall ours "
          f"{ours_quality.recall:.4f} openTSNE {theirs_quality.recall:.4f}")
    assert abs(ours.kl_divergence - theirs_kl) / theirs_kl < 0.02
    assert abs(ours_quality.recall - theirs_quality.recall) < 0.01


def test_engine_choice_and_the_cli_flag(tmp_path, catalog_files):
    assert choose_engine("auto") == ("numpy", "no usable GPU: our CPU engine")
    assert choose_engine("auto", repulsion="barnes-hut") == ("numpy", "repulsion barnes-hut runs on the CPU")
    assert resolve_repulsion("auto", "numpy", 49_999)[0] == "barnes-hut"
    assert resolve_repulsion("auto", "numpy", 50_000)[0] == "fft"
    assert resolve_repulsion("auto", "opentsne", 10_000)[0] == "fft"  # openTSNE's own rule
    assert resolve_repulsion("auto", "opentsne", 9_999)[0] == "barnes-hut"
    assert resolve_repulsion("auto", "cupy", 500) == ("fft", "the GPU engine computes repulsion on the FFT grid")
    assert resolve_repulsion("fft", "numpy", 500) == ("fft", "requested")
    with pytest.raises(tsne_dist.ConfigError, match="repulsion barnes-hut runs on the CPU"):
        resolve_repulsion("barnes-hut", "cupy", 500)
    assert choose_engine("numpy") == ("numpy", "requested")
    with pytest.raises(tsne_dist.ConfigError, match="CuPy"):
        choose_engine("cupy")
    result = tsne_dist.run({"vectors": catalog_files["vectors"], "out": str(tmp_path / "o"), "engine": "opentsne",
                            "repulsion": "fft", "perplexity": 10, "n_iter": 150, "early_exaggeration_iter": 50,
                            "dof": 0.8})
    assert (result.metrics["engine"], result.metrics["repulsion"]) == ("opentsne", "fft")
    assert np.isfinite(result.metrics["kl_divergence"])
    assert result.metrics["trustworthiness@10"] > 0.9


def test_barnes_hut_on_a_gpu_host(tmp_path, capsys, catalog_files, monkeypatch):
    import os

    import tsne_dist.tsne.engine
    from conftest import FAST, read_metrics, run_cli

    monkeypatch.setattr(tsne_dist.tsne.engine, "cupy_or_none", lambda: object())  # as if CuPy saw a device
    assert choose_engine("auto") == ("cupy", "CuPy sees a CUDA device")
    out = str(tmp_path / "gpu")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", out, "--engine", "cupy",
                           "--repulsion", "barnes-hut", *FAST)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "repulsion barnes-hut runs on the CPU, and the engine is cupy; set --repulsion to fft" in err
    assert not os.path.exists(out)  # refused before anything was written
    with pytest.raises(tsne_dist.ConfigError, match="runs on the CPU"):
        tsne_dist.TSNE(engine="cupy", repulsion="barnes-hut").fit(np.zeros((100, 4)))
    # engine auto with barnes-hut asked for runs our CPU engine, and says why
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", out, "--repulsion",
                           "barnes-hut", *FAST)
    assert code == 0, err
    metrics = read_metrics(out)
    assert (metrics["engine"], metrics["repulsion"]) == ("numpy", "barnes-hut")
    assert metrics["resolved"]["engine"]["reason"] == "repulsion barnes-hut runs on the CPU"


def test_n_jobs_sets_the_threads_of_our_cpu_engine_and_is_restored(monkeypatch):
    import numba

    import tsne_dist.tsne.optimizer as optimizer
    from tsne_dist.tsne import Schedule, optimize_layout
    from tsne_dist.tsne.engine import numba_threads

    before = numba.get_num_threads()
    with numba_threads(10_000):
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before
    seen = []
    real = optimizer.repulsion_barnes_hut

    def spy(y, dof):
        seen.append(numba.get_num_threads())
        return real(y, dof)

    monkeypatch.setattr(optimizer, "repulsion_barnes_hut", spy)
    vectors, _ = synthetic_catalog(300, 8, n_categories=3, n_subcategories=1, seed=0)
    knn = nearest_neighbors(vectors, 30, backend="bruteforce")
    P = joint_probabilities(knn.indices, knn.distances, 10.0)
    optimize_layout(P, pca_init(vectors, 0), Schedule(n_iter=20, early_exaggeration_iter=10), engine="numpy", n_jobs=1)
    assert seen and set(seen) == {1}  # every gradient of the run on one thread
    assert numba.get_num_threads() == before
