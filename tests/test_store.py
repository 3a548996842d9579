"""The run store's CSR encoding is anndata's; markers decide what is done."""

from __future__ import annotations

import anndata
import numpy as np
import scipy.sparse as sp
import zarr

from tsne_dist.arrays import read_csr, write_csr
from tsne_dist.store import RunStore


def test_csr_group_is_read_by_anndata(tmp_path):
    matrix = sp.random(50, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
    store = RunStore.for_run(str(tmp_path), {"vectors": "x"}, {})
    write_csr(store.begin("affinities"), matrix)
    group = zarr.open_group(str(tmp_path / "run.zarr"), mode="r")["affinities"]
    attrs = group.attrs.asdict()
    assert attrs["encoding-type"] == "csr_matrix" and attrs["encoding-version"] == "0.1.0"
    assert attrs["shape"] == [50, 40]
    assert group["data"].dtype == np.float32 and group["indices"].dtype == np.int32
    assert group["indptr"].dtype == np.int64
    via_anndata = anndata.io.read_elem(group)
    assert abs(via_anndata - matrix).max() == 0
    assert abs(read_csr(group) - matrix).max() == 0


def test_markers(tmp_path):
    store = RunStore.for_run(str(tmp_path), {"vectors": "x"}, {})
    group = store.begin("knn")
    assert not store.is_done("knn", "fp1")
    group.create_array("a", shape=(2,), dtype="int32")
    store.finish("knn", "fp1", {"k": 3}, 1.5)
    assert store.is_done("knn", "fp1") and not store.is_done("knn", "fp2")
    store.begin("knn")  # a restarted stage drops its marker with its data
    assert store.marker("knn") is None


def test_remove_outputs_deletes_only_our_files_and_our_viewer(tmp_path):
    from tsne_dist.outputs import remove_outputs
    from tsne_dist.storage import Location

    for name in ("layout.parquet", "map.png", "metrics.json", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "viewer" / "data").mkdir(parents=True)
    (tmp_path / "viewer" / "data" / "manifest.json").write_text("{}")
    remove_outputs(Location(str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "viewer").mkdir()
    (tmp_path / "viewer" / "mine.html").write_text("a user's own page")  # not ours: kept
    remove_outputs(Location(str(tmp_path)))
    assert (tmp_path / "viewer" / "mine.html").exists()


def test_a_store_at_an_fsspec_url_works_like_a_local_one():
    import numpy as np
    import pytest

    from tsne_dist.errors import StoreError

    import uuid

    location = f"memory://tsne-dist-tests/{uuid.uuid4().hex}/a"
    store = RunStore.for_run(location, {"vectors": "x"}, {"perplexity": 30})
    group = store.begin("knn")
    store.write(group, "indices", np.arange(12, dtype=np.int32).reshape(4, 3))
    store.finish("knn", "fp1", {"k": 3}, 0.5)
    store.record_resolved({"engine": {"requested": "auto", "value": "numpy", "reason": "r"}})
    again = RunStore.open(location)
    assert again.url == location + "/run.zarr"
    assert again.is_done("knn", "fp1") and again.read("knn", "indices")[3].tolist() == [9, 10, 11]
    assert again.run_attrs()["resolved"]["engine"]["value"] == "numpy"
    assert again.run_attrs()["config"] == {"perplexity": 30}
    with pytest.raises(StoreError, match="holds a run made from other input"):
        RunStore.for_run(location, {"vectors": "y"}, {})
    RunStore.for_run(location, {"vectors": "y"}, {}, overwrite=True)  # replaced whole
    assert RunStore.open(location).marker("knn") is None
    with pytest.raises(StoreError, match="holds no tsne_dist run"):
        RunStore.open("memory://tsne-dist-tests/runs/none")


def test_remove_outputs_on_object_storage_deletes_only_our_keys():
    """The same rule on an fsspec location (memory:// behaves as an object store: keys, no folders)."""
    import uuid

    import fsspec

    from tsne_dist.outputs import remove_outputs
    from tsne_dist.storage import Location

    root = f"tsne-dist-tests/{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    for name in ("layout.parquet", "map.png", "metrics.json", "notes.txt", "viewer/data/manifest.json",
                 "viewer/index.html", "other/viewer/data/manifest.json"):
        fs.pipe_file(f"{root}/{name}", b"x")
    remove_outputs(Location(f"memory://{root}"))
    assert sorted(fs.find(root)) == [f"/{root}/notes.txt", f"/{root}/other/viewer/data/manifest.json"]
