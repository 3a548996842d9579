"""Maps that stay put: init_from (warm start), transform, compare, sweep, and their bad input.

Day 2 is day 1 of a synthetic catalog with 5 % of items removed, 5 % new and 20 % of
vectors moved slightly (``tsne_dist.datasets.catalog_days``).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import tsne_dist
from conftest import done_stages, read_metrics, run_cli
from tsne_dist.datasets import catalog_days, synthetic_interactions
from tsne_dist.metrics import neighbour_quality
from tsne_dist.stability import shared_items, stability

N_ITEMS, N_DIMS = 2000, 16
RUN = {"label": "category", "color_by": "category"}  # engine auto: ours, with Barnes-Hut repulsion


def _write_day(folder, name: str, vectors: np.ndarray, metadata: pd.DataFrame) -> dict[str, str]:
    paths = {"vectors": str(folder / f"{name}.npy"), "ids": str(folder / f"{name}-ids.npy"),
             "metadata": str(folder / f"{name}-meta.parquet")}
    np.save(paths["vectors"], vectors)
    np.save(paths["ids"], metadata["id"].to_numpy().astype(str))
    metadata.to_parquet(paths["metadata"], index=False)
    return paths


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Day 1 mapped fresh; day 2 mapped warm (init_from day 1) and fresh."""
    folder = tmp_path_factory.mktemp("days")
    day1, meta1, day2, meta2 = catalog_days(N_ITEMS, N_DIMS, seed=3)
    files1, files2 = _write_day(folder, "day1", day1, meta1), _write_day(folder, "day2", day2, meta2)
    outs = {name: str(folder / name) for name in ("day1", "warm", "fresh")}
    results = {
        "day1": tsne_dist.run({**files1, **RUN, "out": outs["day1"]}),
        "warm": tsne_dist.run({**files2, **RUN, "out": outs["warm"], "init_from": outs["day1"]}),
        "fresh": tsne_dist.run({**files2, **RUN, "out": outs["fresh"]}),
    }
    new = ~meta2["id"].isin(meta1["id"]).to_numpy()
    return {"folder": folder, "files1": files1, "files2": files2, "outs": outs, "results": results,
            "vectors2": day2, "new": new}


def test_warm_start_keeps_the_map_and_matches_a_fresh_run(days):
    warm, fresh, day1 = (days["results"][name] for name in ("warm", "fresh", "day1"))
    figures = warm.metrics["stability"]
    assert figures["n_shared"] == round(0.95 * N_ITEMS)
    assert figures["displacement_median"] < 1.0
    assert warm.metrics["init_from"] == days["outs"]["day1"]
    # contrast: a fresh day-2 map, aligned the same way, moves items by many neighbour distances
    without = stability(day1.layout["id"].to_numpy(), day1.layout[["x", "y"]].to_numpy(),
                        fresh.layout["id"].to_numpy(), fresh.layout[["x", "y"]].to_numpy())
    assert without["displacement_median"] > 5 * figures["displacement_median"]
    assert figures["kept_neighbours@10"] > without["kept_neighbours@10"]
    for key in ("knn_recall@10", "trustworthiness@10"):
        assert abs(warm.metrics[key] - fresh.metrics[key]) <= 0.01, key
    # the warm start ran the gentle schedule, and said so
    assert warm.metrics["resolved"]["warm_start"]["value"]["early_exaggeration_iter"] == 0
    assert warm.metrics["initialization"] == "previous"


def test_new_items_land_next_to_their_neighbours(days):
    layout = days["results"]["warm"].layout[["x", "y"]].to_numpy()
    new = days["new"]
    quality_new = neighbour_quality(days["vectors2"], layout, k=10, queries=np.flatnonzero(new))
    quality_old = neighbour_quality(days["vectors2"], layout, k=10, queries=np.flatnonzero(~new))
    assert quality_new.n_sampled == new.sum() == round(0.05 * N_ITEMS)
    assert quality_new.recall >= quality_old.recall - 0.05


def test_warm_start_rerun_is_skipped_and_a_changed_previous_map_recomputes(days, tmp_path):
    again = tsne_dist.run({**days["files2"], **RUN, "out": days["outs"]["warm"], "init_from": days["outs"]["day1"]})
    assert "layout" in again.stages_skipped
    moved = tmp_path / "day1-copy"
    shutil.copytree(days["outs"]["day1"], moved)
    other = tsne_dist.run({**days["files2"], **RUN, "out": days["outs"]["warm"], "init_from": str(moved)})
    assert "layout" in other.stages_run and "knn" in other.stages_skipped


@pytest.mark.parametrize("engine, repulsion", [("opentsne", "auto"), ("numpy", "fft")])  # cupy: test_gpu.py
def test_warm_start_runs_on_other_engines(days, tmp_path, engine, repulsion):
    result = tsne_dist.run({**days["files2"], **RUN, "engine": engine, "repulsion": repulsion,
                            "out": str(tmp_path / engine), "init_from": days["outs"]["day1"]})
    assert (result.metrics["engine"], result.metrics["repulsion"]) == (engine, "barnes-hut" if engine == "opentsne"
                                                                       else "fft")
    assert result.metrics["stability"]["displacement_median"] < 1.0


def test_warm_start_on_the_interactions_path(tmp_path):
    _, parts = synthetic_interactions(400, 300, 6000, n_categories=4, seed=0)
    pd.concat(list(parts)).to_parquet(tmp_path / "log.parquet", index=False)
    settings = {"interactions": str(tmp_path / "log.parquet"), "collection_col": "user", "item_col": "item",
                "min_count": 2}
    first = tsne_dist.run({**settings, "out": str(tmp_path / "a")})
    second = tsne_dist.run({**settings, "out": str(tmp_path / "b"), "init_from": str(tmp_path / "a"), "seed": 1})
    figures = second.metrics["stability"]
    assert figures["n_shared"] == first.metrics["n_items"]
    assert figures["displacement_median"] < 1.0


def _refused(capsys, out: str, *argv: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    lines = [line for line in err.strip().splitlines() if line.startswith("tsne-dist: error")]
    assert code == 2 and len(lines) == 1, err
    assert not os.path.exists(out) or os.listdir(out) == []  # nothing written, not even an empty folder
    return lines[0]


def test_bad_init_from_is_one_line_and_writes_nothing(days, tmp_path, capsys):
    files2, outs = days["files2"], days["outs"]
    base = ["run", "--vectors", files2["vectors"], "--ids", files2["ids"], "-q"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no tsne_dist run" in _refused(capsys, str(tmp_path / "o1"), *base, "--out", str(tmp_path / "o1"),
                                                "--init-from", str(empty))
    unfinished = tmp_path / "unfinished"
    shutil.copytree(outs["day1"], unfinished)
    os.remove(unfinished / "layout.parquet")
    assert "is not a finished run" in _refused(capsys, str(tmp_path / "o2"), *base, "--out", str(tmp_path / "o2"),
                                               "--init-from", str(unfinished))
    assert "was made with metric euclidean" in _refused(capsys, str(tmp_path / "o3"), *base, "--out",
                                                        str(tmp_path / "o3"), "--metric", "cosine", "--init-from",
                                                        outs["day1"])
    other_ids = tmp_path / "other-ids.npy"
    np.save(other_ids, np.array([f"x-{i}" for i in range(len(days["vectors2"]))]))
    line = _refused(capsys, str(tmp_path / "o4"), "run", "--vectors", files2["vectors"], "--ids", str(other_ids),
                    "--out", str(tmp_path / "o4"), "--init-from", outs["day1"], "-q")
    assert "share 0 item ids" in line
    np.save(other_ids, np.array([f"x-{i}" for i in range(len(days["vectors2"]) - 2)] + ["item-0", "item-1"]))
    line = _refused(capsys, str(tmp_path / "o4"), "run", "--vectors", files2["vectors"], "--ids", str(other_ids),
                    "--out", str(tmp_path / "o4"), "--init-from", outs["day1"], "-q")
    assert "share 2 item ids" in line and "at least 3" in line  # too few to align: refused before any work
    before = sorted(os.listdir(outs["day1"]))
    line = _refused(capsys, outs["day1"] + "-unused", "run", "--vectors", days["files1"]["vectors"], "--ids",
                    days["files1"]["ids"], "--out", outs["day1"], "--init-from", outs["day1"], "-q")
    assert "is this run's own" in line and sorted(os.listdir(outs["day1"])) == before
    _, parts = synthetic_interactions(100, 80, 3000, n_categories=4, seed=1)
    pd.concat(list(parts)).to_parquet(tmp_path / "log.parquet", index=False)
    line = _refused(capsys, str(tmp_path / "o5"), "run", "--interactions", str(tmp_path / "log.parquet"),
                    "--collection-col", "user", "--item-col", "item", "--out", str(tmp_path / "o5"),
                    "--init-from", outs["day1"], "-q")
    assert "is a map of vectors, this run maps interactions" in line


def test_an_interaction_log_with_no_id_in_common_is_refused_before_the_cooccurrence(tmp_path, capsys):
    _, parts = synthetic_interactions(300, 200, 4000, n_categories=4, seed=2)
    log = pd.concat(list(parts))
    log.to_parquet(tmp_path / "a.parquet", index=False)
    log.assign(item=log["item"] + 100_000).to_parquet(tmp_path / "b.parquet", index=False)
    flags = ["--collection-col", "user", "--item-col", "item", "--min-count", "2", "-q"]
    assert run_cli(capsys, "run", "--interactions", str(tmp_path / "a.parquet"), "--out", str(tmp_path / "a"),
                   *flags)[0] == 0
    code, _, err = run_cli(capsys, "run", "--interactions", str(tmp_path / "b.parquet"), "--out",
                           str(tmp_path / "b"), "--init-from", str(tmp_path / "a"), *flags)
    assert code == 2 and "and the previous map in" in err and "share 0 item ids" in err
    assert done_stages(str(tmp_path / "b")) == ["items"]  # the vocabulary (needed to know the ids), nothing after


def test_transform_places_new_items_without_moving_the_map(days, tmp_path, capsys):
    new = days["new"]
    new_vectors = tmp_path / "new.npy"
    new_ids = tmp_path / "new-ids.npy"
    np.save(new_vectors, days["vectors2"][new])
    ids2 = np.load(days["files2"]["ids"])
    np.save(new_ids, ids2[new])
    out = tmp_path / "placed"
    code, printed, err = run_cli(capsys, "transform", days["outs"]["day1"], "--vectors", str(new_vectors), "--ids",
                                 str(new_ids), "--out", str(out), "-q")
    assert code == 0, err
    table = pd.read_parquet(out / "layout.parquet")
    reference = pd.read_parquet(os.path.join(days["outs"]["day1"], "layout.parquet"))
    old = table[~table["transformed"]]
    assert len(old) == len(reference) and (table["transformed"].sum() == new.sum())
    np.testing.assert_array_equal(old[["x", "y"]].to_numpy(), reference[["x", "y"]].to_numpy())
    assert (old["id"].to_numpy() == reference["id"].to_numpy()).all()
    assert old["category"].notna().all()  # the reference's metadata columns are kept
    # the new items' recall against a full rerun (day 2 fresh, which holds them) of the same items
    fresh = days["results"]["fresh"].layout[["x", "y"]].to_numpy()
    rerun = neighbour_quality(days["vectors2"], fresh, k=10, queries=np.flatnonzero(new))
    placed = read_metrics(str(out))
    assert placed["n_new"] == new.sum() and placed["knn_recall@10"] >= rerun.recall - 0.05
    assert os.path.exists(out / "map.png")
    # the same items again, an id the map holds, or vectors of another model: one line, exit 2
    line = _refused(capsys, str(tmp_path / "t2"), "transform", days["outs"]["day1"], "--vectors",
                    days["files1"]["vectors"], "--ids", days["files1"]["ids"], "--out", str(tmp_path / "t2"))
    assert "already in the reference map" in line and not os.path.exists(tmp_path / "t2" / "layout.parquet")
    np.save(tmp_path / "narrow.npy", days["vectors2"][new][:, :5])
    line = _refused(capsys, str(tmp_path / "t3"), "transform", days["outs"]["day1"], "--vectors",
                    str(tmp_path / "narrow.npy"), "--ids", str(new_ids), "--out", str(tmp_path / "t3"))
    assert "5 dimensions" in line
    line = _refused(capsys, str(tmp_path / "t4"), "transform", str(tmp_path), "--vectors", str(new_vectors),
                    "--out", str(tmp_path / "t4"))
    assert "holds no tsne_dist run" in line
    line = _refused(capsys, str(tmp_path / "t5"), "transform", days["outs"]["day1"], "--vectors", str(new_vectors),
                    "--out", str(tmp_path / "t5"))
    assert "carry no ids" in line and "--ids" in line


def test_compare_report_opens_in_chromium_without_errors(days, tmp_path, capsys):
    out = tmp_path / "report"
    code, printed, err = run_cli(capsys, "compare", days["outs"]["day1"], days["outs"]["warm"], "--out", str(out),
                                 "-q")
    assert code == 0, err
    summary = json.loads((out / "compare.json").read_text())
    assert summary["n_shared"] == round(0.95 * N_ITEMS) and summary["label"] == "category"
    assert summary["displacement_median"] == pytest.approx(
        days["results"]["warm"].metrics["stability"]["displacement_median"], abs=1e-3)
    assert 0.5 < summary["knn_jaccard_mean"] < 1.0  # 20 % of the vectors moved
    assert len(summary["most_moved"]) == 20 and summary["most_moved"][0]["displacement"] >= \
        summary["most_moved"][-1]["displacement"]
    assert {row["label"] for row in summary["label_silhouettes"]} == set(days["results"]["day1"].layout["category"])
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        errors, requests = [], []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto((out / "report.html").as_uri())
        width = page.evaluate("document.images[0].naturalWidth")
        rows = page.evaluate("document.querySelectorAll('tr').length")
        browser.close()
    assert errors == [] and width == 1600 and rows > 40
    assert all(url.startswith(("file://", "data:")) for url in requests)


def test_compare_refuses_runs_of_other_catalogs(days, tmp_path, capsys):
    other = tmp_path / "other"
    vectors = np.load(days["files1"]["vectors"])[:300]
    tsne_dist.run({"vectors": vectors, "ids": [f"other-{i}" for i in range(300)], "out": str(other),
                   "n_iter": 50, "early_exaggeration_iter": 10, "perplexity": 10})
    line = _refused(capsys, str(tmp_path / "r"), "compare", days["outs"]["day1"], str(other), "--out",
                    str(tmp_path / "r"))
    assert "share 0 item ids" in line and not os.path.exists(tmp_path / "r" / "report.html")


def test_sweep_shares_one_knn_graph(days, tmp_path, capsys):
    out = tmp_path / "sweep"
    fast = ["--n-iter", "150", "--early-exaggeration-iter", "50"]  # plumbing: a short optimisation will do
    code, printed, err = run_cli(capsys, "sweep", "--perplexity", "5,15", "--vectors", days["files1"]["vectors"],
                                 "--ids", days["files1"]["ids"], "--metadata", days["files1"]["metadata"],
                                 "--color-by", "category", "--out", str(out), "-q", *fast)
    assert code == 0, err
    table = json.loads((out / "sweep.json").read_text())["table"]
    assert [row["perplexity"] for row in table] == [5.0, 15.0]
    assert [row["affinity_neighbors"] for row in table] == [15, 45]
    small, large = read_metrics(str(out / "perplexity-5")), read_metrics(str(out / "perplexity-15"))
    assert "knn" in large["stages_run"] and "knn" in small["stages_skipped"]  # one kNN, for the largest k
    assert small["n_neighbors"] == 45 and small["perplexity"] == 5.0
    assert (out / "sweep.png").stat().st_size > 10_000 and "| 5 | 15 |" in printed
    # a copy of the shared stages cut short (no root metadata) is made again on the rerun, not trusted
    shutil.rmtree(out / "perplexity-5")
    shutil.copytree(out / "perplexity-15" / "run.zarr" / "knn", out / "perplexity-5" / "run.zarr" / "knn")
    code, _, err = run_cli(capsys, "sweep", "--perplexity", "5,15", "--vectors", days["files1"]["vectors"],
                           "--ids", days["files1"]["ids"], "--metadata", days["files1"]["metadata"],
                           "--color-by", "category", "--out", str(out), "-q", *fast)
    assert code == 0, err
    assert "knn" in read_metrics(str(out / "perplexity-5"))["stages_skipped"]
    assert read_metrics(str(out / "perplexity-15"))["stages_run"] == []
    assert _refused(capsys, str(tmp_path / "s2"), "sweep", "--perplexity", "ten", "--vectors",
                    days["files1"]["vectors"], "--out", str(tmp_path / "s2"))
    assert "perplexity 2000" in _refused(capsys, str(tmp_path / "s3"), "sweep", "--perplexity", "5,2000",
                                         "--vectors", days["files1"]["vectors"], "--out", str(tmp_path / "s3"))
