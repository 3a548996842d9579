"""Exact k-nearest-neighbour search in any of our metrics, on NumPy or CuPy."""

from __future__ import annotations

import numpy as np

from .bruteforce import bruteforce_knn
from .metric import prepare_metric, to_metric_distance


def exact_knn(vectors: np.ndarray, k: int, metric: str, *, queries: np.ndarray | None = None,
              on_block=None, xp=np) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours in ``metric`` of every row, or of the rows ``queries``.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) vectors.
    k : int
        Neighbours per row, self excluded.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product`` (see :mod:`.metric`).
    queries : array of int, optional
        Rows whose neighbours are wanted (default: all).
    on_block : callable, optional
        Progress callback (rows finished).
    xp : module
        ``numpy``, or ``cupy`` to search on the GPU (results come back as NumPy).

    Returns
    -------
    indices : np.ndarray
        (len(queries), k) int32, nearest first, ties by smaller index.
    distances : np.ndarray
        (len(queries), k) float32 distances in ``metric``.
    """
    items, query_vectors = prepare_metric(xp.asarray(vectors), metric)
    indices, distances = bruteforce_knn(items, k, queries=queries, on_block=on_block,
                                        query_vectors=None if query_vectors is items else query_vectors)
    if xp is not np:
        indices, distances = xp.asnumpy(indices), xp.asnumpy(distances)
    return indices, to_metric_distance(distances, metric)
