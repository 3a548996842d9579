"""A run end to end with its inputs and outputs on local disk or on a loopback S3 server.

Writes N x D synthetic vectors (``tsne_dist.datasets.synthetic_catalog``) as ``X.npy``
to a local folder or to a bucket of a moto S3 server started on 127.0.0.1, starts a
Dask LocalCluster of single-threaded workers on 127.0.0.1 (they get only the S3
variables, no shared path is used: inputs, the run store, the co-occurrence and kNN
scratch and the outputs are all at the URL), then runs ``tsne-dist run --vectors URL
--out URL --cluster ADDRESS --knn pynndescent --knn-shards S`` as a fresh process.
Every worker's resident memory is sampled twice a second.

    .venv/bin/python benchmarks/bench_storage.py --items 1000000 --dims 128 --shards 2 --storage local s3

Prints one JSON line per storage: wall seconds of the command, the stage times and the
client's peak memory by stage (from ``metrics.json``), recall and trustworthiness, and
peak RSS per worker (MB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench_cooc import MemorySampler
from loopback_s3 import loopback_s3

BUCKET = "bench"


def _write_vectors(n_items: int, n_dims: int, seed: int, folder: str) -> str:
    from tsne_dist.datasets import synthetic_catalog

    path = os.path.join(folder, "X.npy")
    np.save(path, synthetic_catalog(n_items, n_dims, seed=seed)[0])
    return path


def run_once(args: argparse.Namespace, storage: str, vectors_file: str, work: str) -> dict:
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if storage == "s3":
            stack.enter_context(loopback_s3(BUCKET))
            import fsspec

            fsspec.filesystem("s3").put(vectors_file, f"{BUCKET}/in/X.npy")
            vectors, out = f"s3://{BUCKET}/in/X.npy", f"s3://{BUCKET}/maps/bench"
        else:
            vectors, out = vectors_file, os.path.join(work, "maps", "bench")
        cluster = stack.enter_context(LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                                                   dashboard_address=None, local_directory=work))
        client = stack.enter_context(Client(cluster))
        command = [sys.executable, "-m", "tsne_dist", "run", "-q", "--vectors", vectors, "--out", out,
                   "--cluster", cluster.scheduler_address, "--knn", "pynndescent", "--knn-shards", str(args.shards),
                   "--seed", str(args.seed), *args.extra]
        start = time.perf_counter()
        with MemorySampler(client) as memory:
            finished = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if finished.returncode != 0:
            raise SystemExit(f"run failed ({storage}): {finished.stderr.strip()[-2000:]}")
        from tsne_dist.storage import Location

        metrics = json.loads(Location(out).read_bytes("metrics.json"))
        return {
            "storage": storage, "items": args.items, "dims": args.dims, "shards": args.shards,
            "workers": args.workers, "extra": " ".join(args.extra), "wall_s": round(wall, 1),
            "stage_s": metrics["timings"], "client_peak_mb": metrics["peak_memory_mb"],
            "knn_recall@10": metrics["knn_recall@10"], "trustworthiness@10": metrics["trustworthiness@10"],
            "knn_graph_recall": metrics["knn_graph_recall"],
            "peak_rss_mb_per_worker": sorted(round(value / 2**20) for value in memory.peak.values()),
            "load_average": [round(value, 1) for value in os.getloadavg()],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="Dask workers (default: one per shard)")
    parser.add_argument("--storage", nargs="+", choices=("local", "s3"), default=["local", "s3"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="local folder for the data (default: the temp dir)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more `tsne-dist run` flags, after --")
    args = parser.parse_args()
    args.workers = args.workers or args.shards
    args.extra = [flag for flag in args.extra if flag != "--"]
    work = tempfile.mkdtemp(prefix="bench-storage-", dir=args.work_dir)
    try:
        vectors_file = _write_vectors(args.items, args.dims, args.seed, work)
        for storage in args.storage:
            print(json.dumps(run_once(args, storage, vectors_file, work)), flush=True)
            shutil.rmtree(os.path.join(work, "maps"), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
