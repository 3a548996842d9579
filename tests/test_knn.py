"""Exact brute force equals a sorted full-distance reference; NNDescent reaches high recall."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from conftest import FAST, read_metrics, run_cli
from tsne_dist.neighbors import choose_backend, nearest_neighbors
from tsne_dist.neighbors.bruteforce import bruteforce_knn
from tsne_dist.neighbors.nndescent import drop_self


def sorted_reference(data: np.ndarray, k: int, metric: str = "sqeuclidean") -> np.ndarray:
    distances = cdist(data.astype(np.float64), data.astype(np.float64), metric)
    np.fill_diagonal(distances, np.inf)
    order = np.arange(len(data))
    return np.array([np.lexsort((order, row))[:k] for row in distances])


@pytest.mark.parametrize("blocks", [(64, 100), (1000, 1000), (7, 13)])
def test_bruteforce_equals_sorted_reference_with_ties(blocks):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, size=(400, 4)).astype(np.float32)  # many exact ties
    indices, distances = bruteforce_knn(data, 9, query_block=blocks[0], data_block=blocks[1])
    expected = sorted_reference(data, 9)
    np.testing.assert_array_equal(indices, expected)
    full = cdist(data.astype(np.float64), data.astype(np.float64))
    np.testing.assert_allclose(distances, np.take_along_axis(full, expected, axis=1), rtol=1e-6)
    assert indices.dtype == np.int32 and distances.dtype == np.float32


def test_bruteforce_cosine_matches_reference():
    data = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32)
    result = nearest_neighbors(data, 10, backend="bruteforce", metric="cosine")
    expected = sorted_reference(data, 10, "cosine")
    np.testing.assert_array_equal(result.indices, expected)
    full = cdist(data.astype(np.float64), data.astype(np.float64), "cosine")
    np.testing.assert_allclose(result.distances, np.take_along_axis(full, expected, axis=1), atol=1e-5)


def inner_product_reference(data: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k largest dot products with the other rows, ties by smaller index."""
    scores = data.astype(np.float64) @ data.astype(np.float64).T
    np.fill_diagonal(scores, -np.inf)
    order = np.arange(len(data))
    return np.array([np.lexsort((order, -row))[:k] for row in scores])


def test_bruteforce_inner_product_ranks_by_dot_product_and_stores_the_lifted_distance():
    rng = np.random.default_rng(3)
    data = (rng.normal(size=(300, 8)) * rng.uniform(0.2, 3.0, size=(300, 1))).astype(np.float32)  # varied norms
    result = nearest_neighbors(data, 12, backend="bruteforce", metric="inner_product")
    expected = inner_product_reference(data, 12)
    np.testing.assert_array_equal(result.indices, expected)
    wide = data.astype(np.float64)
    sq_norms = (wide ** 2).sum(axis=1)
    dots = np.take_along_axis(wide @ wide.T, expected, axis=1)
    lifted = np.sqrt(sq_norms[:, None] + sq_norms.max() - 2 * dots)  # |q|^2 + M^2 - 2 q.x
    np.testing.assert_allclose(result.distances, lifted, rtol=1e-5)
    # A long vector beats a short one pointing the same way: not the case for cosine.
    cosine = nearest_neighbors(data, 12, backend="bruteforce", metric="cosine")
    assert (cosine.indices != result.indices).any()


def test_approximate_inner_product_search_reaches_high_recall():
    rng = np.random.default_rng(4)
    data = (rng.normal(size=(3000, 4)) @ rng.normal(size=(4, 16))).astype(np.float32)
    data *= rng.uniform(0.5, 2.0, size=(3000, 1)).astype(np.float32)
    approx = nearest_neighbors(data, 15, backend="pynndescent", metric="inner_product", seed=0)
    expected = inner_product_reference(data, 15)
    recall = np.mean([len(np.intersect1d(a, e)) / 15 for a, e in zip(approx.indices, expected)])
    assert recall >= 0.95
    assert not (approx.indices == np.arange(3000)[:, None]).any()


@pytest.mark.parametrize("budget", [1 << 20, 64 << 20, 80 << 30])
def test_block_sizes_keep_the_working_set_within_the_budget(budget):
    from tsne_dist.neighbors.bruteforce import block_sizes

    for n_items in (500, 100_000, 1_000_000):
        query_block, data_block = block_sizes(n_items, budget, 4)
        assert 1 <= query_block <= min(2048, n_items) and 1 <= data_block <= n_items
        if data_block > 1024:  # above the floor the blocks fit the budget
            assert query_block * data_block * (2 * 4 + 24) <= budget
    assert block_sizes(1_000_000, 80 << 30, 4)[1] == 1_000_000  # an 80 GB GPU takes all items per block
    assert block_sizes(1_000_000, 64 << 20, 4)[1] < 10_000


def test_bruteforce_with_blocks_from_free_memory_equals_the_reference():
    data = np.random.default_rng(5).normal(size=(700, 6)).astype(np.float32)
    indices, _ = bruteforce_knn(data, 7)  # block sizes from available RAM
    np.testing.assert_array_equal(indices, sorted_reference(data, 7))


def test_nndescent_recall_and_self_exclusion():
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(3000, 3)) @ rng.normal(size=(3, 20))).astype(np.float32)
    data += 0.01 * rng.normal(size=data.shape).astype(np.float32)
    approx = nearest_neighbors(data, 15, backend="pynndescent", seed=0)
    exact = nearest_neighbors(data, 15, backend="bruteforce")
    assert not (approx.indices == np.arange(3000)[:, None]).any()
    recall = np.mean([len(np.intersect1d(a, e)) / 15 for a, e in zip(approx.indices, exact.indices)])
    assert recall >= 0.95
    np.testing.assert_allclose(approx.distances[:, 0], exact.distances[:, 0], rtol=1e-3, atol=1e-4)


def test_drop_self_handles_duplicates_where_self_is_not_first():
    indices = np.array([[1, 0, 2], [0, 2, 1], [0, 1, 3], [0, 1, 2]])
    distances = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    kept, kept_distances = drop_self(indices, distances, 2)
    np.testing.assert_array_equal(kept, [[1, 2], [0, 2], [0, 1], [0, 1]])
    np.testing.assert_array_equal(kept_distances, [[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 2.0]])


def test_auto_backend_choice_says_why():
    assert choose_backend("auto", 5000, 784)[0] == "bruteforce"
    backend, reason = choose_backend("auto", 100_000, 50)
    assert backend == "hnsw" and "too large" in reason
    backend, reason = choose_backend("auto", 100_000, 50, sharded=True)
    assert backend == "pynndescent" and "sharded" in reason  # one index per Dask worker
    assert choose_backend("pynndescent", 10, 2) == ("pynndescent", "requested")
    backend, reason = choose_backend("auto", 1_000_000, 128, gpu_free_bytes=78 << 30)
    assert backend == "bruteforce" and "GPU" in reason
    assert choose_backend("auto", 1_000_000, 128, gpu_free_bytes=1 << 30)[0] == "hnsw"  # does not fit


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "inner_product"])
def test_hnsw_is_deterministic_excludes_self_and_reaches_high_recall(metric):
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(3000, 3)) @ rng.normal(size=(3, 20))).astype(np.float32)
    data += 0.01 * rng.normal(size=data.shape).astype(np.float32)
    data *= rng.uniform(0.5, 2.0, size=(3000, 1)).astype(np.float32)
    approx = nearest_neighbors(data, 15, backend="hnsw", metric=metric, n_jobs=2)
    exact = nearest_neighbors(data, 15, backend="bruteforce", metric=metric)
    assert approx.backend == "hnsw" and approx.indices.dtype == np.int32 and approx.distances.dtype == np.float32
    assert not (approx.indices == np.arange(3000)[:, None]).any()
    recall = np.mean([len(np.intersect1d(a, e)) / 15 for a, e in zip(approx.indices, exact.indices)])
    assert recall >= 0.98
    assert (np.diff(approx.distances, axis=1) >= -1e-6).all()  # nearest first
    np.testing.assert_allclose(approx.distances[:, 0], exact.distances[:, 0], rtol=1e-3, atol=1e-4)
    again = nearest_neighbors(data, 15, backend="hnsw", metric=metric, n_jobs=1)
    np.testing.assert_array_equal(again.indices, approx.indices)  # same graph whatever the search threads


def test_hnsw_searches_in_blocks_and_hands_many_copies_to_pynndescent(monkeypatch):
    import tsne_dist.neighbors.hnsw as hnsw

    rng = np.random.default_rng(3)
    data = rng.normal(size=(1000, 8)).astype(np.float32)
    whole = nearest_neighbors(data, 10, backend="hnsw")
    monkeypatch.setattr(hnsw, "QUERY_BLOCK", 96)  # blocks that do not divide N
    blocked = nearest_neighbors(data, 10, backend="hnsw")
    np.testing.assert_array_equal(blocked.indices, whole.indices)
    assert not (blocked.indices == np.arange(1000)[:, None]).any()

    copies = np.vstack([np.repeat(data[:5], 180, axis=0), data[5:105]])  # 90 % of rows are copies
    result = nearest_neighbors(copies, 15, backend="hnsw", seed=0)
    assert result.backend == "pynndescent" and "duplicate" in result.reason
    exact = nearest_neighbors(copies, 15, backend="bruteforce")
    distinct = np.arange(900, 1000)
    right = np.isclose(result.distances[distinct], exact.distances[distinct], rtol=1e-4, atol=1e-5)
    assert right.mean() >= 0.98  # HNSW itself: 3 % of such lists right (measured)


def test_rows_pynndescent_could_not_fill_are_searched_exactly():
    from tsne_dist.neighbors.nndescent import fill_missing

    data = np.random.default_rng(5).normal(size=(200, 6)).astype(np.float32)
    exact = nearest_neighbors(data, 8, backend="bruteforce")
    indices, distances = exact.indices.copy(), exact.distances.copy()
    indices[[3, 50], -2:] = -1
    distances[[3, 50], -2:] = np.inf
    filled_indices, filled_distances = fill_missing(data, indices, distances, "euclidean")
    np.testing.assert_array_equal(filled_indices, exact.indices)
    np.testing.assert_allclose(filled_distances, exact.distances, rtol=1e-6)


@pytest.mark.slow
def test_default_nndescent_reaches_recall_at_15_on_glove_and_synthetic_data():
    from tsne_dist.datasets import load_glove, synthetic_catalog
    from tsne_dist.neighbors import graph_recall

    for name, vectors in (("glove 20k", load_glove(20_000)[0]),
                          ("synthetic 20k", synthetic_catalog(20_000, 64, seed=0)[0])):
        approx = nearest_neighbors(vectors, 15, backend="pynndescent", seed=0)
        recall = graph_recall(vectors, approx.indices, sample=2000)
        print(f"{name}: recall@15 {recall:.4f}")
        assert recall >= 0.95, name


def test_graph_recall_counts_found_true_neighbours():
    from tsne_dist.neighbors import graph_recall

    data = np.random.default_rng(6).normal(size=(300, 5)).astype(np.float32)
    exact = nearest_neighbors(data, 10, backend="bruteforce")
    assert graph_recall(data, exact.indices) == 1.0
    damaged = exact.indices.copy()
    damaged[:, 5:] = exact.indices[::-1, 5:]  # half of each row replaced by another row's neighbours
    assert 0.45 <= graph_recall(data, damaged) <= 0.6


def test_local_join_keeps_an_exact_graph_and_repairs_a_damaged_one():
    from tsne_dist.neighbors.refine import local_join

    rng = np.random.default_rng(8)
    data = (rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 12))).astype(np.float32)
    exact = nearest_neighbors(data, 15, backend="bruteforce")
    kept, kept_distances = local_join(data, data, exact.indices, 15)
    np.testing.assert_array_equal(kept, exact.indices)
    np.testing.assert_allclose(kept_distances, exact.distances, rtol=1e-5)
    damaged = exact.indices.copy()
    damaged[:, 8:] = rng.integers(0, 2000, size=(2000, 7))  # half of each row replaced by random items

    def recall(found):
        return np.mean([len(np.intersect1d(a, e)) / 15 for a, e in zip(found, exact.indices)])

    repaired, distances = local_join(data, data, damaged, 15)
    assert recall(damaged) <= 0.6 and recall(repaired) >= 0.93  # measured 0.54 -> 0.95
    assert (np.diff(distances, axis=1) >= 0).all() and not (repaired == np.arange(2000)[:, None]).any()
    order = rng.permutation(2000)  # rows refined in another order come back in that order, unchanged
    np.testing.assert_array_equal(local_join(data, data, damaged, 15, rows=order)[0], repaired[order])


def test_merging_two_answers_keeps_the_best_unique_neighbours_ties_by_index():
    from tsne_dist.neighbors.refine import merge_answers

    rng = np.random.default_rng(9)
    n_rows = 200
    rows = rng.permutation(np.arange(1000, 1300))[:n_rows]  # the rows' own indices, in no particular order
    first = (rng.integers(-1, 1300, size=(n_rows, 12)).astype(np.int32),
             rng.integers(0, 6, size=(n_rows, 12)).astype(np.float32))  # few distinct distances: many ties
    second = (rng.integers(-1, 1300, size=(n_rows, 9)).astype(np.int32),
              rng.integers(0, 6, size=(n_rows, 9)).astype(np.float32))
    first[0][:, 0] = rows  # each row finds itself: it must be dropped
    second[0][:, 0] = first[0][:, 1]  # the same index in both answers: kept once, at its smaller distance
    indices, distances = merge_answers(first, second, 8, rows)
    for r in range(n_rows):
        best: dict[int, float] = {}
        for index, distance in zip(np.r_[first[0][r], second[0][r]], np.r_[first[1][r], second[1][r]]):
            if index >= 0 and index != rows[r]:
                best[int(index)] = min(best.get(int(index), np.inf), float(distance))
        expected = sorted(best, key=lambda index: (best[index], index))[:8]
        found = indices[r][indices[r] >= 0].tolist()
        assert found == expected
        np.testing.assert_array_equal(distances[r][:len(found)], [best[index] for index in expected])
        assert (indices[r][len(found):] == -1).all() and np.isinf(distances[r][len(found):]).all()


def test_same_seed_same_layout_and_another_seed_differs(tmp_path, capsys, catalog_files):
    outputs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = str(tmp_path / name)
        assert run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--metadata", catalog_files["metadata"],
                       "--ids", catalog_files["ids"], "--seed", seed, "--out", out, "--knn", "pynndescent",
                       "--init", "random", *FAST)[0] == 0
        outputs.append(pd.read_parquet(os.path.join(out, "layout.parquet")))
    pd.testing.assert_frame_equal(outputs[0], outputs[1], check_exact=True)
    with open(tmp_path / "a" / "layout.parquet", "rb") as a, open(tmp_path / "b" / "layout.parquet", "rb") as b:
        assert a.read() == b.read()
    assert not np.array_equal(outputs[0][["x", "y"]].to_numpy(), outputs[2][["x", "y"]].to_numpy())
    metrics = read_metrics(str(tmp_path / "a"))
    assert metrics["knn_backend"] == "pynndescent" and metrics["knn_graph_recall"] >= 0.95


def test_warm_up_compiles_pynndescent_into_the_cache(capsys):
    """`tsne-dist warm-up --part pynndescent` runs every pynndescent path a run takes (single index,
    both metrics' spaces, a shard index and a query) and reports its cache folder."""
    from pathlib import Path

    code, out, err = run_cli(capsys, "warm-up", "--part", "pynndescent")
    assert code == 0, err
    folder = Path(out.split("numba cache ", 1)[1].split(": pynndescent ", 1)[0])
    assert any(folder.rglob("*pynndescent*.nbi"))  # index files of pynndescent's compiled functions
