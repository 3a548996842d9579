"""The same xp code on CuPy equals NumPy. Skipped without CuPy and a CUDA device (CI has none);
benchmarks/gpu_check.sh runs these on a lent GPU."""

from __future__ import annotations

import numpy as np
import pytest

from tsne_dist.affinity import joint_probabilities
from tsne_dist.datasets import synthetic_catalog
from tsne_dist.neighbors import nearest_neighbors
from tsne_dist.neighbors.bruteforce import bruteforce_knn
from tsne_dist.tsne import pca_init
from tsne_dist.tsne.gradient import attraction, edge_list, repulsion
from tsne_dist.tsne.optimizer import Embedding
from tsne_dist.xp import cupy_or_none

cp = cupy_or_none()
pytestmark = pytest.mark.skipif(cp is None, reason="needs CuPy and a CUDA device")


@pytest.fixture(scope="module")
def problem():
    vectors, _ = synthetic_catalog(3000, 16, seed=5)
    knn = nearest_neighbors(vectors, 30, backend="bruteforce")
    return vectors, joint_probabilities(knn.indices, knn.distances, 10.0)


def test_bruteforce_on_cupy_equals_numpy():
    data = np.random.default_rng(0).integers(0, 3, size=(2000, 8)).astype(np.float64)
    cpu_indices, cpu_distances = bruteforce_knn(data, 15)
    gpu_indices, gpu_distances = bruteforce_knn(cp.asarray(data), 15)
    np.testing.assert_array_equal(cp.asnumpy(gpu_indices), cpu_indices)
    np.testing.assert_allclose(cp.asnumpy(gpu_distances), cpu_distances, rtol=1e-6)


def test_gradient_on_cupy_equals_numpy(problem):
    _, P = problem
    y = np.random.default_rng(1).normal(size=(3000, 2)) * 20
    forces, kl_term = attraction(y, edge_list(P), 1.0, with_kl=True)
    gpu_forces, gpu_kl_term = attraction(cp.asarray(y), edge_list(P, cp), 1.0, with_kl=True)
    np.testing.assert_allclose(cp.asnumpy(gpu_forces), forces, rtol=1e-8, atol=1e-14)
    assert abs(gpu_kl_term - kl_term) < 1e-8 * abs(kl_term)
    rep, z = repulsion(y)
    gpu_rep, gpu_z = repulsion(cp.asarray(y))
    np.testing.assert_allclose(cp.asnumpy(gpu_rep), rep, rtol=1e-7, atol=1e-14)
    assert abs(gpu_z - z) < 1e-8 * z


def test_optimizer_on_cupy_tracks_numpy(problem):
    vectors, P = problem
    init = pca_init(vectors, 0)
    cpu = Embedding(init, P, use_numba=False, repulsion="fft").optimize(100, exaggeration=12, momentum=0.5)
    gpu = Embedding(init, P, xp=cp).optimize(100, exaggeration=12, momentum=0.5)
    np.testing.assert_allclose(gpu.layout, cpu.layout, rtol=1e-5, atol=1e-6)
    assert abs(gpu.kl_divergence - cpu.kl_divergence) < 1e-6 * abs(cpu.kl_divergence)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_exact_knn_on_cupy_matches_numpy_for_every_metric(metric):
    from tsne_dist.neighbors.exact import exact_knn

    data = np.random.default_rng(6).normal(size=(1500, 12)).astype(np.float32)
    cpu_indices, cpu_distances = exact_knn(data, 10, metric)
    gpu_indices, gpu_distances = exact_knn(data, 10, metric, xp=cp)  # float32 on the GPU, float64 on NumPy
    assert isinstance(gpu_indices, np.ndarray)
    assert (gpu_indices == cpu_indices).mean() >= 0.999
    np.testing.assert_allclose(np.sort(gpu_distances, axis=1), cpu_distances, rtol=1e-3, atol=1e-4)


def test_auto_knn_runs_exact_search_on_the_gpu():
    vectors, _ = synthetic_catalog(6000, 32, seed=7)
    result = nearest_neighbors(vectors, 15)
    assert result.backend == "bruteforce" and "on the GPU" in result.reason
    cpu = nearest_neighbors(vectors, 15, backend="bruteforce")
    assert (result.indices == cpu.indices).mean() >= 0.999


def test_transform_on_cupy_tracks_numpy(problem):
    from tsne_dist.affinity import conditional_probabilities
    from tsne_dist.neighbors.exact import exact_knn_between
    from tsne_dist.tsne.transform import transform_layout

    vectors, P = problem
    reference = Embedding(pca_init(vectors[:2500], 0), joint_probabilities(
        *bruteforce_knn(vectors[:2500].astype(np.float64), 30), 10.0)).optimize(200).layout
    indices, distances = exact_knn_between(vectors[2500:], vectors[:2500], 30, "euclidean", xp=cp)
    affinities = conditional_probabilities(distances, 10.0)
    cpu = transform_layout(reference, indices, affinities, n_iter=20)
    gpu = transform_layout(reference, indices, affinities, n_iter=20, xp=cp)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)


def test_warm_start_runs_on_cupy(tmp_path):
    import tsne_dist
    from tsne_dist.datasets import catalog_days

    day1, meta1, day2, meta2 = catalog_days(3000, 16, seed=2)
    np.save(tmp_path / "day1.npy", day1)
    np.save(tmp_path / "day2.npy", day2)
    np.save(tmp_path / "ids1.npy", meta1["id"].to_numpy().astype(str))
    np.save(tmp_path / "ids2.npy", meta2["id"].to_numpy().astype(str))
    tsne_dist.run({"vectors": str(tmp_path / "day1.npy"), "ids": str(tmp_path / "ids1.npy"),
                   "out": str(tmp_path / "day1"), "engine": "cupy"})
    warm = tsne_dist.run({"vectors": str(tmp_path / "day2.npy"), "ids": str(tmp_path / "ids2.npy"),
                          "out": str(tmp_path / "day2"), "engine": "cupy", "init_from": str(tmp_path / "day1")})
    assert warm.metrics["engine"] == "cupy"
    assert warm.metrics["stability"]["displacement_median"] < 1.0
