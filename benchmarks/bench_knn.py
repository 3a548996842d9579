"""kNN: time and recall@k of single-process NNDescent, faiss HNSW and sharded search on a local Dask cluster.

    python benchmarks/bench_knn.py --dataset glove --sizes 400000 --modes single
    python benchmarks/bench_knn.py --dataset synthetic --dims 128 --sizes 100000 1000000 --modes single sharded
    python benchmarks/bench_knn.py --dataset synthetic --dims 128 --sizes 1000000 --modes gpu   # needs CuPy + GPU
    python benchmarks/bench_knn.py --dataset glove --sizes 100000 --modes hnsw single

single: one pynndescent index in this process (all cores); hnsw: faiss's HNSW index
(the run's single-machine default: built on one thread, searched on all cores; no
numba, so its timing is also its cold timing); sharded: one index per
worker of a local Dask cluster (--shards 0) or --shards S; gpu: exact blocked brute
force with CuPy, block sizes from free GPU memory. Recall is measured against exact
neighbours of 2,000 sampled items (blocked brute force). Timings are warm: the numba
code of pynndescent and of the local join is compiled in this process and in every
worker before the clock starts (a fresh process pays that once, about 30 s here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time

import numpy as np


def load(dataset: str, n_items: int, dims: int) -> np.ndarray:
    from tsne_dist.datasets import load_glove, synthetic_catalog

    if dataset == "glove":
        return load_glove(n_items)[0]
    return synthetic_catalog(n_items, dims, n_categories=30, n_subcategories=5, seed=0)[0]


def warm_up(dims: int) -> None:
    """Compile pynndescent's and our numba code (build, shard query, local join) in this process."""
    from tsne_dist.neighbors import nearest_neighbors
    from tsne_dist.neighbors.sharded import build_shard_index, query_shard

    sample = np.random.default_rng(0).normal(size=(3000, dims)).astype(np.float32)
    nearest_neighbors(sample, 15, backend="pynndescent", seed=0)
    query_shard(build_shard_index(sample, 0, 1500, 15, 0), sample, np.arange(1500, 3000), 0, 15)


def timed_search(mode: str, vectors: np.ndarray, k: int, n_shards: int) -> tuple[np.ndarray, float]:
    """The kNN indices of ``vectors`` in ``mode`` and the seconds the search took
    (for sharded: neither the local cluster's start-up nor its shut-down)."""
    from tsne_dist.cluster import dask_client
    from tsne_dist.neighbors import nearest_neighbors
    from tsne_dist.neighbors.exact import exact_knn
    from tsne_dist.neighbors.sharded import sharded_knn

    if mode == "sharded":
        with dask_client("local") as client:
            client.run(warm_up, vectors.shape[1])
            start = time.perf_counter()
            indices = sharded_knn(client, vectors, k, n_shards=n_shards or len(client.scheduler_info()["workers"]),
                                  seed=0)[0]
            return indices, time.perf_counter() - start
    start = time.perf_counter()
    if mode in ("single", "hnsw"):
        backend = "pynndescent" if mode == "single" else "hnsw"
        indices = nearest_neighbors(vectors, k, backend=backend, seed=0).indices
    else:
        import cupy

        indices = exact_knn(vectors, k, "euclidean", xp=cupy)[0]
    return indices, time.perf_counter() - start


def main() -> None:
    from tsne_dist.neighbors import graph_recall

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["glove", "synthetic"], default="synthetic")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--k", type=int, default=90,
                        help="neighbours searched (90: the run's default, 3 x perplexity 30)")
    parser.add_argument("--recall-at", type=int, default=15,
                        help="recall of the first R neighbours against the exact R")
    parser.add_argument("--shards", type=int, default=0, help="0: one shard per worker")
    parser.add_argument("--modes", nargs="+", default=["single", "sharded"], choices=["single", "sharded", "hnsw", "gpu"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    rows = []
    if {"single", "sharded"} & set(args.modes):
        warm_up(args.dims if args.dataset == "synthetic" else 50)
    for n_items in args.sizes:
        vectors = load(args.dataset, n_items, args.dims)
        for mode in args.modes:
            indices, seconds = timed_search(mode, vectors, args.k, args.shards)
            recall = graph_recall(vectors, indices[:, :args.recall_at], sample=2000)
            row = {"data": args.dataset, "n": n_items, "dims": vectors.shape[1], "k": args.k, "mode": mode,
                   "seconds": seconds, "recall": recall}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores\n")
    print(f"| data | N x D | k | mode | seconds | recall@{args.recall_at} |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['data']} | {row['n']:,} x {row['dims']} | {row['k']} | {row['mode']} | {row['seconds']:.0f} | "
              f"{row['recall']:.4f} |")


if __name__ == "__main__":
    main()
