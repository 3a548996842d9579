"""One local-join pass over a kNN graph: each row's best k among its neighbours and
the neighbours of its nearest neighbours, by exact distance (compiled, row-parallel).

A neighbour of a neighbour is often a neighbour; one pass lifts the recall of an
approximate graph at a cost of N x (k + fanout^2) distances, with no N x N object.
"""

from __future__ import annotations

import numba
import numpy as np

DEFAULT_FANOUT = 16


@numba.njit(parallel=True, cache=True)
def _local_join(items, queries, indices, q_start, q_stop, k, fanout):  # pragma: no cover - compiled
    n_rows = q_stop - q_start
    width = indices.shape[1]
    n_dims = items.shape[1]
    n_candidates = width + fanout * fanout
    out_indices = np.full((n_rows, k), -1, dtype=np.int64)
    out_distances = np.full((n_rows, k), np.inf, dtype=np.float32)
    for r in numba.prange(n_rows):
        row = q_start + r
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
        by_index = np.argsort(candidates, kind="mergesort")
        candidates = candidates[by_index]
        distances = distances[by_index]
        order = np.argsort(distances, kind="mergesort")  # stable: ties stay ordered by index
        kept = 0
        last = -2
        for j in order:
            if kept == k or distances[j] == np.inf:
                break
            if candidates[j] == last:
                continue
            out_indices[r, kept] = candidates[j]
            out_distances[r, kept] = np.sqrt(distances[j])
            last = candidates[j]
            kept += 1
    return out_indices, out_distances


def local_join(items: np.ndarray, queries: np.ndarray, indices: np.ndarray, k: int, *, q_start: int = 0,
               q_stop: int | None = None, fanout: int = DEFAULT_FANOUT) -> tuple[np.ndarray, np.ndarray]:
    """Refine rows [q_start, q_stop) of a kNN graph by one local-join pass.

    Parameters
    ----------
    items, queries : np.ndarray
        (N, D) rows searched and rows searching (see :mod:`.metric`).
    indices : np.ndarray
        (N, k') current neighbours (self excluded; -1 for none).
    k : int
        Neighbours to return.
    q_start, q_stop : int
        Rows to refine (default: all).
    fanout : int
        The first ``fanout`` neighbours of the first ``fanout`` neighbours join
        the candidates.

    Returns
    -------
    indices : np.ndarray
        (rows, k) int32, nearest first, ties by smaller index; never worse than the
        input row, whose neighbours are among the candidates.
    distances : np.ndarray
        (rows, k) float32 euclidean distances between query and item vectors.
    """
    q_stop = indices.shape[0] if q_stop is None else q_stop
    fanout = int(min(fanout, indices.shape[1]))
    found, distances = _local_join(items, queries, indices.astype(np.int64), q_start, q_stop, k, fanout)
    return found.astype(np.int32), distances
