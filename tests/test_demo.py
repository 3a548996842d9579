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
