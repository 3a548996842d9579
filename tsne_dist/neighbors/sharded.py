"""Approximate kNN on Dask: one pynndescent index per shard, every query block asks
every other shard (its own shard answers from the shard's neighbour graph), and the
answers are merged to a global top-k by a tree reduction.

Ties are broken by the smaller index, so the merge does not depend on the order in
which shards answer; each shard's index is seeded from the run's seed and its number.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..errors import ConfigError
from ..progress import Progress
from .metric import prepare_metric, to_metric_distance
from .nndescent import index_parameters
from .refine import local_join, merge_answers

logger = logging.getLogger("tsne_dist")

QUERY_EPSILON = 0.1  # pynndescent's search breadth for cross-shard queries (its default; 0 lost recall on GloVe)
# The merged graph already holds nearly all neighbours (recall@15 0.9997 on 100k GloVe words before the
# refinement); a fanout of 10 keeps that recall at about half the cost of the single-process fanout 16.
SHARDED_REFINE_FANOUT = 10


def _build_shard_index(items: np.ndarray, start: int, stop: int, k: int, seed: int):
    from pynndescent import NNDescent

    shard = items[start:stop]
    n_neighbors = min(k + 1, len(shard) - 1)
    index = NNDescent(shard, n_neighbors=n_neighbors, metric="euclidean", random_state=seed, n_jobs=1,
                      low_memory=True, verbose=False, **index_parameters(len(shard)))
    index.prepare()
    return index


def _query_shard(index, queries: np.ndarray, q_start: int, q_stop: int, shard_start: int, k: int):
    """k + 1 candidates of one shard for rows [q_start, q_stop): global int32 indices and distances."""
    n_found = min(k + 1, index._raw_data.shape[0])  # k' = k + 1: the row itself may be among them
    indices, distances = index.query(queries[q_start:q_stop], k=n_found, epsilon=QUERY_EPSILON)
    return _global(indices, shard_start), distances


def _with_own_shard(index, others, q_start: int, q_stop: int, shard_start: int, k: int):
    """The best k of rows [q_start, q_stop): their own shard's answer, read from the
    shard's neighbour graph instead of searched again, merged with ``others`` (the
    merged answer of the other shards, or None)."""
    indices, distances = index.neighbor_graph
    rows = slice(q_start - shard_start, q_stop - shard_start)
    own = (_global(indices[rows], shard_start), distances[rows])
    return merge_answers(own, _nothing(q_stop - q_start) if others is None else others, k, q_start)


def _nothing(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n_rows, 0), dtype=np.int32), np.empty((n_rows, 0), dtype=np.float32)


def _global(indices: np.ndarray, shard_start: int) -> np.ndarray:
    return np.where(indices >= 0, indices + shard_start, -1).astype(np.int32)


def _tree_merge(client, parts: list, k: int, q_start: int):
    while len(parts) > 1:
        merged = [client.submit(merge_answers, parts[i], parts[i + 1], k, q_start, pure=False)
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
        Rows per query task.
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
                          "start dask worker processes for it, or use --cluster local")
    items, queries = prepare_metric(vectors, metric)
    items_ref = client.scatter(items, broadcast=True, hash=False)  # a fresh key per call: no release race
    queries_ref = items_ref if queries is items else client.scatter(queries, broadcast=True, hash=False)
    holders = [[workers[s % len(workers)]] for s in range(n_shards)]  # shard s is built and queried there
    indexes = [client.submit(_build_shard_index, items_ref, int(bounds[s]), int(bounds[s + 1]), k, seed + s,
                             **_pinned(holders[s])) for s in range(n_shards)]
    blocks = []
    for q_start, q_stop, home in _query_blocks(bounds, query_block):
        # A shard's queries run where its index lives: moving an index costs more than its queries.
        answers = [client.submit(_query_shard, indexes[s], queries_ref, q_start, q_stop, int(bounds[s]), k,
                                 **_pinned(holders[s]))
                   for s in range(n_shards) if s != home or queries is not items]
        if queries is items:  # the home shard's graph already holds its rows' neighbours
            others = _tree_merge(client, answers, k, q_start) if answers else None
            blocks.append(client.submit(_with_own_shard, indexes[home], others, q_start, q_stop, int(bounds[home]),
                                        k, **_pinned(holders[home])))
        else:  # every shard was queried; a lone answer still needs its row dropped and its width cut
            parts = answers if len(answers) > 1 else answers + [_nothing(q_stop - q_start)]
            blocks.append(_tree_merge(client, parts, k, q_start))
    _report_builds(indexes)
    built = time.perf_counter()
    indices, distances = _collect(blocks, f"kNN ({n_shards} shards)")
    merged = time.perf_counter()
    if refine:
        graph = client.scatter(indices, broadcast=True, hash=False)
        # at least two refinement tasks a worker, the same number on each
        edges = _even_edges(0, n_items, min(query_block, -(-n_items // (2 * len(workers)))), len(workers))
        refined = [client.submit(local_join, items_ref, queries_ref, graph, k, q_start=start, q_stop=stop,
                                 fanout=refine_fanout, pure=False)
                   for start, stop in zip(edges[:-1], edges[1:])]
        indices, distances = _collect(refined, "kNN refinement")
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


def _even_edges(first: int, last: int, max_block: int, multiple: int = 1) -> list[int]:
    """Edges of equal blocks covering [first, last): at most ``max_block`` rows each,
    their number a multiple of ``multiple``."""
    n_blocks = max(-(-(last - first) // max_block), 1)
    n_blocks = -(-n_blocks // multiple) * multiple
    return np.linspace(first, last, n_blocks + 1).astype(int).tolist()


def _query_blocks(bounds: np.ndarray, query_block: int) -> list[tuple[int, int, int]]:
    """(start, stop, shard) of query blocks of at most ``query_block`` rows, of equal
    size within a shard and never crossing a shard boundary."""
    blocks = []
    for shard, (first, last) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        edges = _even_edges(first, last, query_block)
        blocks += [(start, stop, shard) for start, stop in zip(edges[:-1], edges[1:]) if stop > start]
    return blocks


def _collect(blocks: list, description: str) -> tuple[np.ndarray, np.ndarray]:
    indices, distances = [], []
    with Progress(len(blocks), description) as progress:
        for block in blocks:
            block_indices, block_distances = block.result()  # already (rows, k) int32 / float32
            indices.append(block_indices)
            distances.append(block_distances)
            progress.advance(1)
    return np.concatenate(indices), np.concatenate(distances)
