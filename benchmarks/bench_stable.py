"""Day 2 of a nightly catalog map: warm-started from day 1 (``--init-from``) against a fresh run.

Writes two days of a synthetic catalog (``tsne_dist.datasets.catalog_days``: day 2 is
day 1 with 5 % of items removed, 5 % new and 20 % of vectors moved slightly) as .npy
vectors and .txt ids, then runs ``tsne-dist run`` as a fresh process per step:

- ``day1``: day 1, fresh;
- ``day2-warm``: day 2 with ``--init-from`` day 1's output;
- ``day2-fresh``: day 2 from scratch.

    .venv/bin/python benchmarks/bench_stable.py --items 1000000 --dims 32 --work-dir /tmp/stable
    .venv/bin/python benchmarks/bench_stable.py --items 20000 --steps day1 day2-warm day2-fresh

Steps whose output is already finished in ``--work-dir`` are reused (so day 1 can run
ahead of the others). Prints one JSON line per step: wall seconds of the command, stage
seconds, peak memory of the run process, recall@10, trustworthiness@10 and, for day 2,
the stability figures against day 1 (median and 95th-percentile displacement of the
shared items after Procrustes alignment, in median map-neighbour distances, and the
share of 10 map neighbours kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

STEPS = ("day1", "day2-warm", "day2-fresh")


def write_days(folder: str, n_items: int, n_dims: int, seed: int) -> None:
    """day1.npy / day1.txt / day2.npy / day2.txt (and their metadata) in ``folder``, once."""
    from tsne_dist.datasets import catalog_days

    if os.path.exists(os.path.join(folder, "day2.txt")):
        return
    os.makedirs(folder, exist_ok=True)
    day1, meta1, day2, meta2 = catalog_days(n_items, n_dims, seed=seed)
    for name, vectors, meta in (("day1", day1, meta1), ("day2", day2, meta2)):
        np.save(os.path.join(folder, f"{name}.npy"), vectors)
        meta.to_parquet(os.path.join(folder, f"{name}-meta.parquet"))
        with open(os.path.join(folder, f"{name}.txt"), "w") as handle:
            handle.write("\n".join(meta["id"]) + "\n")


def run_step(folder: str, step: str, extra: list[str]) -> dict:
    """Run one step as a fresh process (or read its finished output); its figures."""
    day = step.split("-")[0]
    out = os.path.join(folder, step)
    command = [sys.executable, "-m", "tsne_dist", "run", "--vectors", os.path.join(folder, f"{day}.npy"),
               "--ids", os.path.join(folder, f"{day}.txt"), "--metadata", os.path.join(folder, f"{day}-meta.parquet"),
               "--label", "category", "--color-by", "category", "--out", out, "-q", *extra]
    if step == "day2-warm":
        command += ["--init-from", os.path.join(folder, "day1")]
    wall = None
    if not os.path.exists(os.path.join(out, "metrics.json")):
        start = time.perf_counter()
        subprocess.run(command, check=True)
        wall = round(time.perf_counter() - start, 1)
    with open(os.path.join(out, "metrics.json")) as handle:
        metrics = json.load(handle)
    row = {"step": step, "n_items": metrics["n_items"], "wall_s": wall,
           "stages_s": {name: round(value, 1) for name, value in metrics["timings"].items() if value is not None},
           "peak_memory_mb": max(value for value in metrics["peak_memory_mb"].values() if value is not None),
           "recall@10": metrics["knn_recall@10"], "trustworthiness@10": metrics["trustworthiness@10"],
           "silhouette_2d": metrics.get("silhouette_2d"), "kl": metrics["kl_divergence"]}
    if day == "day2":
        row["stability"] = stability_against_day1(folder, out)
    return row


def stability_against_day1(folder: str, out: str) -> dict:
    """Displacement and kept map neighbours of the shared items, day 1 -> this output."""
    from tsne_dist.stability import stability

    day1 = pd.read_parquet(os.path.join(folder, "day1", "layout.parquet"), columns=["id", "x", "y"])
    day2 = pd.read_parquet(os.path.join(out, "layout.parquet"), columns=["id", "x", "y"])
    figures = stability(day1["id"].to_numpy(), day1[["x", "y"]].to_numpy(), day2["id"].to_numpy(),
                        day2[["x", "y"]].to_numpy())
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--work-dir", default=None, help="folder for the data and the runs (default: ./bench-stable-N)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more `tsne-dist run` flags, after --")
    args = parser.parse_args()
    folder = args.work_dir or f"bench-stable-{args.items}"
    write_days(folder, args.items, args.dims, args.seed)
    for step in args.steps:
        row = run_step(folder, step, [flag for flag in args.extra if flag != "--"])
        row["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
