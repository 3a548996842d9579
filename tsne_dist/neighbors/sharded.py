"""Approximate kNN on Dask: one pynndescent index per shard, every query block asks
every other shard (its own shard answers from the shard's neighbour graph), and the
answers are merged to a global top-k by a tree reduction.

Ties are broken by the smaller index, so the merge does not depend on the order in
which shards answer; each shard's index is seeded from the run's seed and its number.
"""

from __future__ import annotations

import logging

import numpy as np

from ..progress import Progress
from .metric import prepare_metric, to_metric_distance
from .nndescent import index_parameters
from .refine import local_join

logger = logging.getLogger("tsne_dist")


def _build_shard_index(items: np.ndarray, start: int, stop: int, k: int, seed: int):
    from pynndescent import NNDescent

    shard = items[start:stop]
    n_neighbors = min(k + 1, len(shard) - 1)
    index = NNDescent(shard, n_neighbors=n_neighbors, metric="euclidean", random_state=seed, n_jobs=1,
                      low_memory=True, verbose=False, **index_parameters(len(shard)))
    index.prepare()
    return index


def _query_shard(index, queries: np.ndarray, q_start: int, q_stop: int, shard_start: int, k: int):
    """The k + 1 best of one shard for rows [q_start, q_stop): global indices and distances."""
    n_found = min(2 * k, index._raw_data.shape[0])  # k' = 2k candidates per shard
    indices, distances = index.query(queries[q_start:q_stop], k=n_found, epsilon=0.25)
    return _as_candidates(indices, distances, shard_start, k, q_start)


def _own_shard(index, q_start: int, q_stop: int, shard_start: int, k: int):
    """The k + 1 best of a shard for its own rows [q_start, q_stop), read from the
    shard's neighbour graph instead of searched again."""
    indices, distances = index.neighbor_graph
    rows = slice(q_start - shard_start, q_stop - shard_start)
    return _as_candidates(indices[rows], distances[rows], shard_start, k, q_start)


def _as_candidates(indices: np.ndarray, distances: np.ndarray, shard_start: int, k: int, q_start: int):
    """A shard's answer with global indices, as the best k + 1 (self dropped, sorted, ties by index)."""
    found = (np.where(indices >= 0, indices.astype(np.int64) + shard_start, -1), distances.astype(np.float32))
    nothing = (np.empty((len(indices), 0), dtype=np.int64), np.empty((len(indices), 0), dtype=np.float32))
    return merge_candidates(found, nothing, k, q_start)


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
        Run one local-join pass (:func:`.refine.local_join`) seeded with the
        merged graph; it reaches clusters that a shard's search cannot leave.

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
    holders = _holders(client, indexes)
    blocks = []
    for q_start, q_stop, home in _query_blocks(bounds, query_block):
        parts = []
        for s in range(n_shards):
            # A shard's queries run where its index lives: moving an index costs more than its queries.
            pinned = {"workers": holders[s], "allow_other_workers": False, "pure": False}
            if s == home and queries is items:  # a shard's graph already holds its rows' neighbours
                parts.append(client.submit(_own_shard, indexes[s], q_start, q_stop, int(bounds[s]), k, **pinned))
            else:
                parts.append(client.submit(_query_shard, indexes[s], queries_ref, q_start, q_stop, int(bounds[s]), k,
                                           **pinned))
        blocks.append(_tree_merge(client, parts, k, q_start))
    indices, distances = _collect(blocks, k, f"kNN ({n_shards} shards)")
    if refine:
        graph = client.scatter(indices, broadcast=True, hash=False)
        refined = [client.submit(local_join, items_ref, queries_ref, graph, k, q_start=q_start,
                                 q_stop=min(q_start + query_block, n_items), pure=False)
                   for q_start in range(0, n_items, query_block)]
        indices, distances = _collect(refined, k, "kNN refinement")
    return indices, to_metric_distance(distances, metric)


def _holders(client, indexes: list) -> list[list[str]]:
    """The worker holding each built shard index (waits for the builds)."""
    from distributed import as_completed

    with Progress(len(indexes), "kNN (shard indexes)") as progress:
        for built in as_completed(indexes):
            built.result()  # a failed build raises here
            progress.advance(1)
    held = client.who_has(indexes)
    return [list(held[index.key])[:1] for index in indexes]


def _query_blocks(bounds: np.ndarray, query_block: int) -> list[tuple[int, int, int]]:
    """(start, stop, shard) of query blocks that never cross a shard boundary."""
    return [(start, min(start + query_block, int(bounds[s + 1])), s)
            for s in range(len(bounds) - 1) for start in range(int(bounds[s]), int(bounds[s + 1]), query_block)]


def _collect(blocks: list, k: int, description: str) -> tuple[np.ndarray, np.ndarray]:
    indices, distances = [], []
    with Progress(len(blocks), description) as progress:
        for block in blocks:
            block_indices, block_distances = block.result()
            indices.append(block_indices[:, :k].astype(np.int32))
            distances.append(block_distances[:, :k])
            progress.advance(1)
    return np.concatenate(indices), np.concatenate(distances)
