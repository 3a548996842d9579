"""Every user error: one line naming the problem and the fix, exit code 2, nothing marked done."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import FAST, done_stages, run_cli


def assert_user_error(capsys, argv: list[str], *fragments: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("tsne-dist: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    out = argv[argv.index("--out") + 1] if "--out" in argv else None
    if out:
        assert done_stages(out) == []
        assert not os.path.exists(os.path.join(out, "metrics.json"))
    return lines[0]


def test_nan_and_inf_rows_are_counted(tmp_path, capsys, catalog):
    vectors = catalog[0].copy()
    vectors[3, 2] = np.nan
    vectors[7, 0] = np.inf
    vectors[7, 1] = np.nan
    np.save(tmp_path / "v.npy", vectors)
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o"), *FAST],
                      "2 of 600 rows", "NaN or inf", "fix or drop")


def test_too_few_items_suggests_a_perplexity(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(40, 5)))
    line = assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o")],
                             "40 items are too few for perplexity 30", "--perplexity 13")
    assert "needs at least 91" in line


def test_duplicate_ids(tmp_path, capsys, catalog_files):
    ids = np.load(catalog_files["ids"])
    ids[5] = ids[4]
    np.save(catalog_files["ids"], ids)
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                               "--out", str(tmp_path / "o"), *FAST], "1 duplicate item ids", "item-4")


def test_ids_that_do_not_match_the_vectors(tmp_path, capsys, catalog_files):
    np.save(catalog_files["ids"], np.load(catalog_files["ids"])[:590])
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                               "--out", str(tmp_path / "o"), *FAST], "590 ids", "600 rows", "10 unmatched")


def test_metadata_that_does_not_match(tmp_path, capsys, catalog_files):
    metadata = pd.read_parquet(catalog_files["metadata"]).iloc[:-25]
    metadata.to_parquet(catalog_files["metadata"], index=False)
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                               "--metadata", catalog_files["metadata"], "--out", str(tmp_path / "o"), *FAST],
                      "25 of 600 items have no row in metadata")


@pytest.mark.parametrize("flag", ["--color-by", "--label"])
def test_missing_column_lists_the_columns(tmp_path, capsys, catalog_files, flag):
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--ids", catalog_files["ids"],
                               "--metadata", catalog_files["metadata"], flag, "genre",
                               "--out", str(tmp_path / "o"), *FAST],
                      "'genre' does not exist", "category, subcategory, popularity")


def test_non_numeric_vectors(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.array([["a", "b"]] * 100))
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o")],
                      "not numeric")
    pd.DataFrame({"id": range(100), "name": ["x"] * 100}).to_parquet(tmp_path / "v.parquet")
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "v.parquet"), "--out", str(tmp_path / "o")],
                      "no numeric columns")


def test_empty_input(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.zeros((0, 8), dtype=np.float32))
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o")],
                      "no items")


def test_zero_dimensions(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.zeros((100, 0), dtype=np.float32))
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o")],
                      "zero dimensions")


def test_output_folder_that_cannot_be_written(tmp_path, capsys, catalog_files):
    blocker = tmp_path / "a-file"
    blocker.write_text("user data")
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--out", str(blocker / "out"), *FAST],
                      "cannot write to output folder", "--out")
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--out", str(blocker), *FAST],
                      "is not a folder")
    assert blocker.read_text() == "user data"


def test_store_from_an_incompatible_config(tmp_path, capsys, catalog_files, catalog):
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", out, *FAST)
    assert code == 0, err
    other = tmp_path / "other.npy"
    np.save(other, catalog[0][::-1].copy())
    code, _, err = run_cli(capsys, "run", "--vectors", str(other), "--out", out, *FAST)
    assert code == 2
    assert "new --out folder" in err and "--overwrite" in err
    code, _, err = run_cli(capsys, "run", "--vectors", str(other), "--out", out, "--overwrite", *FAST)
    assert code == 0, err


def test_missing_vectors_file_and_bad_settings(tmp_path, capsys):
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "nope.npy"), "--out", str(tmp_path / "o")],
                      "does not exist")
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "nope.npy"), "--engine", "warp",
                               "--out", str(tmp_path / "o")], "engine must be one of")
    assert_user_error(capsys, ["run", "--out", str(tmp_path / "o")], "no input given")


def test_knn_settings_that_cannot_run_fail_before_any_work(tmp_path, capsys, catalog_files):
    import importlib.util

    out = str(tmp_path / "o")
    vectors = ["run", "--vectors", catalog_files["vectors"], "--out", out]
    if importlib.util.find_spec("cuml") is None and importlib.util.find_spec("cuvs") is None:
        assert_user_error(capsys, [*vectors, "--knn", "cuml"], "needs cuML or cuVS")
    assert_user_error(capsys, [*vectors, "--cluster", "http://127.0.0.1:8786"], "tcp://HOST:PORT")
    assert_user_error(capsys, [*vectors, "--knn-shards", "-2"], "knn_shards")
    assert_user_error(capsys, [*vectors, "--metric", "dot"], "inner_product")
    assert done_stages(out) == []


def test_verbose_adds_the_traceback(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.zeros((0, 8), dtype=np.float32))
    code, _, err = run_cli(capsys, "run", "--vectors", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o"), "-v")
    assert code == 2 and "Traceback" in err


def test_identical_and_duplicate_vectors_give_finite_maps(tmp_path, capsys, catalog):
    identical = np.ones((200, 8), dtype=np.float32)
    np.save(tmp_path / "same.npy", identical)
    code, _, err = run_cli(capsys, "run", "--vectors", str(tmp_path / "same.npy"), "--out", str(tmp_path / "a"), *FAST)
    assert code == 0, err
    layout = pd.read_parquet(tmp_path / "a" / "layout.parquet")
    assert np.isfinite(layout[["x", "y"]].to_numpy()).all()
    assert "all vectors are identical" in err

    duplicated = np.concatenate([catalog[0][:300], catalog[0][:300]])
    np.save(tmp_path / "dup.npy", duplicated)
    code, _, err = run_cli(capsys, "run", "--vectors", str(tmp_path / "dup.npy"), "--out", str(tmp_path / "b"), *FAST)
    assert code == 0, err
    layout = pd.read_parquet(tmp_path / "b" / "layout.parquet")
    assert np.isfinite(layout[["x", "y"]].to_numpy()).all()


def test_malformed_files_are_one_line_errors(tmp_path, capsys, catalog_files):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "broken.parquet"), "--out", str(tmp_path / "o")],
                      "cannot read vectors file")
    (tmp_path / "empty.npy").write_bytes(b"")
    assert_user_error(capsys, ["run", "--vectors", str(tmp_path / "empty.npy"), "--out", str(tmp_path / "o")],
                      "cannot read vectors file")
    (tmp_path / "empty.csv").write_text("")
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--metadata", str(tmp_path / "empty.csv"),
                               "--out", str(tmp_path / "o"), *FAST], "cannot read metadata file")


def test_config_file_values_are_type_checked(tmp_path, capsys, catalog_files):
    config = tmp_path / "bad.yaml"
    config.write_text(f"vectors: {catalog_files['vectors']}\nperplexity: abc\nout: {tmp_path / 'o'}\n")
    assert_user_error(capsys, ["run", str(config)], "perplexity must be a number, got 'abc'")
    config.write_text(f"vectors: {catalog_files['vectors']}\nn_iter: 7.5\nout: {tmp_path / 'o'}\n")
    assert_user_error(capsys, ["run", str(config)], "n_iter must be a whole number")
    assert_user_error(capsys, ["run", "--vectors", catalog_files["vectors"], "--seed", "-1",
                               "--out", str(tmp_path / "o")], "seed must be between 0")


def test_overwrite_with_bad_input_keeps_the_previous_run(tmp_path, capsys, catalog_files, catalog):
    out = str(tmp_path / "o")
    assert run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", out, *FAST)[0] == 0
    before = sorted(os.listdir(out))
    other = tmp_path / "other.npy"
    np.save(other, catalog[0][::-1].copy())
    code, _, err = run_cli(capsys, "run", "--vectors", str(other), "--metadata", catalog_files["metadata"],
                           "--color-by", "nope", "--overwrite", "--out", out, *FAST)
    assert code == 2 and "'nope' does not exist" in err
    assert sorted(os.listdir(out)) == before
    assert "vectors" in done_stages(out) and "layout" in done_stages(out)


def test_a_foreign_run_zarr_is_never_deleted_without_overwrite(tmp_path, capsys, catalog_files):
    import zarr

    out = tmp_path / "o"
    foreign = zarr.open_group(str(out / "run.zarr"), mode="w")
    foreign.create_array("precious", shape=(3,), dtype="int32")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", str(out), *FAST)
    assert code == 2 and "is not a tsne_dist run store" in err
    assert "precious" in zarr.open_group(str(out / "run.zarr"), mode="r")
