"""Choosing and running a kNN backend."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..progress import Progress
from .bruteforce import bruteforce_knn
from .nndescent import nndescent_knn

logger = logging.getLogger("tsne_dist")

# Exact search is used while N^2 * (D + 20) stays below this (the 20 stands for the
# per-row selection); digits and MNIST 5k then take a few seconds on 2 cores.
BRUTEFORCE_WORK_LIMIT = 2.5e10


@dataclass
class KNNResult:
    """Neighbours of every item, nearest first, self excluded.

    Attributes
    ----------
    indices : np.ndarray
        (N, k) int32 row numbers.
    distances : np.ndarray
        (N, k) float32 distances in the chosen metric.
    backend : str
        The backend that produced them.
    reason : str
        Why that backend was chosen.
    """

    indices: np.ndarray
    distances: np.ndarray
    backend: str
    reason: str


def choose_backend(requested: str, n_items: int, n_dims: int) -> tuple[str, str]:
    """The backend to run for ``requested`` (``auto`` picks by size) and why."""
    if requested != "auto":
        return requested, "requested"
    work = float(n_items) ** 2 * (n_dims + 20)
    if work <= BRUTEFORCE_WORK_LIMIT:
        return "bruteforce", f"exact search is cheap at N={n_items}, D={n_dims}"
    return "pynndescent", f"N={n_items}, D={n_dims} is too large for exact search on a CPU"


def prepare_metric(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors in which euclidean distance ranks like ``metric`` (cosine: unit rows)."""
    if metric == "euclidean":
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def exact_knn(vectors: np.ndarray, k: int, metric: str, *, queries: np.ndarray | None = None,
              on_block=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours in ``metric`` (cosine: 1 - cosine similarity) of every row, or of ``queries``."""
    indices, distances = bruteforce_knn(prepare_metric(vectors, metric), k, queries=queries, on_block=on_block)
    if metric == "cosine":  # unit vectors: |a - b|^2 / 2 = 1 - cos(a, b)
        distances = (distances.astype(np.float64) ** 2 / 2).astype(np.float32)
    return indices, distances


def nearest_neighbors(vectors: np.ndarray, k: int, *, backend: str = "auto", metric: str = "euclidean",
                      seed: int = 0, n_jobs: int = -1) -> KNNResult:
    """k nearest neighbours of every item (self excluded).

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) float32.
    k : int
        Neighbours per item; must be below N.
    backend : str
        ``auto``, ``bruteforce`` (exact) or ``pynndescent`` (approximate).
    metric : str
        ``euclidean``, or ``cosine`` (distances are 1 - cosine similarity).
    seed : int
        Seed for approximate search.
    n_jobs : int
        Threads; -1 for all cores.

    Returns
    -------
    KNNResult
    """
    n_items, n_dims = vectors.shape
    if k >= n_items:
        raise ConfigError(f"{k} neighbours need more than {n_items} items", "lower --perplexity or n_neighbors")
    chosen, reason = choose_backend(backend, n_items, n_dims)
    logger.info("kNN: %s with k=%d, metric=%s (%s)", chosen, k, metric, reason)
    if chosen == "bruteforce":
        with Progress(n_items, "kNN (exact)") as progress:
            indices, distances = exact_knn(vectors, k, metric, on_block=progress.advance)
    elif chosen == "pynndescent":
        jobs = os.cpu_count() or 1 if n_jobs == -1 else n_jobs
        indices, distances = nndescent_knn(vectors, k, metric, seed, jobs)
    else:
        raise ConfigError(f"unknown kNN backend {chosen!r}", "use auto, pynndescent or bruteforce")
    return KNNResult(indices=indices, distances=distances, backend=chosen, reason=reason)


def graph_recall(vectors: np.ndarray, indices: np.ndarray, *, metric: str = "euclidean", sample: int = 1000,
                 seed: int = 0) -> float:
    """Share of the exact k nearest neighbours that a kNN graph holds, on sampled rows.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) vectors the graph was built from.
    indices : np.ndarray
        (N, k) neighbour row numbers (self excluded).
    metric : str
        The metric the graph used.
    sample : int
        Rows whose exact neighbours are computed (all rows when N is smaller).
    seed : int
        Seed of the sample.

    Returns
    -------
    float
        Mean over sampled rows of |graph row ∩ exact row| / k (ties in the exact
        distances are broken by index).
    """
    n_items, k = indices.shape
    rng = np.random.default_rng(seed)
    rows = np.arange(n_items) if n_items <= sample else np.sort(rng.choice(n_items, size=sample, replace=False))
    exact, _ = exact_knn(vectors, k, metric, queries=rows)
    hits = sum(len(np.intersect1d(found, true)) for found, true in zip(indices[rows], exact))
    return hits / (len(rows) * k)
