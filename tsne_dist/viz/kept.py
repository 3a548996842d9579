"""The viewer's "kept" count: how many of an item's nearest map neighbours are true high-D neighbours.

For item i with k listed high-D neighbours, take its k nearest items on the map
(squared distance on the exported float32 positions, ties by smaller index: what
the viewer computes when an item is clicked). A map neighbour j counts as kept
when it is at most as far from i in high-D as i's k-th listed neighbour, so items
tied with the k-th neighbour (exact duplicates, equal counts) are as right as the
listed ones, as in ``knn_recall@k`` (:mod:`tsne_dist.metrics`).

- With the run's vectors (vector path) the high-D distance of every (i, j) pair is
  computed in the run's metric and compared with the stored k-th distance (exact
  for exact search; pynndescent's k-th distance can only be larger than the true
  one, which makes the count at most slightly generous).
- Without vectors (interactions path) a map neighbour counts when it is in i's
  stored neighbour list (the run's k, usually 3 x perplexity, beyond the viewer's)
  at a distance no larger than the k-th: ties are seen as far as the stored list
  reaches. Padding (items that do not co-occur with i, listed so that every item
  has k) never counts.

The count can also exceed the listed overlap when an approximate search
(pynndescent) missed a true neighbour that the map placed nearby.
"""

from __future__ import annotations

import numpy as np

from ..metrics import map_neighbours
from ..neighbors.metric import prepare_metric, to_metric_distance

PAIR_BLOCK_VALUES = 2**24  # float64 differences held at once (128 MB)
TIE_RTOL = 1e-5  # float32 distances: two this close (relative) are a tie


def kept_counts(positions: np.ndarray, knn_indices: np.ndarray, knn_distances: np.ndarray, k: int, *,
                vectors: np.ndarray | None = None, metric: str = "euclidean",
                n_real: np.ndarray | None = None) -> np.ndarray:
    """Per item, how many of its k nearest map neighbours are high-D neighbours, ties included.

    Parameters
    ----------
    positions : np.ndarray
        (N, 2) float32 map positions.
    knn_indices, knn_distances : np.ndarray
        (N, K) the run's neighbour lists, nearest first, K >= k (distances in ``metric``).
    k : int
        The viewer's neighbour count.
    vectors : np.ndarray, optional
        (N, D) the run's vectors; without them ties are found within the stored lists.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product`` (with ``vectors``).
    n_real : np.ndarray, optional
        (N,) how many of each stored list are real neighbours (the rest is padding).

    Returns
    -------
    np.ndarray
        (N,) uint8 counts in [0, k].
    """
    n_items = len(positions)
    on_map = map_neighbours(positions, k)
    kth = knn_distances[:, k - 1].astype(np.float64)
    limit = kth + TIE_RTOL * np.abs(kth) + 1e-7
    counts = np.empty(n_items, dtype=np.uint8)
    if vectors is not None:
        items, queries = prepare_metric(np.asarray(vectors, dtype=np.float32), metric)
        block = max(1, PAIR_BLOCK_VALUES // (k * items.shape[1]))
        for start in range(0, n_items, block):
            rows = slice(start, min(start + block, n_items))
            differences = queries[rows, None, :].astype(np.float64) - items[on_map[rows]]
            np.square(differences, out=differences)
            distances = to_metric_distance(np.sqrt(differences.sum(axis=2)), metric)
            counts[rows] = (distances <= limit[rows, None]).sum(axis=1)
        return counts
    real = knn_indices >= 0
    if n_real is not None:
        real &= np.arange(knn_indices.shape[1])[None, :] < np.asarray(n_real).reshape(-1, 1)
    # the stored real neighbours tied with (or nearer than) the k-th
    within = real & (knn_distances <= limit[:, None])
    stored = np.flatnonzero(within.ravel())
    stored_pairs = np.sort((stored // knn_indices.shape[1]) * n_items + knn_indices.ravel()[stored])
    map_pairs = np.arange(n_items, dtype=np.int64)[:, None] * n_items + on_map
    found = np.searchsorted(stored_pairs, map_pairs.ravel())
    hit = stored_pairs[np.minimum(found, len(stored_pairs) - 1)] == map_pairs.ravel()
    counts[:] = hit.reshape(n_items, k).sum(axis=1)
    return counts
