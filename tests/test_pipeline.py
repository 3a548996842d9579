"""The run as users script it: outputs, resume, recompute, determinism, interruption, input formats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

import tsne_dist
from conftest import FAST, done_stages, read_metrics, run_cli


def test_run_writes_the_contracted_outputs(tmp_path, capsys, catalog_files):
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                           "--metadata", catalog_files["metadata"], "--color-by", "category",
                           "--label", "category", "--out", out, *FAST)
    assert code == 0, err
    table = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert list(table.columns) == ["id", "x", "y", "category", "subcategory", "popularity"]
    assert table["id"].tolist() == np.load(catalog_files["ids"]).tolist()
    metadata = pd.read_parquet(catalog_files["metadata"])
    assert table["category"].tolist() == metadata["category"].tolist()
    metrics = read_metrics(out)
    for key in ("n_items", "knn_recall@10", "trustworthiness@10", "kl_divergence", "engine", "knn_backend",
                "timings", "warnings", "silhouette_2d", "silhouette_hd", "peak_memory_mb"):
        assert key in metrics, key
    assert metrics["n_items"] == 600
    assert set(metrics["timings"]) >= {"vectors", "knn", "affinities", "layout", "metrics", "outputs"}
    # planted categories are well separated: the map must keep neighbours and classes
    assert metrics["knn_recall@10"] > 0.3
    assert metrics["trustworthiness@10"] > 0.9
    assert metrics["silhouette_2d"] > 0.3
    with open(os.path.join(out, "map.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "stage layout: done" in err and "peak memory" in err


def test_rerun_skips_finished_stages_and_a_changed_parameter_recomputes_downstream(tmp_path, capsys, catalog_files):
    out = str(tmp_path / "o")
    args = ["run", "--vectors", catalog_files["vectors"], "--out", out, *FAST]
    assert run_cli(capsys, *args)[0] == 0
    first = read_metrics(out)
    assert first["stages_run"] == ["vectors", "knn", "affinities", "layout", "metrics"]

    code, _, err = run_cli(capsys, *args)
    assert code == 0
    again = read_metrics(out)
    assert again["stages_run"] == [] and len(again["stages_skipped"]) == 5
    assert "stage knn: already done with these settings, skipped" in err
    assert again["knn_recall@10"] == first["knn_recall@10"]

    code, _, err = run_cli(capsys, *args, "--n-iter", "150")
    changed = read_metrics(out)
    assert changed["stages_run"] == ["layout", "metrics"]
    assert changed["stages_skipped"] == ["vectors", "knn", "affinities"]

    code, _, err = run_cli(capsys, *args[:-2], "--perplexity", "8", "--n-neighbors", "30")
    assert read_metrics(out)["stages_run"] == ["affinities", "layout", "metrics"]
    code, _, err = run_cli(capsys, *args[:-2], "--perplexity", "12")
    assert read_metrics(out)["stages_run"] == ["knn", "affinities", "layout", "metrics"]


def test_a_rerun_redraws_the_map_and_viewer_only_when_what_they_show_changed(tmp_path, capsys, catalog_files):
    out = tmp_path / "o"
    drawings = (out / "map.png", out / "viewer" / "data" / "manifest.json")

    def run(color_by: str = "category", perplexity: str = "10") -> str:
        code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                               "--metadata", catalog_files["metadata"], "--color-by", color_by, "--knn", "bruteforce",
                               "--out", str(out), *FAST[:-2], "--perplexity", perplexity)
        assert code == 0, err
        return err

    def written_at() -> list[int]:
        return [path.stat().st_mtime_ns for path in drawings]

    def redrawn_since(before: list[int]) -> bool:
        return all(after > earlier for after, earlier in zip(written_at(), before))

    run()
    first = written_at()
    assert "map.png and viewer/ unchanged since the last run" in run()
    assert written_at() == first
    assert "unchanged" not in run(perplexity="12") and redrawn_since(first)  # a new layout
    before = written_at()
    run(color_by="subcategory", perplexity="12")  # another colour
    assert redrawn_since(before)
    before = written_at()
    metadata = pd.read_parquet(catalog_files["metadata"])
    metadata.loc[0, "category"] = "renamed"  # the same stages, other metadata
    metadata.to_parquet(catalog_files["metadata"], index=False)
    run(color_by="subcategory", perplexity="12")
    assert redrawn_since(before)
    (out / "map.png").unlink()  # a deleted drawing is drawn again
    run(color_by="subcategory", perplexity="12")
    assert (out / "map.png").is_file()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tsne_dist", *args]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, capsys, catalog_files):
    stage = "layout"
    args = ["run", "--vectors", catalog_files["vectors"], "--metadata", catalog_files["metadata"],
            "--ids", catalog_files["ids"], "--knn", "bruteforce", "--n-iter", "300",
            "--early-exaggeration-iter", "100", "--perplexity", "10"]
    reference = str(tmp_path / "reference")  # the uninterrupted run, in this process
    assert run_cli(capsys, *args, "--out", reference)[0] == 0

    out = str(tmp_path / "interrupted")
    process = subprocess.Popen(_cli(*args, "--out", out), stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if f"stage {stage}: started" in line:
            time.sleep(0.3)
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert stage not in done_stages(out)
    assert not os.path.exists(os.path.join(out, "metrics.json"))
    code, info, _ = run_cli(capsys, "info", out)
    assert code == 0 and "NOT DONE" in info

    finished = subprocess.run(_cli(*args, "--out", out), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"stage {stage}: started" in finished.stderr
    expected = pd.read_parquet(os.path.join(reference, "layout.parquet"))
    resumed = pd.read_parquet(os.path.join(out, "layout.parquet"))
    pd.testing.assert_frame_equal(expected, resumed, check_exact=True)
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_inputs_from_parquet_zarr_memory_url_and_config_file(tmp_path, capsys, catalog):
    vectors, metadata = catalog
    results = {}
    # one numeric column per dimension, ids in the id column
    wide = pd.DataFrame(vectors, columns=[f"d{i}" for i in range(vectors.shape[1])])
    wide.insert(0, "item", metadata["id"])
    wide.to_parquet(tmp_path / "wide.parquet")
    # one list column
    table = pa.table({"item": metadata["id"], "emb": pa.array(list(vectors.astype(np.float64)))})
    pq.write_table(table, tmp_path / "list.parquet")
    # zarr array
    zarr.save_array(str(tmp_path / "v.zarr"), vectors)
    # fsspec memory:// URL
    import fsspec

    with fsspec.open("memory://catalog/v.npy", "wb") as handle:
        np.save(handle, vectors)
    sources = {
        "wide": ["--vectors", str(tmp_path / "wide.parquet"), "--id-col", "item"],
        "list": ["--vectors", str(tmp_path / "list.parquet"), "--vector-col", "emb", "--id-col", "item"],
        "zarr": ["--vectors", str(tmp_path / "v.zarr")],
        "memory": ["--vectors", "memory://catalog/v.npy"],
    }
    for name, flags in sources.items():
        out = str(tmp_path / name)
        code, _, err = run_cli(capsys, "run", *flags, "--out", out, "--knn", "bruteforce", *FAST)
        assert code == 0, f"{name}: {err}"
        results[name] = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert results["wide"]["id"].tolist() == metadata["id"].tolist()
    assert results["list"]["id"].tolist() == metadata["id"].tolist()
    assert results["zarr"]["id"].tolist() == list(range(len(vectors)))
    for name in ("list", "zarr", "memory"):
        np.testing.assert_array_equal(results[name][["x", "y"]].to_numpy(), results["wide"][["x", "y"]].to_numpy())

    config = tmp_path / "run.yaml"
    config.write_text(f"vectors: {tmp_path / 'wide.parquet'}\nid-col: item\nknn: bruteforce\nperplexity: 10\n"
                      f"n_iter: 120\nearly_exaggeration_iter: 40\nout: {tmp_path / 'from-yaml'}\n")
    assert run_cli(capsys, "run", str(config))[0] == 0
    from_yaml = pd.read_parquet(tmp_path / "from-yaml" / "layout.parquet")
    np.testing.assert_array_equal(from_yaml[["x", "y"]].to_numpy(), results["wide"][["x", "y"]].to_numpy())


def test_python_api_and_info(tmp_path, capsys, catalog_files):
    result = tsne_dist.run({"vectors": catalog_files["vectors"], "out": str(tmp_path / "o"), "perplexity": 10,
                            "n_iter": 120, "early_exaggeration_iter": 40})
    assert result.layout.shape == (600, 3)
    info = tsne_dist.open_run(str(tmp_path / "o"))
    assert set(info.stages) >= {"vectors", "knn", "affinities", "layout", "metrics"}
    assert info.layout().shape == (600, 2)
    code, out, _ = run_cli(capsys, "info", str(tmp_path / "o"))
    assert code == 0
    assert "knn_recall@10" in out and "layout" in out and "done in" in out
    code, _, err = run_cli(capsys, "info", str(tmp_path / "missing"))
    assert code == 2 and "holds no tsne_dist run" in err


def test_quiet_prints_no_progress(tmp_path, capsys, catalog_files):
    code, out, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", str(tmp_path / "o"),
                             "--quiet", *FAST)
    assert code == 0 and "stage" not in err  # no logs
    assert out.startswith("map: ") and "recall@10" in out and out.count("\n") == 1  # only the result's line


def test_estimator_is_deterministic(catalog):
    vectors = catalog[0]
    first = tsne_dist.TSNE(perplexity=10, n_iter=120, early_exaggeration_iter=40, random_state=7).fit_transform(vectors)
    second = tsne_dist.TSNE(perplexity=10, n_iter=120, early_exaggeration_iter=40, random_state=7).fit_transform(vectors)
    assert first.shape == (600, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_in_memory_arrays_through_the_python_api(tmp_path, catalog):
    vectors, metadata = catalog
    settings = {"out": str(tmp_path / "o"), "perplexity": 10, "n_iter": 120, "early_exaggeration_iter": 40,
                "color_by": "category"}
    result = tsne_dist.run({**settings, "vectors": vectors, "ids": metadata["id"].to_numpy(),
                            "metadata": metadata})
    assert result.layout["id"].tolist() == metadata["id"].tolist()
    assert result.layout["category"].tolist() == metadata["category"].tolist()
    again = tsne_dist.run({**settings, "vectors": vectors.copy(), "ids": metadata["id"].to_numpy(),
                           "metadata": metadata})
    assert again.stages_run == []
    changed = vectors.copy()
    changed[0, 0] += 1.0
    third = tsne_dist.run({**settings, "vectors": changed, "ids": metadata["id"].to_numpy(), "metadata": metadata})
    assert third.stages_run[0] == "vectors"
    with pytest.raises(tsne_dist.InputError, match="in-memory array"):
        tsne_dist.run({**settings, "vectors": np.full((100, 3), np.nan), "out": str(tmp_path / "bad")})


def test_metadata_ids_in_another_dtype_and_mixed_columns(tmp_path, capsys, catalog):
    vectors, metadata = catalog
    np.save(tmp_path / "v.npy", vectors)
    np.save(tmp_path / "ids.npy", np.arange(len(vectors)) + 1000)
    table = pd.DataFrame({"id": (np.arange(len(vectors)) + 1000).astype(float),
                          "category": metadata["category"],
                          "code": [1 if i % 2 else "x" for i in range(len(vectors))]})
    extra = pd.DataFrame({"id": [np.nan, 5.0, 5.0], "category": ["a", "b", "c"], "code": [0, 0, 0]})
    pd.concat([table, extra]).to_csv(tmp_path / "m.csv", index=False)
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", str(tmp_path / "v.npy"), "--ids", str(tmp_path / "ids.npy"),
                           "--metadata", str(tmp_path / "m.csv"), "--color-by", "category", "--out", out, *FAST)
    assert code == 0, err
    layout = pd.read_parquet(os.path.join(out, "layout.parquet"))
    assert layout["id"].tolist() == list(range(1000, 1000 + len(vectors)))
    assert layout["category"].tolist() == metadata["category"].tolist()
    assert layout["code"].iloc[:2].tolist() == ["x", "1"]


def test_ids_as_a_list_through_the_python_api(tmp_path, catalog):
    vectors, metadata = catalog
    result = tsne_dist.run({"vectors": vectors, "ids": metadata["id"].tolist(), "out": str(tmp_path / "o"),
                            "perplexity": 10, "n_iter": 60, "early_exaggeration_iter": 20})
    assert result.layout["id"].tolist() == metadata["id"].tolist()
