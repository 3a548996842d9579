"""The run plan resolves each choice once; the store, fingerprints and info record what ran."""

from __future__ import annotations

import json
import os

import pytest

import tsne_dist.tsne.optimizer
from tsne_dist.errors import StoreError
from tsne_dist.pipeline import make_plan, open_run
from tsne_dist.pipeline.info import describe
from tsne_dist.store import RunStore
from conftest import FAST, read_metrics, run_cli


def test_an_auto_choice_that_resolves_differently_recomputes_the_layout(tmp_path, capsys, catalog_files,
                                                                        monkeypatch):
    out = str(tmp_path / "o")
    args = ["run", "--vectors", catalog_files["vectors"], "--out", out, "--engine", "auto", *FAST]
    assert run_cli(capsys, *args)[0] == 0
    store = RunStore.open(out)
    params = store.marker("layout")["params"]
    assert params["engine"] == "numpy" and params["repulsion"] == "barnes-hut"  # 600 items: below the FFT grid's size
    assert store.marker("knn")["params"]["backend"] == "bruteforce"
    resolved = store.run_attrs()["resolved"]
    assert resolved["engine"]["requested"] == "auto" and resolved["engine"]["value"] == "numpy"
    assert resolved["repulsion"] == {"requested": "auto", "value": "barnes-hut",
                                     "reason": "Barnes-Hut below 50,000 items: the faster on a CPU"}
    assert resolved["knn"]["value"] == "bruteforce" and resolved["k"] == 30
    assert resolved["learning_rate"]["value"] == [50.0, 600.0]  # max(N / exaggeration, 50) per phase
    assert store.run_attrs()["config"]["engine"] == "auto"  # the request is kept as asked
    assert read_metrics(out)["engine"] == "numpy" and read_metrics(out)["repulsion"] == "barnes-hut"

    monkeypatch.setattr(tsne_dist.tsne.optimizer, "BARNES_HUT_MAX_ITEMS", 100)
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    metrics = read_metrics(out)
    assert metrics["stages_run"] == ["layout", "metrics"]
    assert metrics["stages_skipped"] == ["vectors", "knn", "affinities"]
    assert metrics["engine"] == "numpy" and metrics["repulsion"] == "fft"
    assert RunStore.open(out).marker("layout")["params"]["repulsion"] == "fft"

    code, text, _ = run_cli(capsys, "info", out)
    assert "repulsion       auto -> fft  (the FFT grid from 100 items: the faster on a CPU)" in text
    assert "knn             auto -> bruteforce" in text
    code, text, _ = run_cli(capsys, "info", out, "--json")
    info = json.loads(text)
    assert info["resolved"]["repulsion"]["value"] == "fft" and info["config"]["repulsion"] == "auto"

    assert run_cli(capsys, *args, "--repulsion", "barnes-hut")[0] == 0  # asked for by name: recomputed
    assert read_metrics(out)["repulsion"] == "barnes-hut"
    assert read_metrics(out)["stages_run"] == ["layout", "metrics"]


def test_the_plan_resolves_the_interactions_path_without_vectors(tmp_path):
    plan = make_plan({"interactions": str(tmp_path), "out": str(tmp_path / "o"), "perplexity": 5})
    assert plan.path == "interactions" and plan.k == 15 and not plan.has_vectors
    with pytest.raises(RuntimeError, match="for_items"):
        plan.choice("engine")
    resolved = plan.for_items(400, None)
    assert resolved.choice("initialization") == "random"  # no vectors for PCA
    assert resolved.choices["initialization"].requested == "pca"
    assert resolved.choice("knn") == "cooccurrence-cosine"
    assert resolved.choice("engine") == "numpy"
    assert plan.choices == {}  # the plan is immutable: for_items returns a new one
    with_vectors = make_plan({"interactions": str(tmp_path), "out": str(tmp_path / "o"), "embed_dim": 8})
    assert with_vectors.for_items(400, 8).choice("initialization") == "pca"
    assert with_vectors.for_items(400, 8).choice("knn") == "bruteforce"


def test_info_shows_the_initialization_that_ran_on_the_interactions_path(tmp_path, capsys):
    from tsne_dist.datasets import synthetic_interactions

    import pandas as pd

    _, parts = synthetic_interactions(400, 300, 6000, n_categories=4, seed=0)
    path = tmp_path / "log.parquet"
    pd.concat(list(parts)).to_parquet(path, index=False)
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--interactions", str(path), "--collection-col", "user",
                           "--item-col", "item", "--min-count", "2", "--out", out, *FAST)
    assert code == 0, err
    assert "initialization: pca -> random (no vectors for PCA on the similarity graph)" in err
    text = describe(open_run(out))
    assert "initialization  pca -> random" in text
    assert RunStore.open(out).marker("layout")["params"]["initialization"] == "random"
    assert read_metrics(out)["initialization"] == "random"


def test_an_output_url_we_cannot_write_is_refused_not_made_a_local_folder(tmp_path, capsys, catalog_files,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", "nosuchscheme://b/maps/a")
    assert code == 2 and "nosuchscheme://b/maps/a" in err and "install the fsspec package" in err
    assert sorted(os.listdir(tmp_path)) == before  # never a local folder named after the URL
    with pytest.raises(StoreError, match="holds no tsne_dist run"):
        open_run(str(tmp_path / "nothing"))


def test_dry_run_prints_the_plan_and_a_plan_over_the_memory_limit_is_refused(tmp_path, capsys, catalog_files):
    from tsne_dist.pipeline.memory import expected_memory, format_bytes

    out = tmp_path / "o"
    base = ["run", "--vectors", catalog_files["vectors"], "--out", str(out)]
    code, text, err = run_cli(capsys, *base, "--dry-run")
    assert code == 0, err
    estimate = expected_memory(600, 16)
    assert f"expected peak memory: {format_bytes(estimate.peak)} (stage {estimate.peak_stage})" in text
    assert "items: 600 x 16 dimensions" in text and "knn             auto -> bruteforce" in text
    assert not out.exists()  # a dry run writes nothing

    code, _, err = run_cli(capsys, *base, "--dry-run", "--max-memory", "100MB")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"expected to need {format_bytes(estimate.peak)}" in err and "more than the 100 MB of --max-memory" in err
    code, _, err = run_cli(capsys, *base, "--max-memory", "100MB")  # a run is refused before its kNN stage
    assert code == 2 and "more than the 100 MB" in err
    assert RunStore.open(str(out)).marker("knn") is None
    code, _, err = run_cli(capsys, *base, "--dry-run", "--max-memory", "lots")
    assert code == 2 and "a size such as 8GB" in err
