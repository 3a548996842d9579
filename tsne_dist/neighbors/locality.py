"""An order of the rows in which rows close in space are close in the order.

Searching or refining neighbours row after row touches the vectors and neighbour
lists around each row; in a random row order every row's surroundings are cold in
the CPU cache. Walking the rows in this order instead keeps them warm: queries of
a 500k-item shard index and the local-join pass read much less memory.
"""

from __future__ import annotations

import numpy as np

SKETCH_DIMS = 32  # the tree splits a random projection of the vectors, not the vectors
LEAF_ROWS = 256


def spatial_order(vectors: np.ndarray, *, seed: int = 0, leaf_rows: int = LEAF_ROWS) -> np.ndarray:
    """Rows of ``vectors`` in the leaf order of a random-projection tree.

    Each node splits its rows at the median of their projection on the line through
    two of them (chosen at random), down to leaves of at most ``leaf_rows`` rows.
    The tree works on a ``SKETCH_DIMS``-dimensional random projection of the
    vectors, which keeps their clusters apart at a fraction of the cost.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) rows.
    seed : int
        Seed of the projection and of the splits.
    leaf_rows : int
        Rows below which a node is not split.

    Returns
    -------
    np.ndarray
        (N,) int64, a permutation of 0..N-1.
    """
    rng = np.random.default_rng(seed)
    n_rows, n_dims = vectors.shape
    if n_dims > SKETCH_DIMS:
        projection = rng.normal(size=(n_dims, SKETCH_DIMS)).astype(np.float32)
        sketch = np.asarray(vectors, dtype=np.float32) @ projection
    else:
        sketch = np.asarray(vectors, dtype=np.float32)
    order = np.arange(n_rows)
    segments = [(0, n_rows)]
    while segments:
        larger = []
        for start, stop in segments:
            if stop - start <= leaf_rows:
                continue
            rows = order[start:stop]
            first, second = rng.choice(stop - start, size=2, replace=False)
            along = sketch[rows] @ (sketch[rows[first]] - sketch[rows[second]])
            middle = (stop - start) // 2
            order[start:stop] = rows[np.argpartition(along, middle)]
            larger += [(start, start + middle), (start + middle, stop)]
        segments = larger
    return order
