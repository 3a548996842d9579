"""Whole-process, cold: ``tsne-dist run`` against openTSNE's defaults, alternated A B A B.

Each tool runs as a fresh process on the same .npy file, as a user runs it once per
job: tsne_dist as the ``tsne-dist run --vectors X --out OUT -q`` command (its
defaults: kNN, affinities, layout, metrics, layout.parquet, map.png, viewer/), openTSNE
as ``TSNE(n_jobs=<cores>, random_state=0)`` on the same cores (its default
schedule, spelled out as prepare_initial + two optimize calls to time the phases).
Wall time is the child's whole life, imports included; peak RSS is that child's own
(its ``VmHWM``, sampled every 0.1 s). Both maps are then scored by the same code, outside the timed
processes: recall@10 and trustworthiness@10 on 5,000 sampled items (seed 0).

"Cold" means a fresh process with nothing to resume. Children run without
PYTHONDONTWRITEBYTECODE, so compiled bytecode is kept as on a user's machine. The numba cache (compiled
once per install, or ahead with ``tsne-dist warm-up``) is whatever the machine has;
``--warm-up`` runs ``tsne-dist warm-up`` first and reports its time, so the first
pair does not pay a one-time compile.

    .venv/bin/python benchmarks/bench_cold.py --datasets synthetic glove --sizes 5000 20000 100000 --warm-up

Prints one JSON line per run and, last, a Markdown table: per pair the total ratio
(tsne_dist / openTSNE, whole processes) and two stage ratios, both timed after the
imports and the read of the vectors: "prepare" (ours: kNN + affinities; openTSNE:
``prepare_initial``, i.e. kNN + affinities + PCA initialisation) and "layout" (ours:
initialisation + optimisation, including the optimiser's import; openTSNE: the two
``optimize`` calls). The rest of each process (imports, reading, our store, metrics
and output files) is in the total only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_cpu import make_inputs  # noqa: E402  (the same inputs as the in-process benchmark)
# As on a user's machine, Python keeps the bytecode it compiles (a sandbox may set
# PYTHONDONTWRITEBYTECODE, which makes every process recompile every module it imports).
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
OPENTSNE_CHILD = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
from bench_cpu import opentsne_defaults
embedding, prepare_s, layout_s = opentsne_defaults(np.load(sys.argv[1]))
np.save(sys.argv[2], np.asarray(embedding))
print("STAGES " + json.dumps({"prepare": prepare_s, "layout": layout_s}))
"""


def timed_child(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``; its wall seconds, its own peak RSS in MB and its stdout.

    The peak is the child's ``VmHWM`` (/proc/PID/status), read every 0.1 s until it
    exits: ``ru_maxrss`` would also count the RSS of this process at the fork.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, env=CHILD_ENV)
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode != 0:
            sys.exit(f"{' '.join(command[:2])} failed:\n{stderr.read()[-3000:]}")
        return wall, peak_kb / 1024, stdout.read()


def _high_water_kb(pid: int) -> int:
    """The process's peak resident memory so far (kB), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_tsne_dist(vectors_path: str, out: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [os.path.join(os.path.dirname(sys.executable), "tsne-dist"), "run", "--vectors", vectors_path,
               "--out", out, "-q"]
    wall, peak, _ = timed_child(command)
    with open(os.path.join(out, "metrics.json")) as handle:
        metrics = json.load(handle)
    import pandas as pd

    layout = pd.read_parquet(os.path.join(out, "layout.parquet"), columns=["x", "y"]).to_numpy()
    stages = metrics["timings"]
    return {"tool": "tsne_dist", "wall_s": wall, "peak_rss_mb": peak, "layout": layout,
            "prepare_s": stages["vectors"] + stages["knn"] + stages["affinities"], "layout_s": stages["layout"],
            "stages_s": stages, "knn_backend": metrics["knn_backend"], "engine": metrics["engine"]}


def run_opentsne(vectors_path: str, out: str) -> dict:
    os.makedirs(out, exist_ok=True)
    embedding_path = os.path.join(out, "embedding.npy")
    wall, peak, stdout = timed_child([sys.executable, "-c", OPENTSNE_CHILD, vectors_path, embedding_path, HERE])
    stages = json.loads(stdout.split("STAGES ", 1)[1])
    return {"tool": "openTSNE", "wall_s": wall, "peak_rss_mb": peak, "layout": np.load(embedding_path),
            "prepare_s": stages["prepare"], "layout_s": stages["layout"], "stages_s": stages,
            "knn_backend": "annoy", "engine": "openTSNE"}


def score(row: dict, vectors: np.ndarray) -> None:
    from tsne_dist.metrics import neighbour_quality

    quality = neighbour_quality(vectors, row.pop("layout"), k=10, sample=5000, seed=0)
    row["recall@10"], row["trustworthiness@10"] = quality.recall, quality.trustworthiness


def pair_rows(rows: list[dict]) -> str:
    """Markdown: one line per pair (tsne_dist run, then the openTSNE run after it)."""
    lines = ["| data | N | pair | tsne_dist s | openTSNE s | ratio | prepare ratio | layout ratio "
             "| recall@10 ours / theirs | trust@10 ours / theirs | peak RSS MB ours / theirs |",
             "|" + "---|" * 11]
    for ours, theirs in zip(rows[0::2], rows[1::2]):
        lines.append(
            f"| {ours['dataset']} | {ours['n']:,} | {ours['pair']} | {ours['wall_s']:.1f} | {theirs['wall_s']:.1f} | "
            f"**{ours['wall_s'] / theirs['wall_s']:.2f}** | {ours['prepare_s'] / theirs['prepare_s']:.2f} | "
            f"{ours['layout_s'] / theirs['layout_s']:.2f} | {ours['recall@10']:.3f} / {theirs['recall@10']:.3f} | "
            f"{ours['trustworthiness@10']:.4f} / {theirs['trustworthiness@10']:.4f} | "
            f"{ours['peak_rss_mb']:.0f} / {theirs['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 100_000])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "glove"], choices=["synthetic", "glove"])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--warm-up", action="store_true", help="run tsne-dist warm-up first (timed)")
    parser.add_argument("--work-dir", default=os.path.join(HERE, "results", "cold"))
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    if args.warm_up:
        wall, _, _ = timed_child([os.path.join(os.path.dirname(sys.executable), "tsne-dist"), "warm-up", "-q"])
        print(json.dumps({"warm_up_s": round(wall, 1)}), flush=True)
    rows = []
    for dataset in args.datasets:
        for n_items in args.sizes:
            vectors_path = make_inputs(dataset, n_items, args.work_dir)
            vectors = np.load(vectors_path)
            for pair in range(1, args.pairs + 1):
                for runner in (run_tsne_dist, run_opentsne):
                    row = runner(vectors_path, os.path.join(args.work_dir, f"out-{dataset}-{n_items}"))
                    score(row, vectors)
                    row.update({"dataset": dataset, "n": n_items, "pair": pair})
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    load = os.getloadavg()[0]
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average at the end {load:.1f}\n")
    print(pair_rows(rows))


if __name__ == "__main__":
    main()
