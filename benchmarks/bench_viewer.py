"""Viewer at scale: data size, time to first frame and zoom frame time in headless Chromium.

Writes a synthetic one-million-item run folder straight to disk (a clustered 2-D
layout, 3 metadata columns: a 50-value category, a float score and a text title;
string ids; a k = 15 neighbour graph), exports the viewer with ``tsne-dist export``'s
code, serves it with ``tsne-dist view``'s server on 127.0.0.1 and loads it in headless
Chromium with software GL (SwiftShader).

    .venv/bin/python benchmarks/bench_viewer.py              # 1M items, 3 page loads
    .venv/bin/python benchmarks/bench_viewer.py --n 100000 --repeat 1

Prints one JSON line per page load and a summary; screenshots go to
benchmarks/results/viewer-*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import zarr

from tsne_dist.viz.export import export_viewer
from tsne_dist.viz.server import make_server, server_url

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"]
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_synthetic_run(out: str, n: int, k: int = 15, seed: int = 0) -> None:
    """layout.parquet (id, x, y, category, score, title) and run.zarr/knn for n items."""
    rng = np.random.default_rng(seed)
    n_clusters = 50
    centres = rng.uniform(-60, 60, size=(n_clusters, 2))
    cluster = rng.integers(0, n_clusters, size=n)
    xy = (centres[cluster] + rng.normal(0, 3.0, size=(n, 2))).astype(np.float32)
    words = np.array(["red", "blue", "green", "small", "large", "old", "new", "fast", "quiet", "bright"])
    titles = pd.Series(words[rng.integers(0, 10, size=n)]).str.cat(
        pd.Series(words[rng.integers(0, 10, size=n)]), sep=" ").str.cat(pd.Series(np.arange(n).astype(str)), sep=" #")
    table = pd.DataFrame({
        "id": pd.Series(np.arange(n).astype(str)).radd("item-"),
        "x": xy[:, 0], "y": xy[:, 1],
        "category": pd.Series(cluster).map(lambda c: f"category-{c:02d}"),
        "score": rng.gamma(2.0, 1.0, size=n).astype(np.float32),
        "title": titles,
    })
    table.to_parquet(os.path.join(out, "layout.parquet"), index=False)
    # neighbours: mostly from the same cluster (as a real kNN graph would be), sorted distances
    order = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[order], np.arange(n_clusters))
    sizes = np.bincount(cluster, minlength=n_clusters)
    pick = rng.integers(0, 2**31, size=(n, k)) % sizes[cluster][:, None]
    indices = order[starts[cluster][:, None] + pick].astype(np.int32)
    distances = np.sort(rng.gamma(4.0, 0.25, size=(n, k)).astype(np.float32), axis=1)
    knn = zarr.open_group(os.path.join(out, "run.zarr"), mode="w").create_group("knn")
    knn.create_array("indices", data=indices, chunks=(min(n, 262144), k))
    knn.create_array("distances", data=distances, chunks=(min(n, 262144), k))


def measure_page(url: str, screenshot: str | None, zoom_frames: int = 30) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function("window.__viewer.ready || window.__viewer.error", timeout=120_000)
        wall_first = time.perf_counter() - start  # goto until every point is drawn
        page.wait_for_function("window.__viewer.loaded || window.__viewer.error", timeout=120_000)
        if errors or page.evaluate("window.__viewer.error"):
            raise RuntimeError(f"viewer failed: {errors or page.evaluate('window.__viewer.error')}")
        timings = page.evaluate("window.__viewer.timings")
        if screenshot:
            page.screenshot(path=screenshot)
        frames = page.evaluate("""async (count) => {
            const sp = window.__viewer.scatterplot;
            const nextDraw = () => new Promise((resolve) => {
                const token = sp.subscribe('draw', () => { sp.unsubscribe(token); resolve(); });
            });
            const times = [];
            let distance = sp.get('camera').distance[0];
            for (let i = 0; i < count; i += 1) {
                distance *= i < count / 2 ? 0.9 : 1 / 0.9;
                const t0 = performance.now();
                const drawn = nextDraw();
                sp.zoomToLocation([0.1, 0.1], distance);
                await drawn;
                window.__viewer.syncPixels();  // until the pixels are really there
                times.push(performance.now() - t0);
            }
            return times;
        }""", zoom_frames)
        browser.close()
    frames_sorted = sorted(frames)
    return {
        "first_frame_s": round(timings.get("preview", timings["firstFrame"]) / 1000, 3),
        "full_frame_s": round(timings["firstFrame"] / 1000, 3),
        "ready_wall_s": round(wall_first, 3),
        "all_data_loaded_s": round(timings["loaded"] / 1000, 3),
        "zoom_frame_ms_median": round(statistics.median(frames), 1),
        "zoom_frame_ms_p95": round(frames_sorted[int(0.95 * (len(frames) - 1))], 1),
    }


def measure_deckgl(out: str, url: str, zoom_frames: int = 10) -> dict:
    """The same data drawn by deck.gl's ScatterplotLayer (benchmarks/viewer-deckgl, built here with npm)."""
    import subprocess

    from playwright.sync_api import sync_playwright

    project = os.path.join(os.path.dirname(os.path.abspath(__file__)), "viewer-deckgl")
    if not os.path.isdir(os.path.join(project, "node_modules")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=project, check=True)
    subprocess.run(["node", "build.mjs", os.path.join(out, "viewer", "deckgl")], cwd=project, check=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "deckgl/")
        page.wait_for_function("window.__bench.ready || window.__bench.error", timeout=600_000)
        if page.evaluate("window.__bench.error"):
            raise RuntimeError(page.evaluate("window.__bench.error"))
        timings = page.evaluate("window.__bench.timings")
        page.screenshot(path=os.path.join(RESULTS, "viewer-deckgl.png"), timeout=600_000)
        frames = page.evaluate("""async (count) => {
            const times = [];
            for (let i = 0; i < count; i += 1) {
                const t0 = performance.now();
                await window.__bench.zoomBy(i < count / 2 ? 1.1 : 1 / 1.1);
                times.push(performance.now() - t0);
            }
            return times;
        }""", zoom_frames)
        browser.close()
    return {"library": "deck.gl 9.4 ScatterplotLayer", "first_frame_s": round(timings["firstFrame"] / 1000, 3),
            "zoom_frame_ms_median": round(statistics.median(frames), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="keep the synthetic run in this folder")
    parser.add_argument("--deckgl", action="store_true", help="also draw the same data with deck.gl (npm install)")
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    out = args.keep or tempfile.mkdtemp(prefix="bench-viewer-")
    os.makedirs(out, exist_ok=True)
    try:
        start = time.perf_counter()
        write_synthetic_run(out, args.n, args.k)
        synth_s = time.perf_counter() - start
        start = time.perf_counter()
        result = export_viewer(out)
        export_s = time.perf_counter() - start
        files = {entry.name: entry.stat().st_size for entry in os.scandir(os.path.join(result.path, "data"))}
        bundle = sum(entry.stat().st_size for entry in os.scandir(result.path) if entry.is_file())
        print(json.dumps({"n": args.n, "k": args.k, "synthetic_s": round(synth_s, 1), "export_s": round(export_s, 1),
                          "data_mb": round(result.data_bytes / 1e6, 2), "bundle_mb": round(bundle / 1e6, 3),
                          "files_mb": {name: round(size / 1e6, 2) for name, size in sorted(files.items())}}))
        server = make_server(out)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        runs = []
        for repeat in range(args.repeat):
            shot = os.path.join(RESULTS, f"viewer-{args.n}.png") if repeat == 0 else None
            runs.append(measure_page(server_url(server), shot))
            print(json.dumps(runs[-1]))
        summary = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(json.dumps({"library": "regl-scatterplot 1.16", "median_of": len(runs), **summary}))
        if args.deckgl:
            print(json.dumps(measure_deckgl(out, server_url(server))))
        server.shutdown()
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
