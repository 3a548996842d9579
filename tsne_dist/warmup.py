"""``tsne-dist warm-up``: compile every numba kernel once, into the on-disk cache.

numba compiles a function the first time a process calls it; with the cache
(:mod:`tsne_dist.jit`) later processes load the machine code instead. A fresh
machine, a container image or a CI run can pay that compile once, up front, by
running each part on tiny inputs: ``pynndescent`` (the approximate kNN, single
index and shard queries) and ``kernels`` (ours: perplexity calibration, the FFT
engine (Barnes-Hut and FFT repulsion), metrics, local-join refinement, co-occurrence pairs and top-k). The two
parts are independent and can run in two processes at once.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

logger = logging.getLogger("tsne_dist")

PARTS = ("pynndescent", "kernels")


def warm_up(part: str) -> float:
    """Compile one part's numba functions (cached on disk); return the seconds it took.

    Parameters
    ----------
    part : str
        ``pynndescent`` or ``kernels``.

    Raises
    ------
    ValueError
        For another part name.
    """
    start = time.perf_counter()
    data = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    if part == "pynndescent":
        _warm_pynndescent(data)
    elif part == "kernels":
        _warm_kernels(data)
    else:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    seconds = time.perf_counter() - start
    logger.info("warm-up %s: %.1f s", part, seconds)
    return seconds


def _warm_pynndescent(data: np.ndarray) -> None:
    from .neighbors import nearest_neighbors
    from .neighbors.sharded import build_shard_index, query_shard

    for metric in ("euclidean", "inner_product"):
        nearest_neighbors(data, 10, backend="pynndescent", metric=metric, seed=0, n_jobs=1)
    index = build_shard_index(data, 0, 200, np.arange(200), 10, seed=0)
    query_shard(index, data, 200, 400, 10)


def _warm_kernels(data: np.ndarray) -> None:
    import zarr

    from .arrays import write_array, write_csr
    from .cooccurrence.pairs import PairSpec, partition_pairs
    from .cooccurrence.similarity import top_k_neighbours
    from .estimator import TSNE
    from .metrics import neighbour_quality
    from .neighbors.refine import local_join, merge_answers

    for method in ("barnes-hut", "fft"):
        layout = TSNE(perplexity=5, knn="bruteforce", engine="numpy", repulsion=method, n_iter=60,
                      early_exaggeration_iter=20, random_state=0).fit_transform(data)
    neighbour_quality(data, layout, k=10, sample=100)
    knn = np.argsort(((data[:, None] - data[None]) ** 2).sum(-1), axis=1)[:, 1:11].astype(np.int32)
    refined = local_join(data, data, knn, 10)
    merge_answers(refined, refined, 10, np.arange(len(data)))
    log = pd.DataFrame({"collection": np.repeat(np.arange(100), 5),
                        "item": np.random.default_rng(1).integers(0, 50, 500)})
    pairs, _ = partition_pairs(log, pd.Index(np.arange(50)), PairSpec(), 50, 50)
    matrix = _csr_from_pairs(pairs, 50)
    group = zarr.create_group(store=zarr.storage.MemoryStore())
    write_csr(group, matrix)
    write_array(group, "diagonal", np.ones(50, dtype=np.float32))
    for kind in ("cosine", "inv_log"):
        top_k_neighbours(group, 10, kind, 100)


def _csr_from_pairs(pairs: pd.DataFrame, n_items: int):
    import scipy.sparse as sp

    return sp.csr_matrix((pairs["value"].to_numpy(np.float32), (pairs["row"], pairs["col"])),
                         shape=(n_items, n_items))
