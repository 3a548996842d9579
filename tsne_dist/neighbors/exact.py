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


def exact_knn_between(queries: np.ndarray, vectors: np.ndarray, k: int, metric: str, *,
                      xp=np) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours in ``metric`` of other vectors (``queries``) among ``vectors``.

    Parameters
    ----------
    queries : np.ndarray
        (M, D) vectors that search; none of them is among ``vectors``.
    vectors : np.ndarray
        (N, D) vectors searched.
    k : int
        Neighbours per query, at most N.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product``.
    xp : module
        ``numpy``, or ``cupy`` to search on the GPU (results come back as NumPy).

    Returns
    -------
    indices : np.ndarray
        (M, k) int32 rows of ``vectors``, nearest first, ties by smaller index.
    distances : np.ndarray
        (M, k) float32 distances in ``metric``.
    """
    items, _ = prepare_metric(xp.asarray(vectors), metric)
    _, query_vectors = prepare_metric(xp.asarray(queries), metric)
    indices, distances = bruteforce_knn(items, k, exclude_self=False, queries=xp.arange(len(queries)),
                                        query_vectors=query_vectors)
    if xp is not np:
        indices, distances = xp.asnumpy(indices), xp.asnumpy(distances)
    return indices, to_metric_distance(distances, metric)


def tied_hits(found_distances: np.ndarray, kth: np.ndarray, rtol: float = 1e-5,
              atol: np.ndarray | float = 0.0) -> np.ndarray:
    """Per row, how many found neighbours are at most as far as the true k-th neighbour.

    Parameters
    ----------
    found_distances : np.ndarray
        (rows, k) distances of the neighbours a graph or map found.
    kth : np.ndarray
        (rows,) the true k-th neighbour distance of each row.
    rtol, atol : float or np.ndarray
        Tolerances that absorb rounding (float32 search against float64 check, or
        the cancellation in |q|² + |x|² - 2 q·x), so equal distances count as ties.

    Returns
    -------
    np.ndarray
        (rows,) int counts.
    """
    limit = kth * (1.0 + rtol) + atol
    return (found_distances <= np.reshape(limit, (-1, 1))).sum(axis=1)
