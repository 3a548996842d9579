"""Initial layouts: PCA (default) or random, scaled to standard deviation 1e-4; or a
previous map's positions (warm start), with new items at their neighbours' median."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger("tsne_dist")

INIT_STD = 1e-4
INITIALIZATIONS = ("pca", "random")
PLACEMENT_ROUNDS = 10  # new items placed from new items placed in an earlier round (chains of new items)
NEW_ITEM_JITTER = 1e-3  # of the layout's standard deviation: new items with the same neighbours do not coincide


def random_init(n_items: int, seed: int) -> np.ndarray:
    """Gaussian layout with standard deviation 1e-4."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, INIT_STD, size=(n_items, 2))


def pca_init(vectors: np.ndarray, seed: int) -> np.ndarray:
    """First two principal components, first axis scaled to standard deviation 1e-4.

    Up to ``EIGH_MAX_DIMS`` dimensions the components are the top two eigenvectors
    of the D x D covariance matrix (NumPy, float64, accumulated in row blocks:
    O(N D^2) time, O(D^2) extra memory), each signed so that its largest-magnitude
    loading is positive (deterministic); wider vectors use scikit-learn's PCA
    (randomized SVD with ``seed`` above 5M entries), which is faster there.
    Falls back to :func:`random_init` (with a log line) when the vectors have
    no variance along two directions (e.g. all identical), where PCA is undefined.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) item vectors.
    seed : int
        Seed of the randomized SVD and of the fallback.

    Returns
    -------
    np.ndarray
        (N, 2) float64.
    """
    n_items, n_dims = vectors.shape
    if n_dims < 2:
        logger.info("PCA init needs two dimensions; using random init")
        return random_init(n_items, seed)
    with np.errstate(all="ignore"):
        layout = _project(vectors) if n_dims <= EIGH_MAX_DIMS else _sklearn_pca(vectors, seed)
    scale = layout[:, 0].std()
    if not np.isfinite(layout).all() or scale <= 0 or layout[:, 1].std() <= 1e-12 * max(scale, 1e-300):
        logger.info("the vectors have no spread along two directions; using random init")
        return random_init(n_items, seed)
    return layout / scale * INIT_STD


EIGH_MAX_DIMS = 256  # above, scikit-learn's PCA is faster (5,000 x 1,024: 1.4 s against 4.8 s)


def _project(vectors: np.ndarray) -> np.ndarray:
    """(N, 2) float64 coordinates along the top two principal axes."""
    components = _principal_axes(vectors, 2)
    return np.vstack([(block.astype(np.float64) - components.mean) @ components.axes
                      for block in _row_blocks(vectors)])


def _sklearn_pca(vectors: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA  # scikit-learn loads in 1.5 s: only where used

    solver = "randomized" if vectors.shape[0] * vectors.shape[1] > 5_000_000 else "full"
    return PCA(n_components=2, svd_solver=solver, random_state=seed).fit_transform(vectors.astype(np.float64))


@dataclass(frozen=True)
class _Axes:
    mean: np.ndarray  # (D,) float64
    axes: np.ndarray  # (D, n) float64, columns by decreasing variance


def _row_blocks(vectors: np.ndarray, rows: int = 65_536):
    """Consecutive blocks of ``rows`` rows (views)."""
    for start in range(0, vectors.shape[0], rows):
        yield vectors[start:start + rows]


def _principal_axes(vectors: np.ndarray, n_axes: int) -> _Axes:
    """Mean and top ``n_axes`` eigenvectors of the covariance, largest loading of each positive."""
    mean = np.zeros(vectors.shape[1])
    for block in _row_blocks(vectors):
        mean += block.astype(np.float64).sum(axis=0)
    mean /= vectors.shape[0]
    scatter = np.zeros((vectors.shape[1], vectors.shape[1]))
    for block in _row_blocks(vectors):
        centred = block.astype(np.float64) - mean
        scatter += centred.T @ centred
    _, eigenvectors = np.linalg.eigh(scatter)  # ascending eigenvalues
    axes = eigenvectors[:, ::-1][:, :n_axes]
    largest = np.abs(axes).argmax(axis=0)
    axes = axes * np.sign(axes[largest, np.arange(n_axes)])
    return _Axes(mean=mean, axes=axes)


def initial_layout(initialization: str, n_items: int, seed: int, vectors: np.ndarray | None = None) -> np.ndarray:
    """The (N, 2) starting layout for a resolved ``initialization``.

    Parameters
    ----------
    initialization : str
        ``pca`` (needs ``vectors``) or ``random``.
    n_items : int
        Items to place.
    seed : int
        Seed.
    vectors : np.ndarray, optional
        (N, D) vectors for ``pca``.

    Raises
    ------
    ValueError
        For ``pca`` without vectors, or an unknown initialization.
    """
    if initialization == "pca":
        if vectors is None:
            raise ValueError("initialization 'pca' needs the vectors")
        return pca_init(vectors, seed)
    if initialization == "random":
        return random_init(n_items, seed)
    raise ValueError(f"initialization must be one of {', '.join(INITIALIZATIONS)}, got {initialization!r}")


def weighted_medians(rows: np.ndarray, values: np.ndarray, weights: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row, the weighted median of its values (NaN for a row with no entries).

    The lower weighted median: the smallest value whose cumulative weight reaches half
    of the row's total.

    Parameters
    ----------
    rows : np.ndarray
        (E,) int row of each entry, in [0, n_rows).
    values, weights : np.ndarray
        (E,) float values and their non-negative weights.
    n_rows : int
        Rows.

    Returns
    -------
    np.ndarray
        (n_rows,) float64.
    """
    medians = np.full(n_rows, np.nan)
    if len(rows) == 0:
        return medians
    order = np.lexsort((values, rows))
    rows, values, weights = rows[order], values[order], weights[order].astype(np.float64)
    totals = np.bincount(rows, weights=weights, minlength=n_rows)
    cumulative = np.cumsum(weights)
    row_start = np.searchsorted(rows, np.arange(n_rows))
    before = np.concatenate([[0.0], cumulative])[row_start]
    reached = np.flatnonzero(cumulative - before[rows] >= 0.5 * totals[rows] * (1 - 1e-12))
    first_rows, first = np.unique(rows[reached], return_index=True)
    medians[first_rows] = values[reached[first]]
    return medians


def place_by_neighbours(P: sp.csr_matrix, positions: np.ndarray, placed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place unplaced rows at the affinity-weighted median of their placed neighbours.

    Rounds repeat so a row whose neighbours are all unplaced is placed from rows placed
    in an earlier round (openTSNE's ``prepare_partial`` "median" initialisation, extended
    to chains of new items).

    Parameters
    ----------
    P : scipy.sparse.csr_matrix
        (M, N) non-negative affinities from each row to the N positioned items
        (square and symmetric when the rows are the items themselves).
    positions : np.ndarray
        (N, 2) positions; only rows where ``placed`` is true are read.
    placed : np.ndarray
        (N,) bool.

    Returns
    -------
    positions : np.ndarray
        (M, 2) float64; NaN where a row has no placed neighbour even after the rounds.
    found : np.ndarray
        (M,) bool, rows that were placed.
    """
    P = P.tocsr()
    square = P.shape[0] == P.shape[1] and P.shape[0] == len(placed)
    known = np.asarray(placed, dtype=bool).copy()
    source = np.asarray(positions, dtype=np.float64).copy()
    result = np.full((P.shape[0], 2), np.nan)
    if square:
        result[known] = source[known]
    rows_all = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
    for _ in range(PLACEMENT_ROUNDS if square else 1):
        todo = ~np.isfinite(result[:, 0])
        usable = todo[rows_all] & known[P.indices]
        if not usable.any():
            break
        rows, cols, weights = rows_all[usable], P.indices[usable], P.data[usable]
        for axis in range(2):
            medians = weighted_medians(rows, source[cols, axis], weights, P.shape[0])
            result[todo, axis] = medians[todo]
        if square:
            newly = todo & np.isfinite(result[:, 0])
            source[newly] = result[newly]
            known |= newly
    found = np.isfinite(result[:, 0])
    return result, found


def warm_start_layout(P: sp.csr_matrix, previous: np.ndarray, kept: np.ndarray, seed: int,
                      scale: float = 1.0) -> np.ndarray:
    """A starting layout from a previous map: kept items where they were, new items beside
    their neighbours.

    Parameters
    ----------
    P : scipy.sparse.csr_matrix
        (N, N) symmetric affinities of this run.
    previous : np.ndarray
        (N, 2) previous positions of this run's items (rows where ``kept`` is false are ignored).
    kept : np.ndarray
        (N,) bool, items the previous map holds.
    seed : int
        Seed of the small jitter that keeps new items with the same neighbours apart.
    scale : float
        Factor on the previous positions (the spread a map of N items settles at grows
        like sqrt(N)).

    Returns
    -------
    np.ndarray
        (N, 2) float64. A new item with no placed neighbour starts at the median of the
        kept items.

    Raises
    ------
    ValueError
        When no item is kept.
    """
    kept = np.asarray(kept, dtype=bool)
    if not kept.any():
        raise ValueError("a warm start needs at least one item of the previous map")
    start = np.zeros((len(kept), 2))
    start[kept] = np.asarray(previous, dtype=np.float64)[kept] * scale
    layout, found = place_by_neighbours(P, start, kept)
    layout[~found] = np.median(start[kept], axis=0)
    new = ~kept
    if new.any():
        jitter = NEW_ITEM_JITTER * max(float(start[kept].std()), 1e-12)
        layout[new] += np.random.default_rng(seed).normal(0.0, jitter, size=(int(new.sum()), 2))
    logger.info("warm start: %d items at their previous positions, %d new (%d beside placed neighbours)",
                int(kept.sum()), int(new.sum()), int((found & new).sum()))
    return layout
