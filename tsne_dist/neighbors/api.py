"""Choosing and running a kNN backend."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..progress import Progress
from ..xp import cupy_or_none
from .gpu import cuml_knn
from .hnsw import hnsw_knn
from .exact import exact_knn, tied_hits
from .metric import check_defined, prepare_metric
from .nndescent import nndescent_knn

logger = logging.getLogger("tsne_dist")

# Exact search is used while N^2 * (D + 20) stays below this (the 20 stands for the
# per-row selection); digits and MNIST 5k then take a few seconds on 2 cores.
BRUTEFORCE_WORK_LIMIT = 2.5e10
KNN_BACKENDS = ("auto", "hnsw", "pynndescent", "bruteforce", "cuml")
# Above this share of rows that are exact copies, an HNSW graph misses most true neighbours
# (measured: 3 % exact neighbour lists with 90 % copies); pynndescent runs instead.
HNSW_MAX_COPIES = 0.05


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


def choose_backend(requested: str, n_items: int, n_dims: int, *, gpu_free_bytes: int | None = None,
                   sharded: bool = False) -> tuple[str, str]:
    """The backend to run for ``requested`` and why.

    ``auto`` picks exact search on the GPU when CuPy sees a device whose free
    memory holds the vectors (twice, plus the search blocks), exact search on the
    CPU while N^2 (D + 20) stays below 2.5e10, and above that faiss's HNSW index in
    this process (compiled: no JIT compile in a fresh process; faster than
    pynndescent at every size measured, benchmarks/README.md) or, when the search
    is ``sharded`` over Dask workers, pynndescent (one index per worker).

    Parameters
    ----------
    requested : str
        ``auto``, ``bruteforce``, ``hnsw``, ``pynndescent`` or ``cuml``.
    n_items, n_dims : int
        Shape of the vectors.
    gpu_free_bytes : int, optional
        Free memory of the GPU; None when there is no usable GPU.
    sharded : bool
        The run searches on a Dask cluster or in several shards (``cluster`` other
        than ``local``, or ``knn_shards`` above 1).
    """
    if requested != "auto":
        return requested, "requested"
    if gpu_free_bytes is not None:
        needed = 2 * n_items * (n_dims + 1) * 4 + (256 << 20)
        if needed <= gpu_free_bytes * 0.6:
            return "bruteforce", f"a GPU with {gpu_free_bytes / 2**30:.1f} GiB free holds the {n_items:,} vectors"
        logger.info("kNN: the vectors need %.1f GiB on the GPU, %.1f GiB are free; not using it",
                    needed / 2**30, gpu_free_bytes / 2**30)
    work = float(n_items) ** 2 * (n_dims + 20)
    if work <= BRUTEFORCE_WORK_LIMIT:
        return "bruteforce", f"exact search is cheap at N={n_items}, D={n_dims}"
    if sharded:
        return "pynndescent", f"N={n_items}, D={n_dims} is too large for exact search; sharded on Dask"
    return "hnsw", f"N={n_items}, D={n_dims} is too large for exact search on a CPU"


def gpu_free_bytes() -> int | None:
    """Free memory of the CUDA device CuPy would use, or None without a usable GPU."""
    cupy = cupy_or_none()
    if cupy is None:
        return None
    return int(cupy.cuda.Device().mem_info[0])


def nearest_neighbors(vectors: np.ndarray, k: int, *, backend: str = "auto", metric: str = "euclidean",
                      seed: int = 0, n_jobs: int = -1, cluster: str = "local", n_shards: int = 0,
                      scratch: Any = None, reason: str = "requested", n_copies: int | None = None) -> KNNResult:
    """k nearest neighbours of every item (self excluded).

    Exact search runs in this process (on the GPU when CuPy sees one); HNSW runs
    here; pynndescent runs here with one index, or sharded on Dask (:mod:`.sharded`)
    when ``n_shards > 1`` or ``cluster`` names a scheduler.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) float32.
    k : int
        Neighbours per item; must be below N.
    backend : str
        Resolved by :func:`choose_backend` (``auto`` resolves here):
        ``bruteforce`` (exact; on the GPU when CuPy sees one), ``hnsw`` (faiss's
        HNSW index, approximate), ``pynndescent`` (approximate) or ``cuml``
        (cuML / cuVS on the GPU).
    metric : str
        ``euclidean``, ``cosine`` (distances are 1 - cosine similarity) or
        ``inner_product`` (see :mod:`tsne_dist.neighbors.metric`).
    seed : int
        Seed for approximate search.
    n_jobs : int
        Threads; -1 for all cores.
    cluster : str
        ``local`` or ``tcp://HOST:PORT`` (see :func:`tsne_dist.cluster.dask_client`).
    n_shards : int
        pynndescent shards; 0 means one in-process index with ``cluster="local"``
        and one shard per worker with a scheduler address.
    scratch : zarr.Group, optional
        Where sharded search puts the rows its workers read (see
        :func:`.sharded.sharded_knn`); a group of the run store lets workers without
        a shared disk take part.
    reason : str
        Why ``backend`` (when it is not ``auto``) was chosen, for the log and the
        result: ``requested``, or the run plan's reason when the plan resolved it.
    n_copies : int, optional
        Rows that are exact copies of another row (:func:`tsne_dist.metrics.duplicate_rows`),
        when the caller has counted them; counted here for ``hnsw`` otherwise.

    Returns
    -------
    KNNResult

    Raises
    ------
    ConfigError
        When ``k`` is not below N.
    InputError
        When the metric is undefined for some rows (zero rows under cosine).
    """
    n_items, n_dims = vectors.shape
    check_defined(vectors, metric, "the vectors")
    if k >= n_items:
        raise ConfigError(f"{k} neighbours need more than {n_items} items", "lower `perplexity` or `n_neighbors`")
    if backend == "auto":
        chosen, reason = choose_backend(backend, n_items, n_dims, gpu_free_bytes=gpu_free_bytes(),
                                        sharded=n_shards > 1 or cluster != "local")
    else:
        chosen = backend
    if chosen == "bruteforce":
        cupy = cupy_or_none()
        xp = np if cupy is None else cupy
        device = "GPU" if xp is not np else "CPU"
        logger.info("kNN: exact search on the %s with k=%d, metric=%s (%s)", device, k, metric, reason)
        with Progress(n_items, f"kNN (exact, {device})") as progress:
            indices, distances = exact_knn(vectors, k, metric, on_block=progress.advance, xp=xp)
        return KNNResult(indices=indices, distances=distances, backend=chosen, reason=f"{reason}; on the {device}")
    logger.info("kNN: %s with k=%d, metric=%s (%s)", chosen, k, metric, reason)
    if chosen == "pynndescent" and (n_shards > 1 or cluster != "local"):
        indices, distances = _sharded_on_dask(vectors, k, metric, seed, cluster, n_shards, scratch)
    elif chosen == "pynndescent":
        indices, distances = nndescent_knn(vectors, k, metric, seed, _threads(n_jobs))
    elif chosen == "hnsw" and _many_copies(vectors, n_copies):
        logger.warning("kNN: more than %d %% of the rows are exact copies of others, where an HNSW graph loses "
                       "neighbours; searching with pynndescent instead", round(100 * HNSW_MAX_COPIES))
        indices, distances = nndescent_knn(vectors, k, metric, seed, _threads(n_jobs))
        chosen, reason = "pynndescent", f"{reason}; many duplicate rows, so pynndescent instead of hnsw"
    elif chosen == "hnsw":
        if n_shards > 1 or cluster != "local":
            logger.warning("kNN: hnsw searches in this process; `knn_shards` and the Dask cluster apply to "
                           "pynndescent only")
        indices, distances = hnsw_knn(vectors, k, metric, _threads(n_jobs))
    elif chosen == "cuml":
        indices, distances = cuml_knn(vectors, k, metric)
    else:
        raise ConfigError(f"knn must be one of {', '.join(KNN_BACKENDS)}, got {chosen!r}",
                      f"set `knn` to one of {', '.join(KNN_BACKENDS)}")
    return KNNResult(indices=indices, distances=distances, backend=chosen, reason=reason)


def _many_copies(vectors: np.ndarray, n_copies: int | None) -> bool:
    """More than ``HNSW_MAX_COPIES`` of the rows are exact copies of another row."""
    if n_copies is None:
        from ..metrics import duplicate_rows  # metrics imports this package: only here

        n_copies = duplicate_rows(vectors)
    return n_copies > HNSW_MAX_COPIES * len(vectors)


def _threads(n_jobs: int) -> int:
    """Threads for ``n_jobs`` (-1: all cores)."""
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def _sharded_on_dask(vectors: np.ndarray, k: int, metric: str, seed: int, cluster: str,
                     n_shards: int, scratch) -> tuple[np.ndarray, np.ndarray]:
    from ..cluster import dask_client
    from .sharded import sharded_knn

    with dask_client(cluster) as client:
        if n_shards == 0:
            n_shards = max(len(client.scheduler_info()["workers"]), 1)
        n_shards = min(n_shards, max(vectors.shape[0] // (4 * (k + 1)), 1))  # each shard needs a few k items
        logger.info("kNN: %d pynndescent shards on Dask", n_shards)
        return sharded_knn(client, vectors, k, n_shards=n_shards, metric=metric, seed=seed, scratch=scratch)


def graph_recall(vectors: np.ndarray, indices: np.ndarray, *, metric: str = "euclidean", sample: int = 1000,
                 seed: int = 0) -> float:
    """Share of the exact k nearest neighbours that a kNN graph holds, on sampled rows, ties included.

    A graph neighbour counts when it is at most as far as the row's exact k-th
    neighbour (so any of several equally near items is right); distances are
    recomputed here, directly in float64 in the metric's search space, never taken
    from the graph. Repeated entries and the row itself count once at most / not at all.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) vectors the graph was built from.
    indices : np.ndarray
        (N, k) neighbour row numbers (self excluded).
    metric : str
        The metric the graph used.
    sample : int
        Rows checked (all rows when N is smaller).
    seed : int
        Seed of the sample.

    Returns
    -------
    float
        Mean over sampled rows of the hits / k.
    """
    n_items, k = indices.shape
    rng = np.random.default_rng(seed)
    rows = np.arange(n_items) if n_items <= sample else np.sort(rng.choice(n_items, size=sample, replace=False))
    exact, _ = exact_knn(vectors, k, metric, queries=rows)
    items, queries = prepare_metric(vectors, metric)
    items, queries = np.asarray(items, dtype=np.float64), np.asarray(queries, dtype=np.float64)
    hits = 0
    for row, found, true in zip(rows, indices[rows], exact):
        found = np.unique(found[(found >= 0) & (found != row)])
        query = queries[row]
        kth = ((query - items[true[-1]]) ** 2).sum()
        distances = ((query - items[found]) ** 2).sum(axis=1)
        tolerance = 1e-9 * ((query ** 2).sum() + (items[true[-1]] ** 2).sum())
        hits += int(tied_hits(distances[None, :], np.array([kth]), rtol=1e-6, atol=tolerance)[0])
    return hits / (len(rows) * k)
