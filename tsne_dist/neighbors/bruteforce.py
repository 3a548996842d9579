"""Exact kNN by blocked brute force, written once against the array module ``xp``.

A query block times a data block gives squared distances; each row keeps its k
best, merged across data blocks. Ties are broken by the smaller index, so the
result is deterministic and equals a sorted full-distance reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..xp import get_array_module


def squared_distances(queries, data, data_sq_norms=None):
    """Squared euclidean distances between rows of ``queries`` and ``data``."""
    xp = get_array_module(queries)
    if data_sq_norms is None:
        data_sq_norms = (data * data).sum(axis=1)
    query_sq_norms = (queries * queries).sum(axis=1)
    distances = query_sq_norms[:, None] + data_sq_norms[None, :] - 2.0 * (queries @ data.T)
    return xp.maximum(distances, 0.0)


def _top_k_sorted(distances, indices, k: int):
    """Per row, the k smallest (distance, index) pairs, sorted by distance then index."""
    xp = get_array_module(distances)
    if distances.shape[1] > k:
        part = xp.argpartition(distances, k - 1, axis=1)[:, :k]
        # argpartition splits ties at the k-th value arbitrarily: keep every entry
        # up to the k-th distance so the index tie-break below is exact.
        kth = xp.take_along_axis(distances, part, axis=1).max(axis=1, keepdims=True)
        rows, cols = xp.nonzero(distances <= kth)
    else:
        rows, cols = xp.nonzero(xp.ones(distances.shape, dtype=bool))
    return _sort_candidates(distances, indices, rows, cols, k)


def _sort_candidates(distances, indices, rows, cols, k: int):
    xp = get_array_module(distances)
    n_rows = distances.shape[0]
    order = xp.lexsort(xp.stack([indices[rows, cols], distances[rows, cols], rows]))
    rows, cols = rows[order], cols[order]
    starts = xp.searchsorted(rows, xp.arange(n_rows))
    rank = xp.arange(rows.shape[0]) - starts[rows]
    chosen = rank < k
    out_d = xp.empty((n_rows, k), dtype=distances.dtype)
    out_i = xp.empty((n_rows, k), dtype=indices.dtype)
    out_d[rows[chosen], rank[chosen]] = distances[rows[chosen], cols[chosen]]
    out_i[rows[chosen], rank[chosen]] = indices[rows[chosen], cols[chosen]]
    return out_d, out_i


def block_sizes(n_items: int, budget_bytes: int, itemsize: int, *, max_query_block: int = 2048) -> tuple[int, int]:
    """Query and data block sizes whose working set fits ``budget_bytes``.

    A (query block x data block) step holds the distances, the candidate indices
    (int64) and the merged copies of both with the k best so far: about
    ``2 * itemsize + 24`` bytes per cell.

    Parameters
    ----------
    n_items : int
        Rows searched.
    budget_bytes : int
        Memory the blocks may use.
    itemsize : int
        Bytes per distance (4 for float32 on a GPU, 8 for float64 on NumPy).
    max_query_block : int
        Largest query block.

    Returns
    -------
    query_block, data_block : int
    """
    cell_bytes = 2 * itemsize + 24
    budget = max(int(budget_bytes), 1 << 20)
    query_block = int(min(max_query_block, n_items, max(budget // (cell_bytes * 1024), 64)))
    data_block = int(min(n_items, max(budget // (cell_bytes * query_block), 1024)))
    return query_block, data_block


def block_budget(xp) -> int:
    """Bytes the search blocks may use: 40 % of the GPU's free memory for CuPy, a
    quarter of available RAM (at most 1 GiB) for NumPy."""
    if xp is np:
        import psutil

        return int(min(psutil.virtual_memory().available // 4, 1 << 30))
    free, _total = xp.cuda.Device().mem_info
    return int(free * 0.4)


def bruteforce_knn(data, k: int, *, query_block: int | None = None, data_block: int | None = None,
                   exclude_self: bool = True, on_block: Callable[[int], None] | None = None, queries=None,
                   query_vectors=None):
    """Exact k nearest neighbours of every row of ``data`` among all rows.

    Parameters
    ----------
    data : xp.ndarray
        (N, D) vectors (NumPy or CuPy); distances are computed in float64 on
        NumPy for exactness and in the input precision on CuPy.
    k : int
        Neighbours per row (self excluded when ``exclude_self``).
    query_block, data_block : int, optional
        Rows per block; memory is about ``query_block * data_block`` distances.
        By default derived from free memory (:func:`block_sizes`): the GPU's for
        CuPy, a quarter of available RAM (at most 1 GiB of blocks) for NumPy.
    exclude_self : bool
        Drop each row itself from its neighbours.
    on_block : callable, optional
        Called with the number of query rows finished after each query block.
    queries : array of int, optional
        Search only these rows' neighbours (default: every row).
    query_vectors : xp.ndarray, optional
        (N, D) vectors that search, row i for item i, when they differ from
        ``data`` (the lifted queries of inner product search); each item is still
        excluded from its own neighbours by row number.

    Returns
    -------
    indices : xp.ndarray
        (N, k) int32, nearest first, ties by smaller index.
    distances : xp.ndarray
        (N, k) float32 euclidean distances.
    """
    xp = get_array_module(data)
    if xp is np:
        work = data.astype(np.float64)
    else:
        work = data if data.dtype.kind == "f" else data.astype(np.float32)
    n_items = work.shape[0]
    if k > n_items - int(exclude_self):
        raise ValueError(f"k={k} needs at least {k + 1} items, got {n_items}")
    rows = xp.arange(n_items) if queries is None else xp.asarray(queries)
    query_work = work if query_vectors is None else query_vectors.astype(work.dtype)
    if query_block is None or data_block is None:
        auto_query, auto_data = block_sizes(n_items, block_budget(xp), work.dtype.itemsize)
        query_block, data_block = query_block or auto_query, data_block or auto_data
    sq_norms = (work * work).sum(axis=1)
    all_indices = []
    all_distances = []
    for q_start in range(0, rows.shape[0], query_block):
        q_stop = min(q_start + query_block, rows.shape[0])
        query_rows = rows[q_start:q_stop]
        best_d, best_i = _query_block(work, sq_norms, query_work[query_rows], query_rows, k, data_block,
                                      exclude_self)
        all_indices.append(best_i.astype(np.int32))
        all_distances.append(xp.sqrt(best_d).astype(np.float32))
        if on_block is not None:
            on_block(q_stop - q_start)
    return xp.concatenate(all_indices), xp.concatenate(all_distances)


def _query_block(work, sq_norms, queries, query_rows, k: int, data_block: int, exclude_self: bool):
    xp = get_array_module(work)
    best_d = best_i = None
    for d_start in range(0, work.shape[0], data_block):
        d_stop = min(d_start + data_block, work.shape[0])
        distances = squared_distances(queries, work[d_start:d_stop], sq_norms[d_start:d_stop])
        if exclude_self:
            _mask_self(distances, query_rows, d_start, d_stop)
        indices = xp.broadcast_to(xp.arange(d_start, d_stop, dtype=np.int64), distances.shape)
        if best_d is not None:
            distances = xp.concatenate([best_d, distances], axis=1)
            indices = xp.concatenate([best_i, indices], axis=1)
        best_d, best_i = _top_k_sorted(distances, xp.ascontiguousarray(indices), k)
    return best_d, best_i


def _mask_self(distances, query_rows, d_start: int, d_stop: int) -> None:
    """Set each query's distance to itself to infinity (when it lies in this data block)."""
    xp = get_array_module(distances)
    inside = xp.flatnonzero((query_rows >= d_start) & (query_rows < d_stop))
    distances[inside, query_rows[inside] - d_start] = xp.inf
