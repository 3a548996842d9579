"""Metrics as euclidean search: every backend searches euclidean space, and each
metric is mapped onto it.

- ``euclidean``: the vectors as they are; distance |q - x|.
- ``cosine``: rows scaled to unit length, where |q - x|^2 / 2 = 1 - cos(q, x); the
  stored distance is 1 - cosine similarity.
- ``inner_product``: maximum inner product search. Items are lifted to
  [x, sqrt(M^2 - |x|^2)] and queries to [q, 0], with M the largest item norm, so
  |q' - x'|^2 = |q|^2 + M^2 - 2 q.x ranks items by decreasing dot product q.x. The
  stored distance is that lifted euclidean distance; within a row its square differs
  from -2 q.x by a constant, so perplexity calibration turns each row into a
  softmax of dot products. An item need not be its own best match under this metric
  (a longer vector pointing the same way scores higher); it is excluded all the same.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, InputError

METRICS = ("euclidean", "cosine", "inner_product")


def check_metric(metric: str) -> None:
    """Raise :class:`ConfigError` for a metric we do not support."""
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def check_defined(vectors: np.ndarray, metric: str, source: str) -> None:
    """Raise :class:`InputError` when ``metric`` is undefined for some rows.

    Cosine distance is undefined for rows of zero norm (scipy returns NaN there).
    Left in, they would all sit at one distance from every item and fill real
    items' neighbour lists, so they are refused with their count.
    """
    if metric != "cosine":
        return
    array = np.asarray(vectors)
    block = max(1, (1 << 22) // max(array.shape[1], 1))
    zero = sum(int((~np.any(array[start:start + block] != 0, axis=1)).sum())
               for start in range(0, len(array), block))
    if zero:
        raise InputError(f"{zero:,} of {len(vectors):,} rows in {source} are all zeros, and cosine distance is "
                         "undefined for them", "drop those rows, or set `metric` to euclidean")


def prepare_metric(vectors: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Item and query vectors whose euclidean distances rank like ``metric``.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) vectors (NumPy or CuPy).
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product``.

    Returns
    -------
    items, queries : array
        The rows searched and the rows searching them (row i of ``queries`` is
        item i as a query). They are the same array except for ``inner_product``,
        where both have D + 1 columns.
    """
    check_metric(metric)
    xp = _array_module(vectors)
    if metric == "euclidean":
        return vectors, vectors
    sq_norms = (vectors.astype(np.float64) ** 2).sum(axis=1)
    if metric == "cosine":
        norms = xp.sqrt(sq_norms)[:, None]
        unit = (vectors / xp.where(norms > 0, norms, 1.0)).astype(vectors.dtype)
        return unit, unit
    lift = xp.sqrt(xp.maximum(sq_norms.max() - sq_norms, 0.0)).astype(vectors.dtype)
    items = xp.concatenate([vectors, lift[:, None]], axis=1)
    queries = xp.concatenate([vectors, xp.zeros((vectors.shape[0], 1), dtype=vectors.dtype)], axis=1)
    return items, queries


def to_metric_distance(euclidean: np.ndarray, metric: str) -> np.ndarray:
    """Distances in ``metric`` from euclidean distances in the prepared space (float32)."""
    if metric == "cosine":
        return (euclidean.astype(np.float64) ** 2 / 2).astype(np.float32)
    return euclidean.astype(np.float32)


def _array_module(array: np.ndarray):
    from ..xp import get_array_module

    return get_array_module(array)
