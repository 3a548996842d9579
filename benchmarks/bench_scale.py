"""End to end at scale, as one fresh ``tsne-dist run`` process: 1M vectors, or a 1M-item interaction log.

- ``vectors``: ``synthetic_catalog(N, D)`` (default 1,000,000 x 128) as .npy, then
  ``tsne-dist run --vectors X --out OUT -q`` with its defaults.
- ``interactions``: ``synthetic_interactions`` (default 1,000,000 items, 100,000,000
  interactions, mean history length 5) as Parquet parts, then ``tsne-dist run
  --interactions 'PARTS/*.parquet' --collection-col user --item-col item --min-count 1``.

Inputs are written once into ``--work-dir`` and reused. Prints one JSON line per run:
wall seconds of the whole process, seconds per stage (metrics.json), the run
process's own peak RSS (its VmHWM, sampled; Dask workers are separate processes, their
peaks are in the run's log), recall@10 and trustworthiness@10.

    .venv/bin/python benchmarks/bench_scale.py --mode vectors --work-dir /tmp/scale
    .venv/bin/python benchmarks/bench_scale.py --mode interactions --work-dir /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cold import timed_child  # noqa: E402  (same child timing as the cold benchmark)


def write_vectors(folder: str, n_items: int, n_dims: int) -> str:
    from tsne_dist.datasets import synthetic_catalog

    path = os.path.join(folder, f"vectors-{n_items}x{n_dims}.npy")
    if not os.path.exists(path):
        vectors, _ = synthetic_catalog(n_items, n_dims, seed=0)
        np.save(path + ".tmp.npy", np.asarray(vectors, dtype=np.float32))
        os.replace(path + ".tmp.npy", path)
    return path


def write_log(folder: str, n_items: int, n_interactions: int) -> str:
    from tsne_dist.datasets import synthetic_interactions

    parts = os.path.join(folder, f"log-{n_items}-{n_interactions}")
    if not os.path.exists(os.path.join(parts, "_done")):
        os.makedirs(parts, exist_ok=True)
        n_users = n_interactions // 5
        _, tables = synthetic_interactions(n_users, n_items, n_interactions, seed=0,
                                           partitions=max(1, n_interactions // 2_000_000))
        for number, table in enumerate(tables):
            table[["user", "item"]].to_parquet(os.path.join(parts, f"part-{number:04d}.parquet"), index=False)
        open(os.path.join(parts, "_done"), "w").close()
    return os.path.join(parts, "*.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("vectors", "interactions"), required=True)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--interactions", type=int, default=100_000_000)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    out = os.path.join(args.work_dir, f"out-{args.mode}")
    command = [os.path.join(os.path.dirname(sys.executable), "tsne-dist"), "run", "--out", out, "--overwrite", "-q"]
    if args.mode == "vectors":
        command += ["--vectors", write_vectors(args.work_dir, args.items, args.dims)]
    else:
        command += ["--interactions", write_log(args.work_dir, args.items, args.interactions),
                    "--collection-col", "user", "--item-col", "item", "--min-count", "1"]
    wall, peak_mb, _ = timed_child(command)
    with open(os.path.join(out, "metrics.json")) as handle:
        metrics = json.load(handle)
    print(json.dumps({"mode": args.mode, "n_items": metrics["n_items"], "wall_s": round(wall, 1),
                      "stages_s": metrics["timings"], "peak_rss_mb": round(peak_mb),
                      "stage_peak_memory_mb": metrics.get("peak_memory_mb"), "knn_backend": metrics["knn_backend"],
                      "engine": metrics["engine"], "repulsion": metrics.get("repulsion"), "recall@10": metrics["knn_recall@10"],
                      "trustworthiness@10": metrics["trustworthiness@10"]}))


if __name__ == "__main__":
    main()
