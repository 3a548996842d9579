"""Numbers and joins you can trust: ties, undefined metric inputs, exact ids, honest labels and settings."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import tsne_dist
from tsne_dist.errors import InputError
from tsne_dist.metrics import duplicate_rows, label_problem, neighbour_quality
from tsne_dist.neighbors import graph_recall
from conftest import FAST, read_metrics, run_cli


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("tsne-dist: error:")]


def _copies_catalog(seed: int = 0) -> np.ndarray:
    """2,000 rows: 1,600 copies of 8 distinct vectors, then 400 distinct ones."""
    rng = np.random.default_rng(seed)
    distinct = rng.normal(size=(8, 6)) * 4
    return np.vstack([np.repeat(distinct, 200, axis=0), rng.normal(size=(400, 6))]).astype(np.float32)


def _tie_aware_recall(vectors: np.ndarray, layout: np.ndarray, k: int) -> float:
    """The definition, computed directly: a map neighbour is a hit when it is at most as far
    in high-D as the true k-th neighbour."""
    hits = 0
    for query in range(len(vectors)):
        high = np.sqrt(((vectors.astype(np.float64) - vectors[query]) ** 2).sum(axis=1))
        low = ((layout - layout[query]) ** 2).sum(axis=1)
        high[query], low[query] = np.inf, np.inf
        kth = np.sort(high)[k - 1]
        map_neighbours = np.argsort(low, kind="stable")[:k]
        hits += int((high[map_neighbours] <= kth + 1e-9).sum())
    return hits / (len(vectors) * k)


def test_recall_counts_tied_neighbours_on_duplicate_rows():
    vectors = _copies_catalog()
    rng = np.random.default_rng(1)
    # a map that stacks each group of copies at one spot (as t-SNE does) and scatters the rest
    layout = np.vstack([np.repeat(rng.normal(size=(8, 2)) * 50, 200, axis=0) + rng.normal(size=(1600, 2)) * 0.01,
                        rng.normal(size=(400, 2)) * 50])
    quality = neighbour_quality(vectors, layout, k=10, sample=5000)
    expected = _tie_aware_recall(vectors, layout, 10)
    assert abs(quality.recall - expected) < 1e-9
    assert quality.recall > 0.8  # every copy's map neighbours are its copies: 1,600 of the 2,000 rows are right
    copies_only = neighbour_quality(vectors[:1600], layout[:1600], k=10)
    assert copies_only.recall == 1.0 and copies_only.trustworthiness == 1.0
    assert duplicate_rows(vectors) == 1600 and duplicate_rows(vectors[1600:]) == 0


def test_graph_recall_counts_tied_neighbours_and_still_catches_wrong_ones():
    data = np.repeat(np.random.default_rng(2).normal(size=(3, 4)), 50, axis=0).astype(np.float32)
    group = np.arange(150) // 50
    # each row's graph holds its 10 highest-numbered copies: all at distance 0, as right as any 10 copies
    tied = np.stack([np.setdiff1d(np.flatnonzero(group == group[row]), [row])[-10:] for row in range(150)])
    assert graph_recall(data, tied.astype(np.int32)) == 1.0
    # copies of another vector are wrong, whatever distances a graph might claim for them
    wrong = np.stack([np.flatnonzero(group == (group[row] + 1) % 3)[:10] for row in range(150)])
    assert graph_recall(data, wrong.astype(np.int32)) == 0.0
    half = np.concatenate([tied[:, :5], wrong[:, :5]], axis=1).astype(np.int32)
    assert graph_recall(data, half) == 0.5
    repeated = np.repeat(tied[:, :1], 10, axis=1).astype(np.int32)  # one right neighbour, ten times
    assert graph_recall(data, repeated) == 0.1


def _cooccurrence_group(counts: np.ndarray):
    """A ``cooccurrence`` group as the pipeline stores it: CSR off the diagonal, item counts on it."""
    import scipy.sparse as sp
    import zarr

    from tsne_dist.arrays import write_array, write_csr

    group = zarr.create_group(store=zarr.storage.MemoryStore())
    off_diagonal = counts.astype(np.float32).copy()
    np.fill_diagonal(off_diagonal, 0)
    write_csr(group, sp.csr_matrix(off_diagonal))
    write_array(group, "diagonal", np.diag(counts).astype(np.float32))
    return group


def _tie_aware_graph_recall(counts: np.ndarray, layout: np.ndarray, k: int) -> float:
    """The definition, computed densely: a map neighbour is a hit when it co-occurs with the query
    at least as often as the query's k-th most co-occurring item (cosine of counts)."""
    diagonal = np.diag(counts).astype(np.float64)
    hits = possible = 0
    for query in range(len(counts)):
        sims = counts[query] / np.sqrt(diagonal[query] * diagonal)
        sims[query] = 0.0
        low = ((layout - layout[query]) ** 2).sum(axis=1)
        low[query] = np.inf
        positive = np.sort(sims[sims > 0])[::-1]
        if len(positive) == 0:
            continue
        kth = positive[min(k, len(positive)) - 1]
        map_neighbours = np.argsort(low, kind="stable")[:k]
        hits += int(((sims[map_neighbours] >= kth * (1 - 1e-9)) & (sims[map_neighbours] > 0)).sum())
        possible += min(k, len(positive))
    return hits / possible


def test_graph_quality_counts_tied_co_occurrence_as_hits():
    from tsne_dist.cooccurrence.quality import graph_quality

    # item 0 co-occurs 3 times with each of items 1..20 (a 20-way tie) and 5 times with 21..25;
    # items 11..20 sit next to it on the map, 1..10 and 21..25 further out
    n_items = 26
    counts = np.zeros((n_items, n_items))
    counts[0, 1:21] = counts[1:21, 0] = 3
    counts[0, 21:] = counts[21:, 0] = 5
    np.fill_diagonal(counts, 6)
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    ring = lambda radius, turn: np.c_[np.cos(angles + turn), np.sin(angles + turn)] * radius  # noqa: E731
    layout = np.vstack([[0.0, 0.0], ring(3.0, np.pi / 10), ring(1.0, 0.0),
                        np.c_[np.linspace(20, 24, 5), np.full(5, 20.0)]])
    figures = graph_quality(_cooccurrence_group(counts), layout, kind="cosine", n_collections=50, k=10)
    expected = _tie_aware_graph_recall(counts, layout, 10)
    assert abs(figures["knn_recall@10"] - expected) < 1e-12
    # item 0's 10 map neighbours (11..20) all tie with its 6th-10th most similar items: 10 hits of 10
    # (picking "the" top 10 by index, 21..25 and 1..5, gave 0); items 1..25 co-occur only with item 0
    n_far = sum(0 not in np.argsort(((layout - layout[i]) ** 2).sum(axis=1))[1:11] for i in range(1, n_items))
    assert figures["knn_recall@10"] == pytest.approx((10 + 25 - n_far) / (10 + 25), abs=1e-12)

    rng = np.random.default_rng(5)  # small integer counts: ties everywhere
    upper = np.triu(rng.poisson(0.6, size=(120, 120)), 1)
    counts = upper + upper.T
    np.fill_diagonal(counts, counts.sum(axis=1) + 1)
    layout = rng.normal(size=(120, 2))
    figures = graph_quality(_cooccurrence_group(counts), layout, kind="cosine", n_collections=500, k=10)
    assert abs(figures["knn_recall@10"] - _tie_aware_graph_recall(counts, layout, 10)) < 1e-12


def test_a_run_on_mostly_duplicate_rows_warns_with_counts(tmp_path, capsys):
    np.save(tmp_path / "v.npy", _copies_catalog())
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", str(tmp_path / "v.npy"), "--out", out, *FAST)
    assert code == 0, err
    metrics = read_metrics(out)
    assert metrics["duplicate_rows"] == 1600
    warning = "1,600 of 2,000 rows (80%) are exact copies of another row"
    assert any(warning in text for text in metrics["warnings"]) and warning in err


def test_zero_rows_under_cosine_are_refused_with_their_count(tmp_path, capsys):
    vectors = (np.random.default_rng(3).random((600, 20)) < 0.1).astype(np.float32)
    vectors[:45] = 0
    vectors[45:, 0] = 1  # every other row has a non-zero entry
    np.save(tmp_path / "v.npy", vectors)
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, "run", "--vectors", str(tmp_path / "v.npy"), "--metric", "cosine",
                           "--out", str(out), *FAST)
    assert code == 2
    assert "45 of 600 rows" in err and "all zeros" in err and "cosine distance is undefined" in err
    assert "set --metric to euclidean" in err and len(_error_lines(err)) == 1
    assert not (out / "run.zarr").exists() or not any((out / "run.zarr").iterdir())
    with pytest.raises(InputError, match="`metric` to euclidean"):
        tsne_dist.TSNE(metric="cosine").fit(vectors)


def _write_catalog(tmp_path, ids, metadata_ids, metadata_format="csv") -> dict[str, str]:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(len(ids), 5)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    order = rng.permutation(len(ids))
    metadata = pd.DataFrame({"id": np.asarray(metadata_ids, dtype=object)[order] if metadata_format == "csv"
                             else np.asarray(metadata_ids)[order],
                             "position": order})
    path = tmp_path / f"m.{metadata_format}"
    metadata.to_csv(path, index=False) if metadata_format == "csv" else metadata.to_parquet(path, index=False)
    return {"vectors": str(tmp_path / "v.npy"), "metadata": str(path)}


def test_text_ids_with_leading_zeros_stay_text(tmp_path, capsys):
    ids = [f"{i:06d}" for i in range(100)]
    files = _write_catalog(tmp_path, ids, ids)
    pd.DataFrame({"id": ids}).to_csv(tmp_path / "ids.csv", index=False)
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", files["vectors"], "--ids", str(tmp_path / "ids.csv"),
                           "--metadata", files["metadata"], "--out", out, "--perplexity", "5", *FAST[:4])
    assert code == 0, err
    table = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert table["id"].tolist() == ids  # "000123" is not 123
    expected = pd.read_csv(files["metadata"], dtype={"id": str}).set_index("id")["position"]
    assert table["position"].tolist() == expected.loc[ids].tolist()


def test_interaction_item_ids_with_leading_zeros_stay_text(tmp_path, capsys):
    rng = np.random.default_rng(6)
    ids = [f"{i:06d}" for i in range(60)]
    log = pd.DataFrame({"basket": rng.integers(0, 200, 3000), "item": rng.choice(ids, 3000)})
    log.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"item": ids, "rank": np.arange(60)}).to_csv(tmp_path / "items.csv", index=False)
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--interactions", str(tmp_path / "log.csv"), "--collection-col", "basket",
                           "--item-col", "item", "--metadata", str(tmp_path / "items.csv"), "--id-col", "item",
                           "--out", out, "--perplexity", "5", *FAST[:4])
    assert code == 0, err
    table = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert sorted(table["id"]) == ids  # "000007" is not 7
    assert (table["rank"] == table["id"].astype(int)).all()  # every item found its own metadata row
    assert "no row" not in err
    assert "local cluster in this process" in err  # a one-partition log starts no worker processes
    # plain integer ids, written with a space after each comma, stay integers
    lines = ["basket, item"] + [f"{b}, {int(i)}" for b, i in zip(log["basket"], log["item"])]
    (tmp_path / "spaced.csv").write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "spaced")
    code, _, err = run_cli(capsys, "run", "--interactions", str(tmp_path / "spaced.csv"), "--collection-col",
                           "basket", "--item-col", "item", "--metadata", str(tmp_path / "items.csv"), "--id-col",
                           "item", "--out", out, "--perplexity", "5", *FAST[:4])
    assert code == 0, err
    table = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert table["id"].dtype == np.int64 and sorted(table["id"]) == list(range(60))
    assert (table["rank"] == table["id"]).all()  # "000007" in the metadata is the integer 7


@pytest.mark.parametrize("base, dtype", [(2**53, np.int64), (2**63 + 5, np.uint64)])
def test_large_integer_ids_join_exactly(tmp_path, capsys, base, dtype):
    ids = np.array([base + step for step in range(100)], dtype=dtype)  # differ only in the low bits
    np.save(tmp_path / "ids.npy", ids)
    files = _write_catalog(tmp_path, ids, ids, metadata_format="parquet")
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", files["vectors"], "--ids", str(tmp_path / "ids.npy"),
                           "--metadata", files["metadata"], "--out", out, "--perplexity", "5", *FAST[:4])
    assert code == 0, err
    table = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert table["id"].dtype == dtype and table["id"].tolist() == ids.tolist()
    metadata = pd.read_parquet(files["metadata"]).set_index("id")["position"]
    assert table["position"].tolist() == [metadata.loc[value] for value in ids.tolist()]


def test_integer_ids_against_text_metadata_ids_name_both_types(tmp_path, capsys):
    files = _write_catalog(tmp_path, np.arange(100), [f"item-{i}" for i in range(100)])
    code, _, err = run_cli(capsys, "run", "--vectors", files["vectors"], "--metadata", files["metadata"],
                           "--out", str(tmp_path / "o"), "--perplexity", "5", *FAST[:4])
    assert code == 2 and len(_error_lines(err)) == 1
    assert "the item ids are integer (int64)" in err and "holds text" in err


def test_a_perplexity_the_neighbours_cannot_hold_is_recorded_as_what_ran(tmp_path, capsys, catalog_files):
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--perplexity", "30",
                           "--n-neighbors", "20", "--out", out, *FAST[:4])
    assert code == 0, err
    metrics = read_metrics(out)
    assert metrics["perplexity"] == 20.0
    assert metrics["resolved"]["perplexity"] == {"requested": 30.0, "value": 20.0, "reason": metrics["warnings"][0]}
    assert "calibrated to perplexity 20, not 30" in metrics["warnings"][0] and "at least 90" in err
    code, text, _ = run_cli(capsys, "info", out)
    assert "perplexity      30.0 -> 20.0" in text


def test_labels_that_are_not_labels_get_an_accurate_warning(tmp_path, capsys, catalog_files, catalog):
    _, metadata = catalog
    metadata = metadata.assign(price=np.random.default_rng(5).random(len(metadata)),
                               title=[f"title {i}" for i in range(len(metadata))])
    metadata.to_parquet(catalog_files["metadata"], index=False)
    assert "looks continuous (600 distinct numbers)" in label_problem(metadata["price"], "price")
    assert "600 distinct values for 600 items (100% are alone" in label_problem(metadata["title"], "title")
    assert label_problem(metadata["category"], "category") is None
    assert "needs at least two labels" in label_problem(pd.Series(["a"] * 10), "one")
    for column, phrase in (("price", "looks continuous"), ("title", "alone in their group")):
        out = str(tmp_path / column)
        code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                               "--metadata", catalog_files["metadata"], "--label", column, "--out", out, *FAST)
        assert code == 0, err
        metrics = read_metrics(out)
        assert "silhouette_2d" not in metrics and any(phrase in text for text in metrics["warnings"])


def test_outputs_follow_the_umask(tmp_path, catalog_files, capsys):
    out = tmp_path / "o"
    previous = os.umask(0o027)  # this test process runs one test at a time
    try:
        code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", str(out),
                               "--n-iter", "60", "--early-exaggeration-iter", "20", "--perplexity", "10")
    finally:
        os.umask(previous)
    assert code == 0, err
    for name in ("layout.parquet", "map.png", "metrics.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o640, name  # 0o666 & ~0o027, not a temp file's 0o600
    from tsne_dist.viz.export import bundle_available

    if bundle_available():
        assert stat.S_IMODE((out / "viewer").stat().st_mode) == 0o750
        assert stat.S_IMODE((out / "viewer" / "data" / "manifest.json").stat().st_mode) == 0o640


def test_numba_caches_outside_the_installed_package(tmp_path):
    package = os.path.dirname(tsne_dist.__file__)
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    # one small kernel of ours (serial, quick to compile) stands for all of them
    script = ("import numpy as np, numba, tsne_dist; from tsne_dist.neighbors.refine import _keep_best; "
              "_keep_best(0, np.array([1], np.int32), np.ones(1, np.float32), np.zeros(1, np.int32), "
              "np.zeros(1, np.float32)); print(numba.config.CACHE_DIR)")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    folder = done.stdout.strip()
    assert folder == str(tmp_path / "cache" / "tsne_dist" / "numba")
    cached = [name for _, _, names in os.walk(folder) for name in names]
    assert any(name.startswith("refine._keep_best") and name.endswith(".nbi") for name in cached)
    assert not os.path.commonpath([folder, package]) == package


def test_one_parquet_file_for_vectors_and_metadata(tmp_path, capsys):
    rng = np.random.default_rng(6)
    table = pd.DataFrame({"id": np.arange(300), "popularity": rng.integers(0, 100, 300),
                          "genre": rng.choice(["a", "b", "c"], 300)})
    table["emb"] = list(rng.normal(size=(300, 8)).astype(np.float32))
    for i in range(4):
        table[f"dim_{i}"] = rng.normal(size=300)
    path = str(tmp_path / "items.parquet")
    table.to_parquet(path, index=False)
    base = ["run", "--vectors", path, "--metadata", path, "--color-by", "genre", "--perplexity", "5", *FAST[:4]]
    code, _, err = run_cli(capsys, *base, "--out", str(tmp_path / "none"))
    assert code == 2 and "both the vectors and the metadata" in err and "--vector-cols" in err
    out = str(tmp_path / "list")
    code, _, err = run_cli(capsys, *base, "--vector-col", "emb", "--out", out)
    assert code == 0, err
    layout = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert "emb" not in layout.columns and {"popularity", "genre", "dim_0"} <= set(layout.columns)
    out = str(tmp_path / "pattern")
    code, _, err = run_cli(capsys, *base, "--vector-cols", "dim_*", "--out", out)
    assert code == 0, err
    layout = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert not any(name.startswith("dim_") for name in layout.columns) and "popularity" in layout.columns
    assert read_metrics(out)["n_dims"] == 4


def test_the_log_names_final_files_and_what_a_changed_setting_replaces(tmp_path, capsys, catalog_files):
    out = str(tmp_path / "o")
    args = ["run", "--vectors", catalog_files["vectors"], "--out", out, *FAST]
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and f"wrote {os.path.join(out, 'map.png')}" in err
    assert ".tmp" not in err
    code, _, err = run_cli(capsys, *args, "--n-iter", "150")
    assert "stage layout: settings changed (n_iter 120 -> 150); replacing its earlier result" in err


def test_config_file_paths_resolve_against_the_file_and_verbose_logs(tmp_path, catalog_files, capsys,
                                                                     monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    os.link(catalog_files["vectors"], folder / "v.npy")
    (folder / "run.yaml").write_text("vectors: v.npy\nout: maps/a\nn_iter: 60\nearly_exaggeration_iter: 20\n"
                                     "perplexity: 10\n")
    monkeypatch.chdir(tmp_path)
    library_logger = logging.getLogger("tsne_dist")  # as a fresh library user has it (earlier CLI tests set it up)
    monkeypatch.setattr(library_logger, "handlers", [])
    monkeypatch.setattr(library_logger, "propagate", True)
    monkeypatch.setattr(library_logger, "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # pytest's own capture handlers hang on the root
    result = tsne_dist.run(str(folder / "run.yaml"), verbose=True)
    assert result.out == str(folder / "maps" / "a")
    assert "stage layout: done" in capsys.readouterr().err
    tsne_dist.run(str(folder / "run.yaml"))
    assert capsys.readouterr().err == ""  # quiet without verbose, as a library should be


def test_config_file_errors_name_the_files_keys(tmp_path, capsys, catalog_files):
    (tmp_path / "typo.yaml").write_text(f"vectors: {catalog_files['vectors']}\nperplexty: 30\n")
    code, _, err = run_cli(capsys, "run", str(tmp_path / "typo.yaml"), "--out", str(tmp_path / "o"))
    assert code == 2 and _error_lines(err) == ["tsne-dist: error: unknown setting 'perplexty' in typo.yaml; "
                                               "did you mean 'perplexity'?"]
    (tmp_path / "bad.yaml").write_text(f"vectors: {catalog_files['vectors']}\nperplexity: -3\n")
    code, _, err = run_cli(capsys, "run", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o"))
    assert code == 2 and "set perplexity in bad.yaml to a number above 0" in err
    code, _, err = run_cli(capsys, "run", str(tmp_path / "bad.yaml"), "--perplexity", "-2", "--out",
                           str(tmp_path / "o"))
    assert code == 2 and "set --perplexity to a number above 0" in err  # the flag given wins and is named
    code, _, err = run_cli(capsys, "run", catalog_files["vectors"], "--out", str(tmp_path / "o"))  # data, no flag
    assert code == 2 and _error_lines(err) == [
        f"tsne-dist: error: {catalog_files['vectors']} was given as the config file, which must end in .yaml, .yml, "
        ".toml; pass data with --vectors or --interactions, or rename the config file"]
    assert not (tmp_path / "o").exists()


def test_the_viewer_opens_on_the_runs_color_by(tmp_path, capsys, catalog_files):
    from tsne_dist.viz.export import bundle_available

    if not bundle_available():
        pytest.skip("the viewer bundle is not built in this install")
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                           "--metadata", catalog_files["metadata"], "--color-by", "subcategory", "--out", out, *FAST)
    assert code == 0, err
    with open(os.path.join(out, "viewer", "data", "manifest.json")) as handle:
        assert json.load(handle)["color_by"] == "subcategory"


def test_a_failed_run_leaves_no_empty_folder_and_piped_output_stops_quietly(tmp_path, catalog_files):
    out = tmp_path / "new"
    vectors = np.zeros((50, 4), dtype=np.float32)
    np.save(tmp_path / "zeros.npy", vectors)
    done = subprocess.run([sys.executable, "-m", "tsne_dist", "run", "--vectors", str(tmp_path / "zeros.npy"),
                           "--metric", "cosine", "--perplexity", "5", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and "all zeros" in done.stderr
    assert not out.exists()  # the folder the failed run made is gone (a folder that existed before is kept)
    piped = subprocess.run(f"{sys.executable} -m tsne_dist settings | head -1", shell=True, capture_output=True,
                           text=True)
    assert piped.stdout.startswith("| flag |") and "Traceback" not in piped.stderr
