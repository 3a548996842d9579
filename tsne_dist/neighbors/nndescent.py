"""Approximate kNN with pynndescent (one process, all cores), then one local-join pass."""

from __future__ import annotations

import logging

import numpy as np

from ..jit import enable_pynndescent_cache
from .exact import exact_knn
from .locality import spatial_order
from .metric import prepare_metric, to_metric_distance
from .refine import local_join

logger = logging.getLogger("tsne_dist")


def nndescent_knn(data: np.ndarray, k: int, metric: str, seed: int, n_jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours of every row, self excluded.

    Parameters
    ----------
    data : np.ndarray
        (N, D) float32 vectors.
    k : int
        Neighbours per row.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product``; pynndescent searches the
        metric's euclidean space (:mod:`.metric`).
    seed : int
        Seed; pynndescent is deterministic for a fixed seed.
    n_jobs : int
        Threads (-1: all cores).

    Returns
    -------
    indices : np.ndarray
        (N, k) int32.
    distances : np.ndarray
        (N, k) float32.
    """
    enable_pynndescent_cache()
    from pynndescent import NNDescent

    items, queries = prepare_metric(data, metric)
    n_items = data.shape[0]
    index = NNDescent(items, n_neighbors=k + 1, metric="euclidean", random_state=seed, n_jobs=n_jobs,
                      low_memory=True, verbose=False, **index_parameters(n_items))
    if queries is items:
        indices, distances = index.neighbor_graph
    else:  # inner product: the lifted queries search the lifted items
        indices, distances = index.query(queries, k=k + 1)
    indices, distances = drop_self(indices, distances, k)
    order = spatial_order(items, seed=seed)  # neighbouring rows one after another: their memory stays in cache
    indices, distances = local_join(items, queries, indices, k, rows=order)
    in_row_order = np.argsort(order)
    indices, distances = indices[in_row_order], distances[in_row_order]
    return fill_missing(data, indices, to_metric_distance(distances, metric), metric)


def index_parameters(n_items: int) -> dict[str, int]:
    """pynndescent's effort for an index of ``n_items`` rows: more trees and
    iterations than its defaults (recall@15 0.988 on 20k GloVe words)."""
    return {"n_trees": min(64, 5 + int(round(np.sqrt(n_items) / 20))),
            "n_iters": max(5, int(round(np.log2(n_items)))), "max_candidates": 60}


def fill_missing(data: np.ndarray, indices: np.ndarray, distances: np.ndarray,
                 metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Recompute exactly the rows where an approximate search found fewer than k neighbours.

    pynndescent and faiss mark them with index -1 and an infinite distance (it
    happens with many duplicate vectors); those rows get their exact neighbours instead.
    """
    incomplete = np.flatnonzero((indices < 0).any(axis=1) | ~np.isfinite(distances).all(axis=1))
    if len(incomplete) == 0:
        return indices, distances
    logger.warning("the approximate search left %d items with fewer than %d neighbours; searching them exactly",
                   len(incomplete), indices.shape[1])
    exact_indices, exact_distances = exact_knn(data, indices.shape[1], metric, queries=incomplete)
    indices[incomplete] = exact_indices
    distances[incomplete] = exact_distances
    return indices, distances


def drop_self(indices: np.ndarray, distances: np.ndarray, k: int,
              first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from its k+1 neighbours (or the last one if absent, e.g.
    among exact copies); rows are numbered from ``first_row`` (a block of query rows)."""
    n_items = indices.shape[0]
    is_self = indices == np.arange(first_row, first_row + n_items)[:, None]
    has_self = is_self.any(axis=1)
    is_self[~has_self, -1] = True
    keep = ~is_self
    out_indices = indices[keep].reshape(n_items, k).astype(np.int32)
    out_distances = distances[keep].reshape(n_items, k).astype(np.float32)
    return out_indices, out_distances
