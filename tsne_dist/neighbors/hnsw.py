"""Approximate kNN with faiss's HNSW index (compiled C++: no JIT compile in a fresh process).

Hierarchical navigable small-world graphs: Malkov & Yashunin, "Efficient and robust
approximate nearest neighbor search using Hierarchical Navigable Small World graphs",
IEEE TPAMI 2020; the index is faiss's ``IndexHNSWFlat`` (Douze et al., "The Faiss
library", 2024). Chosen by measurement over pynndescent for single-machine search:
benchmarks/README.md, "bench_knn.py".
"""

from __future__ import annotations

import numpy as np

from .metric import prepare_metric, to_metric_distance
from .nndescent import drop_self, fill_missing

HNSW_LINKS = 32  # M: graph links per node and layer
HNSW_BUILD_EFFORT = 100  # efConstruction: candidate list while inserting
QUERY_EFFORT_PER_NEIGHBOUR = 2  # efSearch = max(128, 2 (k + 1)): candidate list while searching
QUERY_BLOCK = 65_536  # rows searched at a time: faiss's float32 + int64 answers stay about 50 MB at k = 90


def hnsw_knn(data: np.ndarray, k: int, metric: str, n_jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours of every row with an HNSW index, self excluded.

    The index is built on one thread, so the graph (and the result) is the same in
    every run on one machine (faiss picks its SIMD kernels by CPU); the search runs
    on ``n_jobs`` threads (each query is independent), in blocks of rows.
    ``faiss.omp_set_num_threads`` is process-wide: do not call this from two threads at once.

    Parameters
    ----------
    data : np.ndarray
        (N, D) vectors (any float dtype; searched as float32).
    k : int
        Neighbours per row.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product``; the index searches the
        metric's euclidean space (:mod:`.metric`).
    n_jobs : int
        Search threads.

    Returns
    -------
    indices : np.ndarray
        (N, k) int32, nearest first.
    distances : np.ndarray
        (N, k) float32, in ``metric``.

    Raises
    ------
    ValueError
        For an unknown metric (see :func:`.metric.check_metric`).
    """
    import faiss

    items, queries = prepare_metric(data, metric)
    items = np.ascontiguousarray(items, dtype=np.float32)
    queries = items if queries is items else np.ascontiguousarray(queries, dtype=np.float32)
    index = faiss.IndexHNSWFlat(items.shape[1], HNSW_LINKS)
    index.hnsw.efConstruction = HNSW_BUILD_EFFORT
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)  # parallel insertion would make the graph depend on thread timing
        index.add(items)
        faiss.omp_set_num_threads(max(int(n_jobs), 1))
        index.hnsw.efSearch = max(128, QUERY_EFFORT_PER_NEIGHBOUR * (k + 1))
        indices = np.empty((len(queries), k), dtype=np.int32)
        distances = np.empty((len(queries), k), dtype=np.float32)
        for start in range(0, len(queries), QUERY_BLOCK):
            stop = min(start + QUERY_BLOCK, len(queries))
            squared, found = index.search(queries[start:stop], k + 1)
            found_distances = np.sqrt(np.maximum(squared, 0.0))
            found_distances[found < 0] = np.inf
            indices[start:stop], distances[start:stop] = drop_self(found, found_distances, k, first_row=start)
    finally:
        faiss.omp_set_num_threads(threads)
    return fill_missing(data, indices, to_metric_distance(distances, metric), metric)

