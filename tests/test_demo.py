"""`tsne-dist demo` on a real catalog (digits here; MNIST 5k is the default and the README's command)."""

from __future__ import annotations

import os

from conftest import read_metrics, run_cli


def test_demo_maps_a_real_catalog_and_reruns_from_the_store(tmp_path, capsys):
    out = str(tmp_path / "demo")
    code, stdout, err = run_cli(capsys, "demo", "--dataset", "digits", "--out", out)
    assert code == 0, err
    for name in ("map.png", "layout.parquet", "metrics.json", "run.zarr", "inputs"):
        assert os.path.exists(os.path.join(out, name)), name
    metrics = read_metrics(out)
    assert metrics["n_items"] == 1797
    assert metrics["trustworthiness@10"] > 0.98 and metrics["knn_recall@10"] > 0.5
    assert metrics["silhouette_2d"] > metrics["silhouette_hd"] > 0
    assert "recall@10" in stdout and "map.png" in stdout and "label agreement@10" in stdout
    code, _, err = run_cli(capsys, "demo", "--dataset", "digits", "--out", out)
    assert code == 0 and read_metrics(out)["stages_run"] == []


def test_demo_refuses_an_empty_out_and_urls_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out, message in (("", "no output folder given"), ("s3://bucket/maps", "the demo writes to a local folder")):
        code, _, err = run_cli(capsys, "demo", "--dataset", "digits", "--out", out)
        assert code == 2 and message in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []  # nothing written to the current folder


def test_a_foreign_viewer_folder_is_refused_before_the_first_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "viewer").mkdir(parents=True)
    (out / "viewer" / "index.html").write_text("the user's own page")
    code, _, err = run_cli(capsys, "demo", "--dataset", "digits", "--out", str(out))
    assert code == 2 and "is not a viewer we wrote" in err
    assert not (out / "run.zarr").exists() and not (out / "map.png").exists()  # no stage ran
    assert (out / "viewer" / "index.html").read_text() == "the user's own page"


def test_release_eras_hold_about_equal_shares_of_the_mapped_films_and_say_when_they_cannot():
    import numpy as np
    import pandas as pd
    import pytest

    from tsne_dist.demo import release_eras

    years = np.arange(1950, 2010, dtype=float)
    films = pd.DataFrame({"movieId": np.arange(60), "year": np.append(years[:-1], np.nan)})
    ratings = pd.DataFrame({"movieId": np.repeat(np.arange(60), 3), "userId": np.tile([1, 2, 3], 60)})
    eras = release_eras(films, ratings, min_count=3, n_eras=5)
    assert eras.iloc[-1] is None and sorted(eras.iloc[:-1].value_counts()) == [11, 11, 12, 12, 13]  # whole years
    assert eras.iloc[0] == "1950-1962" and eras.iloc[-2] == "1997-2008"
    one_year = films.assign(year=2001.0)
    assert set(release_eras(one_year, ratings, min_count=3, n_eras=5)) == {"2001-2001"}
    with pytest.raises(ValueError, match="release year"):
        release_eras(films.assign(year=np.nan), ratings, min_count=3, n_eras=5)
