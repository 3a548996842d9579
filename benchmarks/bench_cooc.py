"""Co-occurrence at scale: a synthetic interaction log -> item-item matrix on a Dask LocalCluster.

Writes the synthetic log (power-law popularity, planted categories and
subcategories; see ``tsne_dist.datasets.synthetic_interactions``) as Parquet
parts of ``--partition-rows`` rows, then times the three Dask passes of the
``items`` and ``cooccurrence`` stages (item counts, collection filters, pair
emission + block reduction + aligned writes) and samples every worker's
resident memory twice a second.

    .venv/bin/python benchmarks/bench_cooc.py --items 1000000 --interactions 10000000 --mean-length 5
    .venv/bin/python benchmarks/bench_cooc.py --items 1000000 --interactions 100000000 --storage local s3

Prints one JSON line per run: sizes, seconds per pass, ordered pairs emitted,
pairs per second (pairs / seconds of the co-occurrence pass), non-zeros, and peak
RSS per worker (MB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import zarr


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class MemorySampler:
    """Peak RSS of every worker, sampled in a thread via ``client.run``."""

    def __init__(self, client, every: float = 0.5) -> None:
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for worker, rss in self.client.run(_rss).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), rss)
            except Exception:  # noqa: BLE001 - a sample lost while workers are busy is harmless
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def write_log(folder: str, n_users: int, n_items: int, n_interactions: int, partition_rows: int, seed: int) -> int:
    """The synthetic log as Parquet parts in a local folder; returns the rows written."""
    from tsne_dist.datasets import synthetic_interactions

    partitions = max(1, math.ceil(n_interactions / partition_rows))
    _, parts = synthetic_interactions(n_users, n_items, n_interactions, seed=seed, partitions=partitions)
    rows = 0
    for index, part in enumerate(parts):
        part[["user", "item"]].to_parquet(os.path.join(folder, f"part-{index:05d}.parquet"), index=False)
        rows += len(part)
    return rows


def run(args: argparse.Namespace) -> dict:
    from tsne_dist.cluster import dask_client
    from tsne_dist.cooccurrence.matrix import build_cooccurrence, collection_stats, read_spilled
    from tsne_dist.cooccurrence.pairs import PairSpec
    from tsne_dist.cooccurrence.vocabulary import build_vocabulary, item_counts
    from tsne_dist.io.interactions import InteractionColumns, clean_partition, read_interactions
    from tsne_dist.storage import Location

    work = tempfile.mkdtemp(prefix="bench-cooc-", dir=args.work_dir)
    try:
        data = os.path.join(work, "log")
        os.makedirs(data)
        n_users = max(1, round(args.interactions / args.mean_length))
        start = time.perf_counter()
        rows = write_log(data, n_users, args.items, args.interactions, args.partition_rows, args.seed)
        generate = time.perf_counter() - start
        spec = PairSpec(max_collection_size=args.max_collection_size, seed=args.seed)
        logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
        with contextlib.ExitStack() as stack:
            if args.storage == "s3":  # the log, the spill, the block parts and the matrix on the S3 server
                from loopback_s3 import loopback_s3

                stack.enter_context(loopback_s3("bench"))
                import fsspec

                start = time.perf_counter()
                fsspec.filesystem("s3").put(data + "/", "bench/log/", recursive=True)
                generate += time.perf_counter() - start
                location, data = Location("s3://bench/run"), "s3://bench/log/"
            else:
                location = Location(os.path.join(work, "run"))
            client = stack.enter_context(dask_client("local", n_workers=args.workers))
            memory = stack.enter_context(MemorySampler(client))
            frame = read_interactions(data, InteractionColumns("user", "item"))
            seconds = {}
            start = time.perf_counter()
            spill = location.scratch("spill")
            counts, _ = item_counts(frame, spill)  # also saves the log grouped by collection
            vocabulary = build_vocabulary(counts, args.min_count, None)
            seconds["item_counts"] = time.perf_counter() - start
            frame = read_spilled(spill, clean_partition(frame._meta)[0])
            start = time.perf_counter()
            collections = collection_stats(frame, vocabulary.ids, spec)
            seconds["collection_filters"] = time.perf_counter() - start
            group = zarr.open_group(location.join("run.zarr"), mode="w", zarr_format=3).create_group("cooc")
            start = time.perf_counter()
            stats = build_cooccurrence(client, frame, vocabulary.ids, spec, group, location.scratch("parts"))
            seconds["cooccurrence"] = time.perf_counter() - start
        total = sum(seconds.values())
        return {
            "storage": args.storage,
            "items": args.items, "items_kept": len(vocabulary.ids), "interactions": rows, "users": n_users,
            "partitions": frame.npartitions, "partition_rows": args.partition_rows, "workers": args.workers,
            "generate_s": round(generate, 1), **{f"{key}_s": round(value, 1) for key, value in seconds.items()},
            "wall_s": round(total, 1), "collections_kept": collections["kept"], "capped": collections["capped"],
            "pairs": stats["pairs"], "nnz": stats["nnz"],
            "pairs_per_s": round(stats["pairs"] / seconds["cooccurrence"]),
            "peak_rss_mb_per_worker": sorted(round(value / 2**20) for value in memory.peak.values()),
            "load_average": [round(value, 1) for value in os.getloadavg()],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--mean-length", type=float, default=5.0, help="mean collection length (geometric)")
    parser.add_argument("--partition-rows", type=int, default=1_000_000)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--max-collection-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="where the log and matrix go (default: the temp dir)")
    parser.add_argument("--storage", choices=("local", "s3"), nargs="+", default=["local"],
                        help="where the log, scratch and matrix live: local disk, or a moto S3 server on 127.0.0.1")
    args = parser.parse_args()
    for n_items in args.items:
        for storage in args.storage:
            result = run(argparse.Namespace(**{**vars(args), "items": n_items, "storage": storage}))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
