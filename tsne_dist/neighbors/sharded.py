"""Approximate kNN on Dask: one pynndescent index per shard, every query block asks
every other shard (its own shard answers from the shard's neighbour graph), and the
answers are merged to a global top-k by a tree reduction.

A query block holds rows that are close in space (:func:`.locality.spatial_order`),
so its searches walk the same part of a shard's graph while it is in cache. Ties are
broken by the smaller index, so the merge does not depend on the order in which
shards answer; each shard's index is seeded from the run's seed and its number.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..errors import ConfigError
from ..jit import enable_pynndescent_cache
from ..progress import Progress
from .locality import spatial_order
from .metric import prepare_metric, to_metric_distance
from .nndescent import index_parameters
from .refine import local_join, merge_answers

logger = logging.getLogger("tsne_dist")

QUERY_EPSILON = 0.1  # pynndescent's search breadth for cross-shard queries (its default; 0 lost recall on GloVe)
# The merged graph already holds nearly all neighbours (recall@15 0.9997 on 100k GloVe words before the
# refinement); a fanout of 10 keeps that recall at about half the cost of the single-process fanout 16.
SHARDED_REFINE_FANOUT = 10


def build_shard_index(items: np.ndarray, start: int, stop: int, k: int, seed: int):
    """A pynndescent index of rows ``start:stop`` of ``items`` (prepared for queries), built with k + 1 neighbours."""
    enable_pynndescent_cache()  # in the worker process
    from pynndescent import NNDescent

    shard = items[start:stop]
    n_neighbors = min(k + 1, len(shard) - 1)
    index = NNDescent(shard, n_neighbors=n_neighbors, metric="euclidean", random_state=seed, n_jobs=1,
                      low_memory=True, verbose=False, **index_parameters(len(shard)))
    index.prepare()
    return index


def query_shard(index, queries: np.ndarray, rows: np.ndarray, shard_start: int, k: int):
    """k + 1 candidates of one shard for ``rows``: global int32 indices and distances."""
    n_found = min(k + 1, index._raw_data.shape[0])  # k' = k + 1: the row itself may be among them
    indices, distances = index.query(queries[rows], k=n_found, epsilon=QUERY_EPSILON)
    return _global(indices, shard_start), distances


def _with_own_shard(index, others, rows: np.ndarray, shard_start: int, k: int):
    """The best k of ``rows`` (all in this index's shard): their own shard's answer,
    read from the shard's neighbour graph instead of searched again, merged with
    ``others`` (the merged answer of the other shards, or None)."""
    indices, distances = index.neighbor_graph
    local = rows - shard_start
    own = (_global(indices[local], shard_start), distances[local])
    return merge_answers(own, _nothing(len(rows)) if others is None else others, k, rows)


def _nothing(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n_rows, 0), dtype=np.int32), np.empty((n_rows, 0), dtype=np.float32)


def _global(indices: np.ndarray, shard_start: int) -> np.ndarray:
    return np.where(indices >= 0, indices + shard_start, -1).astype(np.int32)


def _tree_merge(client, parts: list, k: int, rows: np.ndarray):
    while len(parts) > 1:
        merged = [client.submit(merge_answers, parts[i], parts[i + 1], k, rows, pure=False)
                  for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


def sharded_knn(client, vectors: np.ndarray, k: int, *, n_shards: int, metric: str = "euclidean", seed: int = 0,
                query_block: int = 20_000, refine: bool = True,
                refine_fanout: int = SHARDED_REFINE_FANOUT) -> tuple[np.ndarray, np.ndarray]:
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
        Rows per query task (neighbouring rows of one shard).
    refine : bool
        Run one local-join pass (:func:`.refine.local_join`) seeded with the
        merged graph; it reaches clusters that a shard's search cannot leave.
    refine_fanout : int
        Neighbours of neighbours joined per row by the refinement.

    Returns
    -------
    indices : np.ndarray
        (N, k) int32.
    distances : np.ndarray
        (N, k) float32, in ``metric``.
    """
    started = time.perf_counter()
    n_items = vectors.shape[0]
    bounds = np.linspace(0, n_items, n_shards + 1).astype(int)
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ConfigError("the Dask scheduler has no workers",
                          "start dask worker processes for it, or use `cluster` local")
    items, queries = prepare_metric(vectors, metric)
    items_ref = client.scatter(items, broadcast=True, hash=False)  # a fresh key per call: no release race
    queries_ref = items_ref if queries is items else client.scatter(queries, broadcast=True, hash=False)
    holders = [[workers[s % len(workers)]] for s in range(n_shards)]  # shard s is built and queried there
    indexes = [client.submit(build_shard_index, items_ref, int(bounds[s]), int(bounds[s + 1]), k, seed + s,
                             **_pinned(holders[s])) for s in range(n_shards)]
    order = spatial_order(items, seed=seed)  # blocks of neighbouring rows: their searches share memory
    blocks, block_rows = [], []
    for rows, home in _query_blocks(order, bounds, query_block):
        # A shard's queries run where its index lives: moving an index costs more than its queries.
        answers = [client.submit(query_shard, indexes[s], queries_ref, rows, int(bounds[s]), k, **_pinned(holders[s]))
                   for s in range(n_shards) if s != home or queries is not items]
        if queries is items:  # the home shard's graph already holds its rows' neighbours
            others = _tree_merge(client, answers, k, rows) if answers else None
            blocks.append(client.submit(_with_own_shard, indexes[home], others, rows, int(bounds[home]), k,
                                        **_pinned(holders[home])))
        else:  # every shard was queried; a lone answer still needs its row dropped and its width cut
            parts = answers if len(answers) > 1 else answers + [_nothing(len(rows))]
            blocks.append(_tree_merge(client, parts, k, rows))
        block_rows.append(rows)
    _report_builds(indexes)
    built = time.perf_counter()
    indices, distances = _collect(blocks, block_rows, k, f"kNN ({n_shards} shards)")
    merged = time.perf_counter()
    if refine:
        graph = client.scatter(indices, broadcast=True, hash=False)
        # at least two refinement tasks a worker, the same number on each
        chunks = _even_blocks(order, min(query_block, -(-n_items // (2 * len(workers)))), len(workers))
        refined = [client.submit(local_join, items_ref, queries_ref, graph, k, rows=rows, fanout=refine_fanout,
                                 pure=False) for rows in chunks]
        indices, distances = _collect(refined, chunks, k, "kNN refinement")
    logger.info("sharded kNN: %d shard indexes built in %.1f s, then queried and merged in %.1f s, refined in %.1f s",
                n_shards, built - started, merged - built, time.perf_counter() - merged)
    return indices, to_metric_distance(distances, metric)


def _pinned(workers: list[str]) -> dict:
    """Run on ``workers``; elsewhere only if they have left the cluster."""
    return {"workers": workers, "allow_other_workers": True, "pure": False}


def _report_builds(indexes: list) -> None:
    """Wait for the shard indexes (they stay on their workers) with progress; a failed build raises."""
    from distributed import as_completed

    with Progress(len(indexes), "kNN (shard indexes)") as progress:
        for built in as_completed(indexes):
            if built.status == "error":
                built.result()
            progress.advance(1)


def _even_blocks(rows: np.ndarray, max_block: int, multiple: int = 1) -> list[np.ndarray]:
    """``rows`` cut, in order, into blocks of equal size: at most ``max_block`` rows
    each, their number a multiple of ``multiple``."""
    n_blocks = max(-(-len(rows) // max_block), 1)
    n_blocks = -(-n_blocks // multiple) * multiple
    return [block for block in np.array_split(rows, n_blocks) if len(block)]


def _query_blocks(order: np.ndarray, bounds: np.ndarray, query_block: int) -> list[tuple[np.ndarray, int]]:
    """(rows, shard) of query blocks of at most ``query_block`` rows of one shard,
    of equal size within a shard; each shard's rows are taken in ``order``."""
    blocks = []
    for shard, (first, last) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        shard_rows = order[(order >= first) & (order < last)]
        blocks += [(rows, shard) for rows in _even_blocks(shard_rows, query_block)]
    return blocks


def _collect(blocks: list, block_rows: list[np.ndarray], k: int, description: str) -> tuple[np.ndarray, np.ndarray]:
    """The answers of ``blocks`` (for ``block_rows``) placed in row order."""
    n_rows = sum(len(rows) for rows in block_rows)
    indices = np.empty((n_rows, k), dtype=np.int32)
    distances = np.empty((n_rows, k), dtype=np.float32)
    with Progress(len(blocks), description) as progress:
        for block, rows in zip(blocks, block_rows):
            indices[rows], distances[rows] = block.result()
            progress.advance(1)
    return indices, distances
