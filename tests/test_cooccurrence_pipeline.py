"""`tsne-dist run --interactions`: a map from an interaction log, the stored matrix read back
with anndata, resuming, the similarity top-k, and one-line errors for bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from conftest import FAST, done_stages, read_metrics, run_cli
from test_cooccurrence import random_interactions, reference_matrix
from tsne_dist.cooccurrence.similarity import similarity, top_k_neighbours
from tsne_dist.arrays import write_csr

INTERACTION_STAGES = ["affinities", "cooccurrence", "items", "knn", "layout", "metrics"]


def read_stored(out: str) -> sp.csr_matrix:
    """The co-occurrence group as anndata reads it."""
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    return sp.csr_matrix(read_elem(zarr.open_group(os.path.join(out, "run.zarr"), mode="r")["cooccurrence"]))


@pytest.fixture()
def log_files(tmp_path) -> dict[str, str]:
    """random_interactions as a 3-file CSV log, plus item metadata with a category."""
    df = random_interactions()
    folder = tmp_path / "log"
    folder.mkdir()
    shuffled = df.sample(frac=1.0, random_state=0)
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 3)):
        shuffled.iloc[rows].to_csv(folder / f"part-{i}.csv", index=False)
    items = pd.DataFrame({"item": np.sort(df["item"].unique())})
    items["category"] = np.where(items["item"] % 2 == 0, "even", "odd")
    items.to_parquet(tmp_path / "items.parquet", index=False)
    return {"glob": str(folder / "part-*.csv"), "metadata": str(tmp_path / "items.parquet"), "df": df}


def interaction_flags(files: dict, out: str, *extra: str) -> list[str]:
    return ["run", "--interactions", files["glob"], "--collection-col", "user", "--item-col", "item",
            "--min-count", "2", "--max-collection-size", "12", "--metadata", files["metadata"], "--id-col", "item",
            "--color-by", "category", "--label", "category", "--out", out, *FAST, *extra]


@pytest.mark.slow
def test_interactions_make_a_map_that_anndata_reads_and_a_rerun_skips(tmp_path, capsys, log_files):
    out = str(tmp_path / "out")
    code, _, err = run_cli(capsys, *interaction_flags(log_files, out))
    assert code == 0, err
    assert done_stages(out) == INTERACTION_STAGES
    assert "reading the log the items stage spilled" in err  # one shuffle of the log, not three
    assert f"local cluster with {os.cpu_count()} worker processes" in err  # three files: three partitions
    assert not os.path.exists(os.path.join(out, ".cooccurrence-log"))  # scratch files are removed
    assert not os.path.exists(os.path.join(out, ".cooccurrence-parts"))
    ids, reference = reference_matrix(log_files["df"], min_count=2, max_items=None, max_size=12)
    stored = read_stored(out)
    assert (stored != reference).nnz == 0 and stored.shape == reference.shape
    root = zarr.open_group(os.path.join(out, "run.zarr"), mode="r")
    np.testing.assert_array_equal(root["items"]["ids"][:], ids)
    knn = root["knn"]
    indices, distances = knn["indices"][:], knn["distances"][:]
    assert indices.shape == (len(ids), 30) and indices.dtype == np.int32 and distances.dtype == np.float32
    assert not (indices == np.arange(len(ids))[:, None]).any()
    assert (np.diff(distances, axis=1) >= 0).all()
    layout = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert list(layout.columns[:3]) == ["id", "x", "y"] and "category" in layout.columns
    np.testing.assert_array_equal(layout["id"].to_numpy(), ids)
    metrics = read_metrics(out)
    for key in ("n_items", "knn_recall@10", "trustworthiness@10", "kl_divergence", "engine", "knn_backend",
                "timings", "warnings", "silhouette_2d", "silhouette_hd"):
        assert key in metrics, key
    assert metrics["knn_backend"] == "cooccurrence-cosine"
    assert 0.0 < metrics["knn_recall@10"] <= 1.0 and 0.5 < metrics["trustworthiness@10"] <= 1.0
    assert metrics["timings"]["cooccurrence"] > 0 and "items" in metrics["timings"]
    code, _, err = run_cli(capsys, *interaction_flags(log_files, out))
    assert code == 0 and read_metrics(out)["stages_run"] == []
    code, _, err = run_cli(capsys, *interaction_flags(log_files, out, "--similarity", "ppmi"))
    assert code == 0 and read_metrics(out)["stages_run"] == ["knn", "affinities", "layout", "metrics"]


def test_a_list_column_gives_the_same_matrix_as_rows(tmp_path, capsys, dask_scheduler):
    df = random_interactions(seed=3, n_rows=1500)
    merged = df.drop_duplicates(["user", "item"])
    baskets = merged.groupby("user")["item"].apply(list).reset_index()
    baskets.to_parquet(tmp_path / "baskets.parquet", index=False)
    out = str(tmp_path / "out")
    code, _, err = run_cli(capsys, "run", "--interactions", str(tmp_path / "baskets.parquet"), "--collection-col",
                           "user", "--list-col", "item", "--min-count", "2", "--max-collection-size", "12",
                           "--out", out, "--cluster", dask_scheduler, *FAST)
    assert code == 0, err
    _, reference = reference_matrix(df, min_count=2, max_items=None, max_size=12)
    stored = read_stored(out)
    assert stored.shape == reference.shape and (stored != reference).nnz == 0


def test_embed_dim_maps_ppmi_svd_vectors_through_the_vector_path(tmp_path, capsys, log_files, dask_scheduler):
    out = str(tmp_path / "out")
    code, _, err = run_cli(capsys, *interaction_flags(log_files, out, "--embed-dim", "8", "--cluster", dask_scheduler))
    assert code == 0, err
    root = zarr.open_group(os.path.join(out, "run.zarr"), mode="r")
    vectors = root["vectors"]["vectors"][:]
    assert vectors.shape == (root["items"]["ids"].shape[0], 8) and np.isfinite(vectors).all()
    assert vectors.std(axis=0).min() > 0
    metrics = read_metrics(out)
    assert metrics["n_dims"] == 8 and metrics["knn_backend"] in ("bruteforce", "pynndescent")
    assert "vectors" in done_stages(out) and metrics["collapse"]["effective_rank"] > 2


def test_similarities_and_top_k_with_padding(tmp_path):
    # 5 items; item 4 co-occurs with nobody; item 3 only with item 2
    counts = np.array([[4, 3, 1, 0, 0], [3, 5, 2, 0, 0], [1, 2, 6, 2, 0], [0, 0, 2, 2, 0], [0, 0, 0, 0, 1]], float)
    group = zarr.open_group(str(tmp_path / "m.zarr"), mode="w", zarr_format=3).create_group("cooc")
    write_csr(group, sp.csr_matrix(counts))
    group.create_array("diagonal", data=np.diag(counts).astype(np.float32))
    n_i, n_j, c = np.array([4.0]), np.array([5.0]), np.array([3.0])
    assert similarity(c, n_i, n_j, "jaccard", 10)[0] == pytest.approx(3 / 6)
    assert similarity(c, n_i, n_j, "cosine", 10)[0] == pytest.approx(3 / np.sqrt(20))
    assert similarity(c, n_i, n_j, "lift", 10)[0] == pytest.approx(3 * 10 / 20)
    assert similarity(c, n_i, n_j, "ppmi", 10, ppmi_shift=0.1)[0] == pytest.approx(np.log(1.5) - 0.1)
    assert similarity(np.array([1.0]), n_i, n_j, "ppmi", 10)[0] == 0.0  # negative PMI clips to 0
    top = top_k_neighbours(group, 3, "cosine", 10)
    assert top.indices.shape == (5, 3) and top.n_padded == 4 and top.n_isolated == 1
    np.testing.assert_array_equal(top.n_real, [2, 2, 3, 1, 0])
    assert list(top.indices[0, :2]) == [1, 2]  # cos(0,1)=0.67 > cos(0,2)=0.20
    assert top.distances[0, 0] == 0.0 and top.distances[0, 1] > 0
    assert top.indices[3, 0] == 2 and set(top.indices[3, 1:]) == {0, 1}  # neighbours of neighbour 2
    assert set(top.indices[4]) == {2, 1, 0}  # isolated: the most frequent items
    for row in range(5):
        assert row not in top.indices[row] and len(set(top.indices[row])) == 3
        assert (np.diff(top.distances[row]) >= 0).all()
    assert top.distances[3, 1] >= 1.0 and top.distances[4, 0] == pytest.approx(3.0)
    inv = top_k_neighbours(group, 2, "inv_log", 10)
    assert inv.distances[2, 0] == pytest.approx(1 / np.log(3.0))  # item 2: counts 2, 2, 1


def _assert_user_error(capsys, argv, *needles, out=None):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("tsne-dist: error")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    if out is not None:
        assert done_stages(out) == []
    return lines[0]


def _write(tmp_path, df, name="log.csv") -> str:
    path = str(tmp_path / name)
    df.to_csv(path, index=False) if name.endswith(".csv") else df.to_parquet(path, index=False)
    return path


def test_bad_interactions_are_one_line_errors_and_nothing_is_marked(tmp_path, capsys, dask_scheduler):
    df = random_interactions(n_rows=600)
    out = str(tmp_path / "out")
    base = ["run", "--collection-col", "user", "--item-col", "item", "--min-count", "2", "--out", out,
            "--cluster", dask_scheduler, *FAST]
    path = _write(tmp_path, df)
    _assert_user_error(capsys, [*base, "--interactions", path, "--weight-col", "stars"],
                       "no column 'stars'", "columns: user, item, rating, ts")
    bad = df.assign(rating=df["rating"].where(df.index != 5, -1.0))
    _assert_user_error(capsys, [*base, "--interactions", _write(tmp_path, bad, "neg.csv"), "--weight-col", "rating"],
                       "1 weights in column 'rating'", "negative, NaN", out=out)
    bad = df.assign(rating=df["rating"].where(df.index != 7, np.nan))
    _assert_user_error(capsys, [*base, "--interactions", _write(tmp_path, bad, "nan.parquet"), "--weight-col",
                                "rating"], "1 weights", out=out)
    bad = df.assign(ts=df["ts"].astype(str).where(df.index != 9, "not a date"))
    _assert_user_error(capsys, [*base, "--interactions", _write(tmp_path, bad, "ts.parquet"), "--time-col", "ts"],
                       "1 timestamps in column 'ts'", "'not a date'", out=out)
    _assert_user_error(capsys, [*base, "--interactions", path, "--min-count", "100000"],
                       "nothing left after filtering", "600 rows", "0 in at least 100000 collections", out=out)
    singles = pd.DataFrame({"user": np.arange(50), "item": np.arange(50) % 5})
    _assert_user_error(capsys, [*base, "--interactions", _write(tmp_path, singles, "singles.csv")],
                       "0 collections with at least 2 kept items", out=out)
    nulls = pd.DataFrame({"user": [None] * 4, "item": [1, 2, 3, 4]})
    _assert_user_error(capsys, [*base, "--interactions", _write(tmp_path, nulls, "nulls.parquet")],
                       "every row", "lacks a collection or item id", out=out)
    _assert_user_error(capsys, [*base, "--interactions", path, "--vectors", path], "only one of")
    _assert_user_error(capsys, [*base, "--interactions", path, "--tau", "10"], "tau needs a timestamp column")
    _assert_user_error(capsys, [*base, "--interactions", path, "--similarity", "euclid"], "similarity must be one of")
    _assert_user_error(capsys, [*base, "--interactions", str(tmp_path / "missing.csv")], "does not exist")


def test_missing_ids_are_dropped_and_counted(tmp_path, capsys, dask_scheduler):
    df = random_interactions(n_rows=1500).astype({"user": object})
    df.loc[[3, 4, 5], "user"] = None
    df["item"] = df["item"].astype("Int64")
    df.loc[[10], "item"] = pd.NA
    out = str(tmp_path / "out")
    code, _, err = run_cli(capsys, "run", "--interactions", _write(tmp_path, df, "log.parquet"), "--collection-col",
                           "user", "--item-col", "item", "--min-count", "2", "--out", out, "--cluster",
                           dask_scheduler, *FAST)
    assert code == 0, err
    assert "dropped 4 of 1500 rows with a missing id (3 collection, 1 item)" in err
    filters = json.loads(json.dumps(zarr.open_group(os.path.join(out, "run.zarr"), mode="r")["items"].attrs["filters"]))
    assert filters["rows"] == 1500 and filters["rows_dropped_missing_id"] == 4


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_a_real_scheduler_and_two_workers_store_the_exact_matrix(tmp_path, capsys, dask_scheduler, partitions):
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1, driven by the CLI."""
    df = random_interactions(seed=4)
    folder = tmp_path / "log"
    folder.mkdir()
    shuffled = df.sample(frac=1.0, random_state=partitions)
    for i, rows in enumerate(np.array_split(np.arange(len(df)), partitions)):
        shuffled.iloc[rows].to_csv(folder / f"part-{i}.csv", index=False)
    out = str(tmp_path / "out")
    code, _, err = run_cli(capsys, "run", "--interactions", str(folder / "part-*.csv"), "--collection-col", "user",
                           "--item-col", "item", "--weight-col", "rating", "--min-count", "2",
                           "--max-collection-size", "12", "--cluster", dask_scheduler, "--out", out, *FAST)
    assert code == 0, err
    assert f"scheduler {dask_scheduler}" in err and "dashboard" in err
    _, reference = reference_matrix(df, min_count=2, max_items=None, max_size=12, weighted=True)
    stored = read_stored(out)
    assert stored.shape == reference.shape and (stored != reference).nnz == 0
    assert done_stages(out) == INTERACTION_STAGES


def test_the_python_api_takes_an_in_memory_table(tmp_path, dask_scheduler):
    import tsne_dist

    df = random_interactions(seed=5, n_rows=1500)
    settings = {"interactions": df, "collection_col": "user", "item_col": "item", "min_count": 2,
                "similarity": "jaccard", "perplexity": 5, "n_iter": 100, "early_exaggeration_iter": 30,
                "cluster": dask_scheduler, "out": str(tmp_path / "api")}
    result = tsne_dist.run(settings)
    ids, reference = reference_matrix(df, min_count=2, max_items=None, max_size=500)
    np.testing.assert_array_equal(result.layout["id"].to_numpy(), ids)
    assert (read_stored(result.out) != reference).nnz == 0
    assert result.metrics["knn_backend"] == "cooccurrence-jaccard"
    again = tsne_dist.run(settings)
    assert again.stages_run == []  # the in-memory table's content hash matches
