"""Approximate kNN on Dask: one pynndescent index per shard, every query block asks
every shard, and the answers are merged to a global top-k by a tree reduction.

Ties are broken by the smaller index, so the merge does not depend on the order in
which shards answer; each shard's index is seeded from the run's seed and its number.
"""

from __future__ import annotations

import logging

import numpy as np

from ..progress import Progress
from .metric import prepare_metric, to_metric_distance

logger = logging.getLogger("tsne_dist")


def _build_shard_index(items: np.ndarray, start: int, stop: int, k: int, seed: int):
    from pynndescent import NNDescent

    shard = items[start:stop]
    n_neighbors = min(k + 1, len(shard) - 1)
    index = NNDescent(shard, n_neighbors=n_neighbors, metric="euclidean", random_state=seed, n_jobs=1,
                      low_memory=True, verbose=False)
    index.prepare()
    return index


def _query_shard(index, queries: np.ndarray, q_start: int, q_stop: int, shard_start: int, k: int):
    """The k + 1 best of one shard for rows [q_start, q_stop): global indices and distances."""
    n_found = min(2 * k, index._raw_data.shape[0])  # k' = 2k candidates per shard
    indices, distances = index.query(queries[q_start:q_stop], k=n_found, epsilon=0.25)
    found = (np.where(indices >= 0, indices.astype(np.int64) + shard_start, -1), distances.astype(np.float32))
    nothing = (np.empty((q_stop - q_start, 0), dtype=np.int64), np.empty((q_stop - q_start, 0), dtype=np.float32))
    return merge_candidates(found, nothing, k, q_start)  # drops each row itself, sorts, breaks ties


def merge_candidates(first, second, k: int, q_start: int):
    """Merge two (indices, distances) answers for the same rows into the best k + 1,
    dropping each row itself and repeated indices; ties by smaller index."""
    indices = np.concatenate([first[0], second[0]], axis=1)
    distances = np.concatenate([first[1], second[1]], axis=1).astype(np.float64)
    rows = np.arange(q_start, q_start + len(indices))
    distances[(indices == rows[:, None]) | (indices < 0)] = np.inf
    order = _row_order(indices, distances)
    indices = np.take_along_axis(indices, order, axis=1)
    distances = np.take_along_axis(distances, order, axis=1)
    repeated = np.zeros(indices.shape, dtype=bool)
    repeated[:, 1:] = indices[:, 1:] == indices[:, :-1]
    distances[repeated] = np.inf
    order = _row_order(indices, distances)
    keep = min(k + 1, indices.shape[1])
    return (np.take_along_axis(indices, order, axis=1)[:, :keep],
            np.take_along_axis(distances, order, axis=1)[:, :keep].astype(np.float32))


def _row_order(indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    by_index = np.argsort(indices, axis=1, kind="stable")
    by_distance = np.argsort(np.take_along_axis(distances, by_index, axis=1), axis=1, kind="stable")
    return np.take_along_axis(by_index, by_distance, axis=1)


def refine_block(items: np.ndarray, queries: np.ndarray, indices: np.ndarray, q_start: int, q_stop: int, k: int):
    """One local-join pass for rows [q_start, q_stop): each row's best k among its
    neighbours and its neighbours' neighbours, by exact euclidean distance from its
    query vector to the items (ties by index)."""
    rows = np.arange(q_start, q_stop)
    first = indices[q_start:q_stop]
    candidates = np.concatenate([first, indices[first].reshape(len(rows), -1)], axis=1).astype(np.int64)
    diff = items[candidates].astype(np.float64) - queries[rows][:, None, :].astype(np.float64)
    distances = np.sqrt((diff * diff).sum(axis=2))
    nothing = (np.empty((len(rows), 0), dtype=np.int64), np.empty((len(rows), 0), dtype=np.float32))
    merged = merge_candidates((candidates, distances.astype(np.float32)), nothing, k, q_start)
    return merged[0][:, :k], merged[1][:, :k]


def _tree_merge(client, parts: list, k: int, q_start: int):
    while len(parts) > 1:
        merged = [client.submit(merge_candidates, parts[i], parts[i + 1], k, q_start, pure=False)
                  for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


def sharded_knn(client, vectors: np.ndarray, k: int, *, n_shards: int, metric: str = "euclidean", seed: int = 0,
                query_block: int = 20_000, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row, self excluded, searched on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    vectors : np.ndarray
        (N, D) float32.
    k : int
        Neighbours per row.
    n_shards : int
        Data shards, one pynndescent index each.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product``; the search runs in the
        metric's euclidean space (:mod:`.metric`).
    seed : int
        Shard s uses seed + s.
    query_block : int
        Rows per query task.
    refine : bool
        Run one local-join pass seeded with the merged graph.

    Returns
    -------
    indices : np.ndarray
        (N, k) int32.
    distances : np.ndarray
        (N, k) float32, in ``metric``.
    """
    n_items = vectors.shape[0]
    bounds = np.linspace(0, n_items, n_shards + 1).astype(int)
    items, queries = prepare_metric(vectors, metric)
    items_ref = client.scatter(items, broadcast=True, hash=False)  # a fresh key per call: no release race
    queries_ref = items_ref if queries is items else client.scatter(queries, broadcast=True, hash=False)
    indexes = [client.submit(_build_shard_index, items_ref, int(bounds[s]), int(bounds[s + 1]), k, seed + s,
                             pure=False) for s in range(n_shards)]
    blocks = []
    for q_start in range(0, n_items, query_block):
        q_stop = min(q_start + query_block, n_items)
        parts = [client.submit(_query_shard, indexes[s], queries_ref, q_start, q_stop, int(bounds[s]), k, pure=False)
                 for s in range(n_shards)]
        blocks.append(_tree_merge(client, parts, k, q_start))
    indices, distances = _collect(blocks, k, f"kNN ({n_shards} shards)")
    if refine:
        graph = client.scatter(indices, broadcast=True, hash=False)
        refined = [client.submit(refine_block, items_ref, queries_ref, graph, q_start,
                                 min(q_start + query_block, n_items), k, pure=False)
                   for q_start in range(0, n_items, query_block)]
        indices, distances = _collect(refined, k, "kNN refinement")
    return indices, to_metric_distance(distances, metric)


def _collect(blocks: list, k: int, description: str) -> tuple[np.ndarray, np.ndarray]:
    indices, distances = [], []
    with Progress(len(blocks), description) as progress:
        for block in blocks:
            block_indices, block_distances = block.result()
            indices.append(block_indices[:, :k].astype(np.int32))
            distances.append(block_distances[:, :k])
            progress.advance(1)
    return np.concatenate(indices), np.concatenate(distances)
