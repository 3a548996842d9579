"""t-SNE engines on the same P and initialisation: seconds per 50 iterations, total, KL, recall.

    python benchmarks/bench_engine.py --sizes 10000 100000 1000000 --engines numpy:fft opentsne [cupy]
    python benchmarks/bench_engine.py --sizes 5000 10000 20000 --engines numpy:barnes-hut numpy:fft opentsne

An engine is ``auto``, ``numpy``, ``cupy`` or ``opentsne``, optionally with our engines'
repulsion after a colon (``numpy:barnes-hut``, ``numpy:fft``; default ``auto``).

For each size, a synthetic catalog (64-d, 30 categories x 5 subcategories) or the
first N GloVe words (--dataset glove) gets its
kNN graph (exact below ~5k items, pynndescent above), perplexity-30 affinities and a
PCA initialisation once (cached under --out); every engine then runs openTSNE's
schedule from that same P and init. Sizes above --full-limit run only
--short-iters iterations and report the extrapolated 750-iteration time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))


def prepared(dataset: str, n_items: int, folder: str) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Vectors, P and PCA init for ``n_items`` (computed once, then read from disk)."""
    from tsne_dist.affinity import joint_probabilities
    from tsne_dist.datasets import load_glove, synthetic_catalog
    from tsne_dist.neighbors import nearest_neighbors
    from tsne_dist.tsne import pca_init

    path = os.path.join(folder, f"prepared-{dataset}-{n_items}.npz")
    if dataset == "glove":
        vectors, _ = load_glove(n_items)
    else:
        vectors, _ = synthetic_catalog(n_items, 64, n_categories=30, n_subcategories=5, seed=0)
    if os.path.exists(path):
        saved = np.load(path)
        P = sp.csr_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=(n_items, n_items))
        return vectors, P, saved["init"]
    start = time.perf_counter()
    knn = nearest_neighbors(vectors, 90, seed=0)
    P = joint_probabilities(knn.indices, knn.distances, 30.0)
    init = pca_init(vectors, 0)
    print(f"prepared N={n_items} in {time.perf_counter() - start:.0f} s ({knn.backend})", flush=True)
    np.savez(path, data=P.data, indices=P.indices, indptr=P.indptr, init=init)
    return vectors, P, init


def run_engine(spec: str, P: sp.csr_matrix, init: np.ndarray, n_iter: int) -> tuple[np.ndarray, float, list]:
    """Run ``n_iter`` iterations of openTSNE's schedule with ``engine[:repulsion]``; return
    layout, KL, [(iteration, kl, seconds)]."""
    from tsne_dist.tsne import Schedule, choose_engine, optimize_layout

    requested, _, repulsion = spec.partition(":")
    engine, _ = choose_engine(requested, repulsion=repulsion or "auto")
    schedule = Schedule(n_iter=n_iter, early_exaggeration_iter=min(250, n_iter // 3))
    result = optimize_layout(P, init, schedule, engine=engine, repulsion=repulsion or "auto")
    return result.layout, result.kl_divergence, result.kl_history


def main() -> None:
    from tsne_dist.metrics import neighbour_quality

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engines", nargs="+", default=["numpy", "opentsne"])
    parser.add_argument("--dataset", choices=["synthetic", "glove"], default="synthetic")
    parser.add_argument("--full-limit", type=int, default=200_000)
    parser.add_argument("--short-iters", type=int, default=100)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "engine"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for n_items in args.sizes:
        vectors, P, init = prepared(args.dataset, n_items, args.out)
        n_iter = 750 if n_items <= args.full_limit else args.short_iters
        for engine in args.engines:
            start = time.perf_counter()
            layout, kl, history = run_engine(engine, P, init, n_iter)
            seconds = time.perf_counter() - start
            quality = neighbour_quality(vectors, layout, k=10, sample=5000, seed=0)
            row = {"data": args.dataset, "n": n_items, "engine": engine, "iterations": n_iter, "seconds": seconds,
                   "s_per_50": seconds / n_iter * 50, "total_750_s": seconds / n_iter * 750,
                   "kl": kl, "recall@10": quality.recall, "trustworthiness@10": quality.trustworthiness}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", "",
             "| data | N | engine | iterations run | s / 50 it | 750 it (s) | KL | recall@10 | trust@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        total = f"{row['total_750_s']:.0f}" + ("" if row["iterations"] == 750 else " (extrapolated)")
        lines.append(f"| {row['data']} | {row['n']:,} | {row['engine']} | {row['iterations']} | {row['s_per_50']:.2f} | {total} | "
                     f"{row['kl']:.3f} | {row['recall@10']:.3f} | {row['trustworthiness@10']:.4f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, f"table-{args.dataset}.md"), "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
