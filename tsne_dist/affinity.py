"""Perplexity-calibrated t-SNE affinities from a kNN graph.

Each row's Gaussian bandwidth is found by binary search so that the entropy of
its conditional distribution equals ``log(perplexity)``; rows are processed in
blocks (bounded memory), then P is symmetrised and normalised to sum 1.
"""

from __future__ import annotations

import logging

import numba
import numpy as np
import scipy.sparse as sp

from .errors import InputError
from .progress import Progress

logger = logging.getLogger("tsne_dist")

ROW_BLOCK = 100_000


@numba.njit(parallel=True, cache=True)
def _calibrate_rows(sq_distances: np.ndarray, log_perplexity: float, tolerance: float,
                    max_iter: int) -> np.ndarray:  # pragma: no cover - compiled
    n_rows, k = sq_distances.shape
    out = np.empty((n_rows, k), dtype=np.float64)
    for row in numba.prange(n_rows):
        shifted = sq_distances[row] - sq_distances[row].min()
        span = shifted.max()
        if span <= 0.0:
            out[row] = 1.0 / k
            continue
        beta = 1.0 / max(shifted.mean(), 1e-300)
        beta_low, beta_high = 0.0, np.inf
        weights = np.exp(-shifted * beta)
        for _ in range(max_iter):
            weights = np.exp(-shifted * beta)
            total = weights.sum()
            entropy = np.log(total) + beta * (shifted * weights).sum() / total
            gap = entropy - log_perplexity
            if abs(gap) < tolerance:
                break
            if gap > 0:
                beta_low = beta
                beta = beta * 2.0 if beta_high == np.inf else (beta + beta_high) / 2.0
            else:
                beta_high = beta
                beta = (beta + beta_low) / 2.0
        out[row] = weights / weights.sum()
    return out


def conditional_probabilities(distances: np.ndarray, perplexity: float, *, tolerance: float = 1e-5,
                              max_iter: int = 200, progress: Progress | None = None) -> np.ndarray:
    """Row-normalised Gaussian affinities p_{j|i} over each row's neighbours.

    Parameters
    ----------
    distances : np.ndarray
        (N, k) neighbour distances (not squared).
    perplexity : float
        Target perplexity; must not exceed k.
    tolerance : float
        Allowed absolute error of each row's entropy (nats).
    max_iter : int
        Binary-search steps per row.
    progress : Progress, optional
        Advanced by the rows of each finished block.

    Returns
    -------
    np.ndarray
        (N, k) float64, each row sums to 1.
    """
    n_rows = distances.shape[0]
    out = np.empty(distances.shape, dtype=np.float64)
    log_perplexity = float(np.log(min(perplexity, distances.shape[1])))
    for start in range(0, n_rows, ROW_BLOCK):
        block = distances[start:start + ROW_BLOCK].astype(np.float64)
        out[start:start + ROW_BLOCK] = _calibrate_rows(block * block, log_perplexity, tolerance, max_iter)
        if progress is not None:
            progress.advance(block.shape[0])
    return out


def joint_probabilities(indices: np.ndarray, distances: np.ndarray, perplexity: float) -> sp.csr_matrix:
    """Symmetric t-SNE affinities P = (P_cond + P_cond^T) / sum, as CSR.

    Parameters
    ----------
    indices : np.ndarray
        (N, k) neighbour row numbers, self excluded.
    distances : np.ndarray
        (N, k) neighbour distances.
    perplexity : float
        Target perplexity of each row.

    Returns
    -------
    scipy.sparse.csr_matrix
        (N, N) float32 values, int32 indices, sums to 1, no diagonal.
    """
    n_rows, k = indices.shape
    with Progress(n_rows, "affinities") as progress:
        conditional = conditional_probabilities(distances, perplexity, progress=progress)
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), k)
    matrix = sp.csr_matrix((conditional.ravel(), (rows, indices.ravel().astype(np.int32))), shape=(n_rows, n_rows))
    matrix = matrix + matrix.T
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.data /= matrix.data.sum()
    matrix.data = matrix.data.astype(np.float32)
    matrix.indices = matrix.indices.astype(np.int32)
    return matrix


def check_item_count(n_items: int, perplexity: float, k: int) -> None:
    """Raise :class:`~tsne_dist.errors.InputError` when ``n_items`` cannot carry this perplexity and k neighbours."""
    needed = max(int(np.floor(3 * perplexity)) + 1, k + 1)
    if n_items < needed:
        fitting = max(1, (n_items - 1) // 3)
        raise InputError(
            f"{n_items} items are too few for perplexity {perplexity:g} with {k} neighbours (needs at least {needed})",
            f"use `perplexity` {fitting} or fewer, or add items",
        )
