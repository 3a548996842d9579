"""Compiled per-row kernels on kNN candidate lists: merging two answers for the same
rows, and one local-join pass over a kNN graph (each row's best k among its
neighbours and the neighbours of its nearest neighbours, by exact distance).

A neighbour of a neighbour is often a neighbour; one pass lifts the recall of an
approximate graph at a cost of N x (k + fanout^2) distances, with no N x N object.
Both kernels order a row's candidates the same way (:func:`_keep_best`): nearest
first, ties by the smaller index, each index once, the row itself left out.
"""

from __future__ import annotations

import numba
import numpy as np

DEFAULT_FANOUT = 16


@numba.njit(cache=True)
def _keep_best(row, candidates, distances, out_indices, out_distances):  # pragma: no cover - compiled
    """Write a row's best unique candidates into ``out_*`` (as many as they hold).

    Candidates that are -1, the row itself or at an infinite distance are skipped;
    a repeated index keeps its smallest distance.
    """
    by_index = np.argsort(candidates, kind="mergesort")
    candidates = candidates[by_index]
    distances = distances[by_index]
    head = 0
    for j in range(len(candidates)):
        if candidates[j] < 0 or candidates[j] == row:
            distances[j] = np.inf
        elif j > 0 and candidates[j] == candidates[head]:
            distances[head] = min(distances[head], distances[j])
            distances[j] = np.inf
        else:
            head = j
    order = np.argsort(distances, kind="mergesort")  # stable: ties stay ordered by index
    for kept in range(min(len(order), len(out_indices))):
        j = order[kept]
        if distances[j] == np.inf:
            break
        out_indices[kept] = candidates[j]
        out_distances[kept] = distances[j]


@numba.njit(parallel=True, cache=True)
def _merge(first_indices, first_distances, second_indices, second_distances, rows, keep):  # pragma: no cover
    n_rows = first_indices.shape[0]
    n_first = first_indices.shape[1]
    width = n_first + second_indices.shape[1]
    out_indices = np.full((n_rows, keep), -1, dtype=np.int32)
    out_distances = np.full((n_rows, keep), np.inf, dtype=np.float64)
    for r in numba.prange(n_rows):
        candidates = np.empty(width, dtype=np.int64)
        distances = np.empty(width, dtype=np.float64)
        candidates[:n_first] = first_indices[r]
        distances[:n_first] = first_distances[r]
        candidates[n_first:] = second_indices[r]
        distances[n_first:] = second_distances[r]
        _keep_best(rows[r], candidates, distances, out_indices[r], out_distances[r])
    return out_indices, out_distances


def merge_answers(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], keep: int,
                  rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two (indices, distances) answers for the same rows into the best ``keep``.

    Parameters
    ----------
    first, second : tuple of np.ndarray
        (n, a) and (n, b) global indices (-1 for none) and distances, any order.
    keep : int
        Neighbours kept per row.
    rows : np.ndarray
        (n,) global index of each row (the row itself is dropped from its answer).

    Returns
    -------
    indices : np.ndarray
        (n, keep) int32, nearest first, ties by smaller index, -1 where fewer were found.
    distances : np.ndarray
        (n, keep) float32 (inf where fewer were found).
    """
    indices, distances = _merge(first[0], first[1], second[0], second[1], np.asarray(rows, dtype=np.int64), keep)
    return indices, distances.astype(np.float32)


@numba.njit(parallel=True, cache=True)
def _local_join(items, queries, indices, rows, k, fanout):  # pragma: no cover - compiled
    n_rows = rows.shape[0]
    width = indices.shape[1]
    n_dims = items.shape[1]
    n_candidates = width + fanout * fanout
    out_indices = np.full((n_rows, k), -1, dtype=np.int32)
    out_distances = np.full((n_rows, k), np.inf, dtype=np.float64)
    for r in numba.prange(n_rows):
        row = rows[r]
        candidates = np.full(n_candidates, -1, dtype=np.int64)
        candidates[:width] = indices[row]
        slot = width
        for a in range(fanout):
            neighbour = indices[row, a]
            for b in range(fanout):
                if neighbour >= 0:
                    candidates[slot] = indices[neighbour, b]
                slot += 1
        distances = np.empty(n_candidates, dtype=np.float64)
        for j in range(n_candidates):
            found = candidates[j]
            if found < 0 or found == row:
                distances[j] = np.inf
                continue
            total = 0.0
            for d in range(n_dims):
                diff = np.float64(items[found, d]) - np.float64(queries[row, d])
                total += diff * diff
            distances[j] = total
        _keep_best(row, candidates, distances, out_indices[r], out_distances[r])
    return out_indices, out_distances


def local_join(items: np.ndarray, queries: np.ndarray, indices: np.ndarray, k: int, *,
               rows: np.ndarray | None = None, fanout: int = DEFAULT_FANOUT) -> tuple[np.ndarray, np.ndarray]:
    """Refine rows of a kNN graph by one local-join pass.

    Rows are refined in the order given: an order in which neighbouring rows follow
    each other (:func:`.locality.spatial_order`) reads much less memory.

    Parameters
    ----------
    items, queries : np.ndarray
        (N, D) rows searched and rows searching (see :mod:`.metric`).
    indices : np.ndarray
        (N, k') current neighbours, integer (self excluded; -1 for none).
    k : int
        Neighbours to return.
    rows : np.ndarray, optional
        Rows to refine, in this order (default: all, in row order).
    fanout : int
        The first ``fanout`` neighbours of the first ``fanout`` neighbours join
        the candidates.

    Returns
    -------
    indices : np.ndarray
        (len(rows), k) int32, in the order of ``rows``, nearest first, ties by
        smaller index; never worse than the input row, whose neighbours are among
        the candidates.
    distances : np.ndarray
        (len(rows), k) float32 euclidean distances between query and item vectors.
    """
    rows = np.arange(indices.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    fanout = int(min(fanout, indices.shape[1]))
    found, squared = _local_join(items, queries, indices, rows, k, fanout)
    return found, np.sqrt(squared).astype(np.float32)
