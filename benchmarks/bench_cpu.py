"""CPU benchmark: tsne_dist's pipeline beside openTSNE's defaults, same data, same cores.

For each data set and size, each tool runs in a fresh child process (so peak RSS is
its own), and both maps are scored with the same sampled metrics
(recall@10, trustworthiness@10 over a 5,000-item sample, seed 0).

    python benchmarks/bench_cpu.py --sizes 10000 100000 --datasets synthetic glove

prints a Markdown table (and writes it to --out/table.md with the raw JSON rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def make_inputs(dataset: str, n_items: int, folder: str) -> str:
    """Write the vectors of ``dataset`` cut to ``n_items`` as .npy; return the path."""
    from tsne_dist.datasets import load_glove, synthetic_catalog

    path = os.path.join(folder, f"{dataset}-{n_items}.npy")
    if not os.path.exists(path):
        if dataset == "glove":
            vectors, _ = load_glove(n_items)
        else:
            vectors, _ = synthetic_catalog(n_items, 64, n_categories=30, n_subcategories=5, seed=0)
        np.save(path, vectors)
    return path


def run_ours(vectors_path: str, out: str) -> dict:
    """tsne_dist with its defaults; per-stage seconds and memory from metrics.json."""
    import tsne_dist

    start = time.perf_counter()
    result = tsne_dist.run({"vectors": vectors_path, "out": out})
    total = time.perf_counter() - start
    metrics = result.metrics
    return {
        "tool": "tsne_dist", "total_s": total, "stages_s": metrics["timings"],
        "knn_backend": metrics["knn_backend"], "engine": metrics["engine"],
        "recall@10": metrics["knn_recall@10"], "trustworthiness@10": metrics["trustworthiness@10"],
        "kl": metrics["kl_divergence"],
    }


def opentsne_defaults(vectors: np.ndarray):
    """openTSNE's ``TSNE(n_jobs=<cores>, random_state=0).fit`` schedule, spelled out to time its phases.

    Returns the embedding (an ``openTSNE.TSNEEmbedding``), the seconds of
    ``prepare_initial`` (kNN, affinities, PCA) and of the two ``optimize`` calls; the
    import of openTSNE is before the clock.
    """
    from openTSNE import TSNE

    start = time.perf_counter()
    embedding = TSNE(n_jobs=os.cpu_count(), random_state=0).prepare_initial(vectors)
    prepared = time.perf_counter()
    embedding = embedding.optimize(n_iter=250, exaggeration=12, momentum=0.5, inplace=True)
    embedding = embedding.optimize(n_iter=500, exaggeration=None, momentum=0.8, inplace=True)
    return embedding, prepared - start, time.perf_counter() - prepared


def run_opentsne(vectors_path: str, out: str) -> dict:
    """openTSNE.TSNE() defaults (:func:`opentsne_defaults`), scored like ours."""
    from tsne_dist.metrics import neighbour_quality

    vectors = np.load(vectors_path)
    embedding, prepare_s, layout_s = opentsne_defaults(vectors)
    quality = neighbour_quality(vectors, np.asarray(embedding), k=10, sample=5000, seed=0)
    return {
        "tool": "openTSNE", "total_s": prepare_s + layout_s,
        "stages_s": {"knn+affinities+init": prepare_s, "layout": layout_s},
        "knn_backend": "annoy (openTSNE default)", "engine": "openTSNE (Barnes-Hut below 10k, FFT above)",
        "recall@10": quality.recall, "trustworthiness@10": quality.trustworthiness,
        "kl": float(embedding.kl_divergence),
    }


def child(args: argparse.Namespace) -> None:
    """Run one tool on one input in this process and print one JSON line."""
    runner = run_ours if args.tool == "tsne_dist" else run_opentsne
    shutil.rmtree(args.run_out, ignore_errors=True)  # a cold run: nothing to resume
    row = runner(args.vectors, args.run_out)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(row))


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    head = ("| data | N | tool | kNN s | affinities s | layout s | metrics s | total s | peak RSS MB "
            "| recall@10 | trust@10 | KL |")
    lines = [head, "|" + "---|" * 12]
    for row in rows:
        stages = row["stages_s"]
        knn = stages.get("knn", stages.get("knn+affinities+init"))
        lines.append(
            f"| {row['dataset']} | {row['n']:,} | {row['tool']} | {knn:.1f} | "
            f"{stages.get('affinities', float('nan')):.1f} | {stages['layout']:.1f} | "
            f"{stages.get('metrics', float('nan')):.1f} | {row['total_s']:.1f} | {row['peak_rss_mb']:.0f} | "
            f"{row['recall@10']:.3f} | {row['trustworthiness@10']:.4f} | {row['kl']:.3f} |")
    return "\n".join(lines).replace("nan", "–")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "glove"], choices=["synthetic", "glove"])
    parser.add_argument("--tools", nargs="+", default=["tsne_dist", "openTSNE"], choices=["tsne_dist", "openTSNE"])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cpu"))
    parser.add_argument("--tool", help=argparse.SUPPRESS)
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    parser.add_argument("--run-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tool:
        child(args)
        return
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for dataset in args.datasets:
        for n_items in args.sizes:
            vectors_path = make_inputs(dataset, n_items, args.out)
            for tool in args.tools:
                run_out = os.path.join(args.out, f"run-{dataset}-{n_items}-{tool}")
                done = subprocess.run(
                    [sys.executable, __file__, "--tool", tool, "--vectors", vectors_path, "--run-out", run_out],
                    capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{tool} failed on {dataset}-{n_items}:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.split("RESULT ", 1)[1])
                row.update({"dataset": dataset, "n": n_items})
                rows.append(row)
                print(json.dumps(row), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = f"Machine: {machine}\n\n{table(rows)}\n"
    with open(os.path.join(args.out, "table.md"), "w") as handle:
        handle.write(text)
    with open(os.path.join(args.out, "rows.json"), "w") as handle:
        json.dump(rows, handle, indent=1)
    print(text)


if __name__ == "__main__":
    main()
