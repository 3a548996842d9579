"""Approximate kNN on Dask: one pynndescent index per shard, every query block asks
every other shard (its own shard answers from the shard's neighbour graph), and the
answers are merged to a global top-k by a tree reduction.

A query block holds rows that are close in space (:func:`.locality.spatial_order`),
so its searches walk the same part of a shard's graph while it is in cache. The rows
are written once, in shard order (each shard's query blocks one after the other), to a
Zarr array that every worker can reach; a task reads one shard or one query block of
it, so no worker holds more than its shard plus a block. Ties are
broken by the smaller index, so the merge does not depend on the order in which
shards answer; each shard's index is seeded from the run's seed and its number.
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ..errors import ConfigError, StoreError
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


@dataclass
class ShardIndex:
    """A pynndescent index of one shard and the global row number of each of its rows."""

    index: Any
    ids: np.ndarray  # (n_shard,) int32


def build_shard_index(rows: Any, start: int, stop: int, ids: np.ndarray, k: int, seed: int) -> ShardIndex:
    """A pynndescent index of ``rows[start:stop]`` (prepared for queries), built with k + 1 neighbours.

    Parameters
    ----------
    rows : zarr.Array or np.ndarray
        (N, D) float32 rows in shard order; a Zarr array is read where the task runs,
        only the shard's rows.
    start, stop : int
        The shard's rows in ``rows``.
    ids : np.ndarray
        (stop - start,) int32 global row numbers of those rows.
    k : int
        Neighbours wanted.
    seed : int
        pynndescent's random state.
    """
    enable_pynndescent_cache()  # in the worker process
    from pynndescent import NNDescent

    shard = np.ascontiguousarray(readable(rows)[start:stop], dtype=np.float32)
    n_neighbors = min(k + 1, len(shard) - 1)
    index = NNDescent(shard, n_neighbors=n_neighbors, metric="euclidean", random_state=seed, n_jobs=1,
                      low_memory=True, verbose=False, **index_parameters(len(shard)))
    index.prepare()
    return ShardIndex(index=index, ids=np.asarray(ids, dtype=np.int32))


def query_shard(shard: ShardIndex, queries: Any, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k + 1 candidates of one shard for the query rows ``queries[start:stop]``: global int32
    indices and distances (``queries`` a Zarr array read here, or an in-memory array)."""
    n_found = min(k + 1, len(shard.ids))  # k' = k + 1: the row itself may be among them
    block = np.ascontiguousarray(readable(queries)[start:stop], dtype=np.float32)
    indices, distances = shard.index.query(block, k=n_found, epsilon=QUERY_EPSILON)
    return _global(indices, shard.ids), distances


_READABLE: set[tuple[str, str]] = set()  # arrays this process has found whole


def readable(rows: Any) -> Any:
    """``rows`` itself, after checking that this process reads the Zarr array it names (a Zarr
    array whose store this worker cannot see would read as zeros, its fill value). The check
    lists the array's chunks once per worker process, not once per query task.

    Raises
    ------
    StoreError
        When the array's store is not reachable from here.
    """
    if not isinstance(rows, zarr.Array):
        return rows
    key = (str(rows.store), rows.path)
    if key in _READABLE or rows.nchunks_initialized == rows.nchunks:
        _READABLE.add(key)
        return rows
    raise StoreError(f"a Dask worker cannot read {rows.store} ({rows.nchunks_initialized} of {rows.nchunks} chunks "
                     "of the shard-ordered rows found)",
                     "give the workers the run's output location: a shared folder, or object storage "
                     "(an fsspec URL as `out`)")


def _with_own_shard(shard: ShardIndex, others, local: np.ndarray, rows: np.ndarray, k: int):
    """The best k of ``rows`` (at positions ``local`` of this shard): their own shard's answer,
    read from the shard's neighbour graph instead of searched again, merged with
    ``others`` (the merged answer of the other shards, or None)."""
    indices, distances = shard.index.neighbor_graph
    own = (_global(indices[local], shard.ids), distances[local])
    return merge_answers(own, _nothing(len(rows)) if others is None else others, k, rows)


def _nothing(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n_rows, 0), dtype=np.int32), np.empty((n_rows, 0), dtype=np.float32)


def _global(indices: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.where(indices >= 0, ids[np.maximum(indices, 0)], -1).astype(np.int32)


def _tree_merge(client, parts: list, k: int, rows: np.ndarray):
    while len(parts) > 1:
        merged = [client.submit(merge_answers, parts[i], parts[i + 1], k, rows, pure=False)
                  for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


def sharded_knn(client, vectors: np.ndarray, k: int, *, n_shards: int, metric: str = "euclidean", seed: int = 0,
                query_block: int = 20_000, refine: bool = True, refine_fanout: int = SHARDED_REFINE_FANOUT,
                scratch: zarr.Group | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row, self excluded, searched on a Dask cluster.

    The rows, in shard order, are written once to Zarr arrays in ``scratch``; each
    task reads only what it needs: a shard's build its shard's rows, a query task its
    query block. No worker receives the whole array, and workers need no shared disk
    when ``scratch`` is on object storage. The merged graph is refined by one
    local-join pass (:func:`.refine.local_join`) here, in the calling process.

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
        Run one local-join pass seeded with the merged graph; it reaches clusters
        that a shard's search cannot leave.
    refine_fanout : int
        Neighbours of neighbours joined per row by the refinement.
    scratch : zarr.Group, optional
        A group every worker can reach (the run store's ``knn`` group, local or on
        object storage) for the shard-ordered rows, deleted at the end. Default: a
        temporary local folder (workers on this machine only).

    Returns
    -------
    indices : np.ndarray
        (N, k) int32.
    distances : np.ndarray
        (N, k) float32, in ``metric``.

    Raises
    ------
    ConfigError
        When the scheduler has no workers.
    """
    started = time.perf_counter()
    n_items = vectors.shape[0]
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ConfigError("the Dask scheduler has no workers",
                          "start dask worker processes for it, or use `cluster` local")
    items, queries = prepare_metric(vectors, metric)
    bounds = np.linspace(0, n_items, n_shards + 1).astype(int)
    order = spatial_order(items, seed=seed)  # blocks of neighbouring rows: their searches share memory
    blocks = _query_blocks(order, bounds, query_block)
    shard_order = np.concatenate([rows for rows, _ in blocks]).astype(np.int32)  # shard s: bounds[s]:bounds[s+1]
    with ExitStack() as cleanup:
        if scratch is None:
            folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="tsne-dist-knn-"))
            scratch = zarr.create_group(store=folder)  # a temporary store of our own, not the run's
        stored_items = _write_rows(scratch, "sharded_items", items, shard_order)
        stored_queries = stored_items if queries is items else _write_rows(scratch, "sharded_queries", queries,
                                                                           shard_order)
        cleanup.callback(_delete, scratch, ["sharded_items", "sharded_queries"])
        holders = [[workers[s % len(workers)]] for s in range(n_shards)]  # shard s is built and queried there
        indexes = [client.submit(build_shard_index, stored_items, int(bounds[s]), int(bounds[s + 1]),
                                 shard_order[bounds[s]:bounds[s + 1]], k, seed + s, **_pinned(holders[s]))
                   for s in range(n_shards)]
        answers_by_block, block_rows, position = [], [], 0
        for rows, home in blocks:
            start, stop = position, position + len(rows)
            position = stop
            # A shard's queries run where its index lives: moving an index costs more than its queries.
            answers = [client.submit(query_shard, indexes[s], stored_queries, start, stop, k, **_pinned(holders[s]))
                       for s in range(n_shards) if s != home or queries is not items]
            if queries is items:  # the home shard's graph already holds its rows' neighbours
                others = _tree_merge(client, answers, k, rows) if answers else None
                local = np.arange(start - bounds[home], stop - bounds[home])
                answers_by_block.append(client.submit(_with_own_shard, indexes[home], others, local, rows, k,
                                                      **_pinned(holders[home])))
            else:  # every shard was queried; a lone answer still needs its row dropped and its width cut
                parts = answers if len(answers) > 1 else answers + [_nothing(len(rows))]
                answers_by_block.append(_tree_merge(client, parts, k, rows))
            block_rows.append(rows)
        _report_builds(indexes)
        built = time.perf_counter()
        indices, distances = _collect(answers_by_block, block_rows, k, f"kNN ({n_shards} shards)")
        del indexes, answers_by_block
    merged = time.perf_counter()
    if refine:
        logger.info("kNN: refining the merged graph by one local-join pass (fanout %d)", refine_fanout)
        found, found_distances = local_join(items, queries, indices, k, rows=order, fanout=refine_fanout)
        indices[order], distances[order] = found, found_distances
    logger.info("sharded kNN: %d shard indexes built in %.1f s, then queried and merged in %.1f s, refined in %.1f s",
                n_shards, built - started, merged - built, time.perf_counter() - merged)
    return indices, to_metric_distance(distances, metric)


ROW_CHUNK_BYTES = 4 * 2**20  # rows per chunk of the shard-ordered arrays: about 4 MB


def _write_rows(group: zarr.Group, name: str, rows: np.ndarray, order: np.ndarray) -> zarr.Array:
    """``rows[order]`` as a float32 Zarr array in ``group`` (written in slabs), chunked by rows."""
    n_rows, n_dims = rows.shape
    chunk_rows = int(max(1, min(n_rows, ROW_CHUNK_BYTES // (4 * max(n_dims, 1)))))
    array = group.create_array(name, shape=(n_rows, n_dims), chunks=(chunk_rows, n_dims), dtype=np.float32,
                               overwrite=True)
    slab = chunk_rows * 16
    for start in range(0, n_rows, slab):
        array[start:start + slab] = rows[order[start:start + slab]]
    return array


def _delete(group: zarr.Group, names: list[str]) -> None:
    for name in names:
        if name in group:
            del group[name]


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


def _even_blocks(rows: np.ndarray, max_block: int) -> list[np.ndarray]:
    """``rows`` cut, in order, into blocks of equal size, at most ``max_block`` rows each."""
    n_blocks = max(-(-len(rows) // max_block), 1)
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
