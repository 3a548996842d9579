"""Similarities on the stored non-zeros, and each item's top-k neighbours.

With c_ij the (weighted) co-occurrence, n_i = c_ii the number of collections
holding item i (the stored diagonal) and M the number of collections kept:

- ``count``:   c_ij
- ``jaccard``: c_ij / (n_i + n_j - c_ij)
- ``lift``:    c_ij M / (n_i n_j)
- ``ppmi``:    max(log(c_ij M / (n_i n_j)) - shift, 0); zero entries are not neighbours
- ``cosine``:  c_ij / sqrt(n_i n_j)
- ``inv_log``: the dissimilarity 1 / log(1 + c_ij) (neighbours ranked by count)

Only non-zeros are touched; the diagonal is never a neighbour. The kNN distances
handed to the affinity stage are ``1 - s_ij / max_j s_ij`` for the similarities
(0 for the most similar neighbour, below 1 for all) and ``1 / log(1 + c_ij)`` for
``inv_log``.

Items with fewer than k neighbours are padded, never dropped: first with their
neighbours' neighbours (path distance ``D + d_ij + d_jl``, where D is the largest
possible direct distance, so padding always ranks after real neighbours), then,
for items with no co-occurring item at all, with the most frequent items at
distance ``3 D`` (equal weights). The counts of padded and isolated items are
logged and kept in the stage marker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np
import zarr

from ..progress import Progress

logger = logging.getLogger("tsne_dist")

SIMILARITIES = ("count", "jaccard", "lift", "ppmi", "cosine", "inv_log")
BLOCK_VALUES = 2**24  # non-zeros read at once


@dataclass
class TopK:
    """Each item's k nearest items in the similarity graph (the kNN stage's format).

    Attributes
    ----------
    indices : np.ndarray
        (N, k) int32 neighbour indices, nearest first, never the item itself.
    distances : np.ndarray
        (N, k) float32, ascending per row.
    n_real : np.ndarray
        (N,) int32: how many of the k are real co-occurring neighbours.
    n_padded, n_isolated : int
        Items with fewer than k real neighbours, and those with none.
    """

    indices: np.ndarray
    distances: np.ndarray
    n_real: np.ndarray
    n_padded: int
    n_isolated: int


def similarity(values: np.ndarray, n_i: np.ndarray, n_j: np.ndarray, kind: str, n_collections: int,
               ppmi_shift: float = 0.0) -> np.ndarray:
    """Similarity (higher = closer) of co-occurrence values; for ``inv_log`` the count itself.

    Parameters
    ----------
    values : np.ndarray
        c_ij of the non-zeros.
    n_i, n_j : np.ndarray
        The diagonal of their row and column items.
    kind : str
        One of :data:`SIMILARITIES`.
    n_collections : int
        M, collections kept (for ``lift`` and ``ppmi``).
    ppmi_shift : float
        Subtracted from the PMI before clipping at 0.
    """
    c = values.astype(np.float64)
    n_i = np.maximum(n_i.astype(np.float64), 1e-12)
    n_j = np.maximum(n_j.astype(np.float64), 1e-12)
    if kind in ("count", "inv_log"):
        return c
    if kind == "jaccard":
        return c / np.maximum(n_i + n_j - c, 1e-12)
    if kind == "cosine":
        return c / np.sqrt(n_i * n_j)
    lift = c * float(n_collections) / (n_i * n_j)
    if kind == "lift":
        return lift
    if kind == "ppmi":
        with np.errstate(divide="ignore"):
            return np.maximum(np.log(lift) - ppmi_shift, 0.0)
    raise ValueError(f"unknown similarity {kind!r}")


def max_distance(kind: str) -> float:
    """The largest distance a real neighbour can have (D in the module notes)."""
    return float(1.0 / np.log(2.0)) if kind == "inv_log" else 1.0


@numba.njit(parallel=True, cache=True)
def _top_k_rows(indptr, columns, sims, first_row, k, inv_log, out_idx, out_dist, out_n):  # pragma: no cover
    n_rows = len(indptr) - 1
    for r in numba.prange(n_rows):
        row = first_row + r
        lo, hi = indptr[r], indptr[r + 1]
        count = 0
        cand_cols = np.empty(hi - lo, dtype=np.int64)
        cand_sims = np.empty(hi - lo, dtype=np.float64)
        for x in range(lo, hi):
            if columns[x] != row and sims[x] > 0.0:
                cand_cols[count] = columns[x]
                cand_sims[count] = sims[x]
                count += 1
        cand_cols = cand_cols[:count]
        cand_sims = cand_sims[:count]
        order = np.argsort(-cand_sims, kind="mergesort")  # columns ascend, so ties go to the lower index
        m = min(k, count)
        top = cand_sims[order[0]] if count else 1.0
        for t in range(m):
            s = cand_sims[order[t]]
            out_idx[row, t] = cand_cols[order[t]]
            if inv_log:
                out_dist[row, t] = 1.0 / np.log1p(s)
            else:
                out_dist[row, t] = 1.0 - s / top
        out_n[row] = m


@numba.njit(cache=True)
def _append_new(out_idx, out_dist, row, filled, candidate, distance):  # pragma: no cover - compiled
    """Put ``candidate`` at position ``filled`` of ``row`` unless it is the row itself or
    already there; return the new count."""
    if candidate == row:
        return filled
    for u in range(filled):
        if out_idx[row, u] == candidate:
            return filled
    out_idx[row, filled] = candidate
    out_dist[row, filled] = distance
    return filled + 1


@numba.njit(parallel=True, cache=True)
def _pad_rows(rows, idx, dist, n_real, popular, base):  # pragma: no cover - compiled
    """Fill positions >= n_real[row] in place; only real entries (< n_real) are read, so rows
    padded at the same time never see each other's padding."""
    out_idx, out_dist = idx, dist
    k = idx.shape[1]
    for r in numba.prange(len(rows)):
        row = rows[r]
        m = n_real[row]
        filled = m
        n_cand = m * k
        cand = np.empty(n_cand, dtype=np.int64)
        cand_d = np.empty(n_cand, dtype=np.float64)
        c = 0
        for a in range(m):
            j = idx[row, a]
            for b in range(n_real[j]):
                cand[c] = idx[j, b]
                cand_d[c] = base + dist[row, a] + dist[j, b]
                c += 1
        order = np.argsort(cand_d[:c], kind="mergesort")
        for t in range(c):
            if filled >= k:
                break
            filled = _append_new(out_idx, out_dist, row, filled, cand[order[t]], cand_d[order[t]])
        for p in range(len(popular)):
            if filled >= k:
                break
            filled = _append_new(out_idx, out_dist, row, filled, popular[p], 3.0 * base)


@dataclass
class SimilarityBlock:
    """Rows [start, stop) of the stored matrix as similarities: CSR parts with
    ``indptr`` relative to the block, and each value's row and column."""

    start: int
    stop: int
    indptr: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray


def similarity_blocks(group: zarr.Group, kind: str, n_collections: int,
                      ppmi_shift: float = 0.0) -> Iterator[SimilarityBlock]:
    """Yield the stored co-occurrence matrix as ``kind`` similarities, in row blocks of
    about ``BLOCK_VALUES`` non-zeros (the whole matrix is never read at once).

    Parameters
    ----------
    group : zarr.Group
        The ``cooccurrence`` group (anndata CSR plus ``diagonal``).
    kind : str
        One of :data:`SIMILARITIES`.
    n_collections : int
        Collections kept (M).
    ppmi_shift : float
        See :func:`similarity`.
    """
    n_items = int(group.attrs["shape"][0])
    indptr = group["indptr"][:]
    diagonal = group["diagonal"][:].astype(np.float64)
    data, columns = group["data"], group["indices"]
    start = 0
    while start < n_items:
        stop = int(np.searchsorted(indptr, indptr[start] + BLOCK_VALUES, side="right")) - 1
        stop = min(max(stop, start + 1), n_items)
        lo, hi = int(indptr[start]), int(indptr[stop])
        cols = columns[lo:hi].astype(np.int64)
        rows = np.repeat(np.arange(start, stop), np.diff(indptr[start:stop + 1]))
        values = similarity(data[lo:hi], diagonal[rows], diagonal[cols], kind, n_collections, ppmi_shift)
        yield SimilarityBlock(start, stop, indptr[start:stop + 1] - lo, rows, cols, values)
        start = stop


def top_k_neighbours(group: zarr.Group, k: int, kind: str, n_collections: int,
                     ppmi_shift: float = 0.0) -> TopK:
    """Top-k neighbours of every row of a stored co-occurrence matrix, in row blocks.

    Parameters
    ----------
    group : zarr.Group
        The ``cooccurrence`` group (anndata CSR plus ``diagonal``).
    k : int
        Neighbours per item; must be below the number of items.
    kind : str
        One of :data:`SIMILARITIES`.
    n_collections : int
        Collections kept (M).
    ppmi_shift : float
        See :func:`similarity`.

    Returns
    -------
    TopK
    """
    n_items = int(group.attrs["shape"][0])
    diagonal = group["diagonal"][:].astype(np.float64)
    idx = np.full((n_items, k), -1, dtype=np.int32)
    dist = np.full((n_items, k), np.inf, dtype=np.float32)
    n_real = np.zeros(n_items, dtype=np.int64)
    with Progress(n_items, "similarity top-k") as progress:
        for block in similarity_blocks(group, kind, n_collections, ppmi_shift):
            _top_k_rows(block.indptr, block.columns, block.values, block.start, k, kind == "inv_log", idx, dist,
                        n_real)
            progress.advance(block.stop - block.start)
    short = np.flatnonzero(n_real < k)
    if len(short):
        popular = np.argsort(-diagonal, kind="stable")[: k + 1].astype(np.int64)
        _pad_rows(short.astype(np.int64), idx, dist, n_real, popular, max_distance(kind))
    n_isolated = int((n_real == 0).sum())
    if len(short):
        logger.info("similarity: %d of %d items have fewer than %d co-occurring neighbours (%d have none); "
                    "padded with neighbours of neighbours, then the most frequent items", len(short), n_items, k,
                    n_isolated)
    return TopK(indices=idx, distances=dist,
                n_real=n_real.astype(np.int32), n_padded=int(len(short)), n_isolated=n_isolated)
