"""Viewer export and server: binary formats read back, alignment, outliers, CLI, a real run.

Browser behaviour is in test_viewer_browser.py.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import urllib.request

import numpy as np
import pandas as pd
import pytest
import zarr

import tsne_dist
from tsne_dist.cli import main
from tsne_dist.datasets import synthetic_catalog
from tsne_dist.errors import StoreError
from tsne_dist.store import MARKER_KEY
from tsne_dist.stability import align_layout, median_neighbour_distance
from tsne_dist.viz.export import export_viewer, outlier_scores, pack_bits, unpack_bits
from tsne_dist.viz.kept import TIE_RTOL, kept_counts

XSS = "<img src=x onerror=alert(1)>"


def write_run_folder(out, n: int = 300, k: int = 20, seed: int = 0, outlier: int = 3) -> dict:
    """A finished run's files written directly: layout.parquet and run.zarr/knn.

    Six clusters on a circle; each item's neighbours are its 10 nearest items on the
    map then 10 items from the opposite cluster (so exactly 10 of its first 15 are
    kept on the map); item ``outlier`` has 10x larger kNN distances.
    """
    rng = np.random.default_rng(seed)
    cluster = np.arange(n) % 6
    angle = cluster * np.pi / 3
    xy = np.stack([30 * np.cos(angle), 30 * np.sin(angle)], axis=1) + rng.normal(0, 3, size=(n, 2))
    xy = xy.astype(np.float32)
    ids = np.array([f"item-{i}" for i in range(n)], dtype=object)
    ids[7] = XSS
    score = rng.gamma(2.0, 1.0, size=n).astype(np.float32)
    score[11] = np.nan
    table = pd.DataFrame({
        "id": ids, "x": xy[:, 0], "y": xy[:, 1],
        "category": [f"group-{c}" for c in cluster],
        "score": score,
        "title": [f"Title {i} <b>bold</b>" if i != 9 else "<script>alert(2)</script>" for i in range(n)],
        "flag": [None if i % 50 == 0 else ("yes" if i % 2 else "no") for i in range(n)],
    })
    os.makedirs(out, exist_ok=True)
    table.to_parquet(os.path.join(out, "layout.parquet"), index=False)
    d2 = ((xy[:, None, :].astype(np.float64) - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    near = np.argsort(d2, axis=1, kind="stable")[:, :10]
    opposite = (cluster + 3) % 6
    far = np.stack([rng.choice(np.flatnonzero(cluster == opposite[i]), size=k - 10, replace=False) for i in range(n)])
    indices = np.concatenate([near, far], axis=1).astype(np.int32)
    distances = np.sort(rng.uniform(1.0, 2.0, size=(n, k)), axis=1).astype(np.float32)
    distances[outlier] *= 10
    knn = zarr.open_group(os.path.join(out, "run.zarr"), mode="w").create_group("knn")
    knn.create_array("indices", data=indices)
    knn.create_array("distances", data=distances)
    return {"table": table, "indices": indices, "distances": distances, "xy": xy}


def write_duplicates_run(out, n_copies: int = 40, n_other: int = 60, k: int = 20) -> dict:
    """A run whose first ``n_copies`` items are copies of one vector, with vectors in the store.

    Each copy's stored neighbours are the highest-numbered other copies (all at distance 0, as
    right as any), while on the map each copy's nearest items are the lowest-numbered copies:
    the listed neighbours and the map neighbours barely overlap, yet every map neighbour of a
    copy is a true (tied) neighbour.
    """
    rng = np.random.default_rng(3)
    n = n_copies + n_other
    vectors = np.vstack([np.repeat(rng.normal(size=(1, 8)), n_copies, axis=0),
                         rng.normal(size=(n_other, 8)) * 5 + 20]).astype(np.float32)
    xy = np.vstack([np.c_[np.arange(n_copies) * 0.01, np.zeros(n_copies)],  # copies on a short line
                    rng.normal(size=(n_other, 2)) * 5 + 50]).astype(np.float32)
    d2 = ((vectors[:, None].astype(np.float64) - vectors[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")
    order[:n_copies] = np.argsort(np.where(np.isinf(d2[:n_copies]), np.inf, d2[:n_copies] - np.arange(n) * 1e-9),
                                  axis=1, kind="stable")  # copies: highest-numbered copies first
    indices = order[:, :k].astype(np.int32)
    distances = np.sqrt(np.take_along_axis(d2, indices, axis=1)).astype(np.float32)
    os.makedirs(out, exist_ok=True)
    table = pd.DataFrame({"id": [f"item-{i}" for i in range(n)], "x": xy[:, 0], "y": xy[:, 1]})
    table.to_parquet(os.path.join(out, "layout.parquet"), index=False)
    root = zarr.open_group(os.path.join(out, "run.zarr"), mode="w")
    knn = root.create_group("knn")
    knn.attrs[MARKER_KEY] = {"fingerprint": "test", "params": {"backend": "bruteforce", "k": k, "metric": "euclidean"}}
    knn.create_array("indices", data=indices)
    root["knn"].create_array("distances", data=distances)
    root.create_group("vectors").create_array("vectors", data=vectors)
    return {"vectors": vectors, "indices": indices, "distances": distances}


def read_data(viewer: str, name: str) -> bytes:
    with open(os.path.join(viewer, "data", name), "rb") as handle:
        raw = handle.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def read_text(viewer: str, entry: dict) -> list[str]:
    blob = read_data(viewer, entry["file"])
    lengths = np.frombuffer(read_data(viewer, entry["lengths"]), dtype=entry["lengths_dtype"])
    ends = np.cumsum(lengths)
    return [blob[end - length:end].decode() for end, length in zip(ends, lengths)]


@pytest.mark.parametrize("bits", [1, 7, 9, 13, 20, 25])
def test_pack_bits_round_trip(bits):
    rng = np.random.default_rng(bits)
    values = rng.integers(0, 2**bits, size=(1001, 7))
    values[0, 0] = 2**bits - 1
    packed = pack_bits(values, bits)
    assert len(packed) == -(-values.size * bits // 8) + 4
    assert np.array_equal(unpack_bits(packed, bits, values.size).reshape(values.shape), values)


def test_export_writes_data_that_reads_back(tmp_path):
    run = write_run_folder(tmp_path / "run")
    result = export_viewer(str(tmp_path / "run"))
    viewer = result.path
    assert {"data", "index.html", "viewer.js", "viewer.css", "spatial-worker.js"} <= set(os.listdir(viewer))
    manifest = json.load(open(os.path.join(viewer, "data", "manifest.json")))
    assert manifest == result.manifest and manifest["n_items"] == 300
    table = run["table"]

    xy = np.frombuffer(read_data(viewer, manifest["layouts"][0]["file"]), dtype="<f4").reshape(-1, 2)
    assert np.abs(xy).max() <= 1.0
    centre, half = np.array(manifest["transform"]["centre"]), manifest["transform"]["half_range"]
    np.testing.assert_allclose(xy * half + centre, table[["x", "y"]].to_numpy(), atol=1e-4)

    assert read_text(viewer, manifest["ids"]) == list(table["id"])
    kinds = {column["name"]: column for column in manifest["columns"]}
    assert {name: column["kind"] for name, column in kinds.items()} == {
        "category": "category", "score": "number", "title": "text", "flag": "category"}
    category = kinds["category"]
    codes = np.frombuffer(read_data(viewer, category["file"]), dtype=category["dtype"])
    assert [category["categories"][code - 1] for code in codes] == list(table["category"])
    assert sum(category["counts"]) == 300 and category["missing"] == 0
    flag = kinds["flag"]
    flag_codes = np.frombuffer(read_data(viewer, flag["file"]), dtype=flag["dtype"])
    assert flag["missing"] == 6 and (flag_codes == 0).sum() == 6
    assert flag["counts"] == sorted(flag["counts"], reverse=True)  # code 1 is the most frequent
    score = np.frombuffer(read_data(viewer, kinds["score"]["file"]), dtype="<f4")
    np.testing.assert_array_equal(score, table["score"].to_numpy())
    assert kinds["score"]["missing"] == 1
    assert read_text(viewer, kinds["title"])[9] == "<script>alert(2)</script>"

    knn = manifest["knn"]
    assert knn["k"] == 15 and knn["bits"] == 9
    stored = unpack_bits(read_data(viewer, knn["file"]), knn["bits"], 300 * 15).reshape(300, 15)
    np.testing.assert_array_equal(stored, run["indices"][:, :15])

    outlier = manifest["outlier"]
    scores = np.frombuffer(read_data(viewer, outlier["file"]), dtype="<f4")
    np.testing.assert_allclose(scores, run["distances"][:, 14] / np.median(run["distances"][:, 14]), rtol=1e-6)
    top = np.frombuffer(read_data(viewer, outlier["top"]), dtype="<u4")
    assert outlier["n_top"] == 3 and 3 in top and scores[top].min() >= np.sort(scores)[-3]


def _kept_by_definition(xy: np.ndarray, vectors: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """Per item, its k nearest map items (ties by index) that are within its k-th high-D distance."""
    xy = xy.astype(np.float64)
    counts = []
    for i in range(len(xy)):
        low = ((xy - xy[i]) ** 2).sum(axis=1)
        low[i] = np.inf
        near = np.lexsort((np.arange(len(xy)), low))[:k]
        high = np.sqrt(((vectors[near].astype(np.float64) - vectors[i]) ** 2).sum(axis=1))
        counts.append(int((high <= kth[i] * (1 + TIE_RTOL) + 1e-7).sum()))
    return np.array(counts)


def test_the_kept_count_includes_tied_neighbours(tmp_path):
    run = write_duplicates_run(tmp_path / "dups")
    result = export_viewer(str(tmp_path / "dups"))
    knn = result.manifest["knn"]
    kept = np.frombuffer(read_data(result.path, knn["kept"]), dtype=np.uint8)
    xy = np.frombuffer(read_data(result.path, result.manifest["layouts"][0]["file"]), dtype="<f4").reshape(-1, 2)
    expected = _kept_by_definition(xy, run["vectors"], run["distances"][:, 14], 15)
    np.testing.assert_array_equal(kept, expected)
    assert (kept[:40] == 15).all()  # every copy's map neighbours are copies: all true neighbours
    on_map = [set(np.lexsort((np.arange(100), ((xy - xy[i]) ** 2).sum(1)))[1:16]) for i in range(100)]  # by definition
    listed = [len(set(run["indices"][i, :15]) & on_map[i]) for i in range(40)]
    assert min(listed) < 10  # the listed neighbours alone would have said otherwise
    assert "ties included" in knn["kept_definition"]
    # without vectors (the interactions path) ties are found within the stored lists: the 20 stored
    # copies of a copy are all at distance 0, so map neighbours among them count
    graph = kept_counts(xy, run["indices"], run["distances"], 15)
    stored_hits = [len(set(run["indices"][i]) & on_map[i]) for i in range(100)]
    np.testing.assert_array_equal(graph[:40], stored_hits[:40])
    assert (graph[:40] >= np.array(listed)).all() and graph[:40].sum() > sum(listed)
    # padding (items listed only so that every item has k) never counts, nor does a -1 entry
    indices = run["indices"].copy()
    indices[:, -1] = -1
    padded = kept_counts(xy, indices, run["distances"], 15, n_real=np.full(100, 5))
    real_hits = [len(set(run["indices"][i, :5]) & on_map[i]) for i in range(100)]
    np.testing.assert_array_equal(padded, real_hits)


def test_export_replaces_viewer_and_touches_nothing_else(tmp_path):
    out = tmp_path / "run"
    write_run_folder(out, n=60)
    (out / "notes.txt").write_text("mine")
    export_viewer(str(out))
    (out / "viewer" / "stale.txt").write_text("old")
    export_viewer(str(out))
    assert not (out / "viewer" / "stale.txt").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(out)) == ["layout.parquet", "notes.txt", "run.zarr", "viewer"]


def test_export_refuses_folder_without_run(tmp_path):
    with pytest.raises(StoreError, match="holds no finished run"):
        export_viewer(str(tmp_path))
    assert not (tmp_path / "viewer").exists()


def test_outlier_score_is_kth_distance_over_median():
    distances = np.array([[1, 2], [1, 4], [1, 2], [1, 20]], dtype=np.float32)
    np.testing.assert_allclose(outlier_scores(distances, 2), [2 / 3, 4 / 3, 2 / 3, 20 / 3], rtol=1e-6)
    np.testing.assert_allclose(outlier_scores(distances, 1), [1, 1, 1, 1])


def test_align_layout_undoes_rotation_reflection_scale_and_shift():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(50, 2))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([1, -1])
    other = xy[::-1] @ rotation * 3.0 + [5, -2]
    ids = np.array([f"i{i}" for i in range(50)])
    aligned, n_shared = align_layout(ids, xy, ids[::-1], other)
    assert n_shared == 50
    np.testing.assert_allclose(aligned, xy, atol=1e-9)
    # items missing from the other run keep their own position
    aligned, n_shared = align_layout(ids, xy, ids[:40][::-1], other[10:])
    assert n_shared == 40
    np.testing.assert_allclose(aligned, xy, atol=1e-9)
    np.testing.assert_array_equal(aligned[40:], xy[40:])


def test_cli_export_with_compare(tmp_path, capsys):
    write_run_folder(tmp_path / "a", n=80, seed=0)
    write_run_folder(tmp_path / "b", n=80, seed=1)
    assert main(["export", str(tmp_path / "a"), "--compare", str(tmp_path / "b"), "-q"]) == 0
    assert "tsne-dist view" in capsys.readouterr().out
    manifest = json.load(open(tmp_path / "a" / "viewer" / "data" / "manifest.json"))
    assert [layout["name"] for layout in manifest["layouts"]] == ["a", "b"]
    assert manifest["layouts"][1]["n_shared"] == 80
    second = np.frombuffer(read_data(str(tmp_path / "a" / "viewer"), manifest["layouts"][1]["file"]), dtype="<f4")
    first = np.frombuffer(read_data(str(tmp_path / "a" / "viewer"), manifest["layouts"][0]["file"]), dtype="<f4")
    assert second.shape == first.shape and not np.allclose(second, first)
    # the viewer can colour by how far each item moves between the two aligned layouts
    column = next(entry for entry in manifest["columns"] if entry["name"] == "displacement")
    assert column["kind"] == "number"
    moved = np.frombuffer(read_data(str(tmp_path / "a" / "viewer"), column["file"]), dtype="<f4")
    half = manifest["transform"]["half_range"]
    step = np.sqrt(((second - first).reshape(-1, 2) ** 2).sum(axis=1)) * half  # back to map units
    table = pd.read_parquet(tmp_path / "a" / "layout.parquet")
    unit = median_neighbour_distance(table[["x", "y"]].to_numpy())
    np.testing.assert_allclose(moved, step / unit, rtol=1e-3)
    assert main(["export", str(tmp_path / "a"), "--compare", str(tmp_path / "missing")]) == 2


def test_cli_view_without_viewer_is_a_user_error(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    assert "tsne-dist export" in capsys.readouterr().err


def test_view_serves_gzip_on_loopback(tmp_path):
    write_run_folder(tmp_path / "run", n=60)
    export_viewer(str(tmp_path / "run"))
    process = subprocess.Popen([sys.executable, "-m", "tsne_dist", "view", str(tmp_path / "run")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.match(r"viewer: (http://127\.0\.0\.1:(\d+)/)", line)
        assert match, line
        url = match.group(1)
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert b"viewer.js" in gzip.decompress(response.read())
        with urllib.request.urlopen(url + "data/manifest.json", timeout=10) as response:  # no gzip asked: plain
            assert response.headers["Content-Encoding"] is None
            assert json.loads(response.read())["n_items"] == 60
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "data/", timeout=10)  # no directory listings
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_run_writes_viewer(tmp_path):
    """The real pipeline ends by exporting the viewer, with the run's kNN graph."""
    X, metadata = synthetic_catalog(150, 16, n_categories=3, n_subcategories=2, seed=3)
    result = tsne_dist.run({"vectors": X, "ids": metadata["id"].to_numpy(), "metadata": metadata,
                            "out": str(tmp_path / "run"), "perplexity": 5, "n_iter": 150,
                            "early_exaggeration_iter": 50, "metrics_sample": 150})
    viewer = tmp_path / "run" / "viewer"
    manifest = json.load(open(viewer / "data" / "manifest.json"))
    assert manifest["n_items"] == 150 and manifest["knn"]["k"] == 15
    assert read_text(str(viewer), manifest["ids"]) == list(result.layout["id"])
    stored = zarr.open_group(str(tmp_path / "run" / "run.zarr"), mode="r")["knn"]["indices"][:, :15]
    np.testing.assert_array_equal(unpack_bits(read_data(str(viewer), manifest["knn"]["file"]), 8, 150 * 15),
                                  stored.ravel())
    assert [column["name"] for column in manifest["columns"]] == ["category", "subcategory", "popularity"]
    assert manifest["metrics"]["knn_recall@10"] == result.metrics["knn_recall@10"]


def test_build_hook_fails_clearly_without_npm(tmp_path):
    """setup.py's viewer build stops with a one-line reason when npm is not on PATH."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("setup.py", "pyproject.toml", "README.md", os.path.join("viewer", "package.json")):
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        with open(os.path.join(repo, name)) as source, open(tmp_path / name, "w") as target:
            target.write(source.read())
    (tmp_path / "bin").mkdir()
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_py"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)}, timeout=120)
    assert done.returncode != 0
    assert "building the browser viewer needs Node.js and npm (not found on PATH)" in done.stderr + done.stdout
    assert not (tmp_path / "tsne_dist").exists()
