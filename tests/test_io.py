"""The readers on their own: vectors, ids and metadata tables from each supported format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from tsne_dist.errors import ConfigError, InputError
from tsne_dist.io.sources import describe_source, require_exists, suffix_of
from tsne_dist.io.tables import check_ids, join_metadata, read_ids, read_table
from tsne_dist.io.vectors import check_vectors, read_vectors

VECTORS = np.arange(24, dtype=np.float32).reshape(6, 4)


def test_vectors_from_npy_parquet_columns_parquet_list_zarr_and_memory(tmp_path):
    np.save(tmp_path / "v.npy", VECTORS)
    columns = pd.DataFrame(VECTORS, columns=[f"d{i}" for i in range(4)]).assign(id=list("abcdef"))
    columns.to_parquet(tmp_path / "cols.parquet", index=False)
    pq.write_table(pa.table({"id": [10, 11, 12, 13, 14, 15], "emb": [list(map(float, row)) for row in VECTORS]}),
                   tmp_path / "list.parquet")
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w").create_array("vectors", data=VECTORS)

    found, ids = read_vectors(str(tmp_path / "v.npy"))
    assert np.array_equal(found, VECTORS) and ids is None
    found, ids = read_vectors(str(tmp_path / "cols.parquet"))
    assert np.array_equal(found, VECTORS) and ids.tolist() == list("abcdef")
    found, ids = read_vectors(str(tmp_path / "list.parquet"), vector_col="emb")
    assert np.array_equal(found, VECTORS) and ids.tolist() == [10, 11, 12, 13, 14, 15]
    found, _ = read_vectors(str(tmp_path / "list.parquet"))  # the only list column, found without vector_col
    assert np.array_equal(found, VECTORS)
    found, _ = read_vectors(str(tmp_path / "g.zarr"))
    assert np.array_equal(found, VECTORS)
    assert read_vectors(VECTORS)[0] is VECTORS


def test_bad_vector_files_name_the_problem(tmp_path):
    pq.write_table(pa.table({"id": [1, 2], "a": [1.0, 2.0], "name": ["x", "y"]}), tmp_path / "mixed.parquet")
    with pytest.raises(InputError, match="mixes numeric and non-numeric columns"):
        read_vectors(str(tmp_path / "mixed.parquet"))
    with pytest.raises(ConfigError, match="vector column 'emb' is not in"):
        read_vectors(str(tmp_path / "mixed.parquet"), vector_col="emb")
    pq.write_table(pa.table({"emb": [[1.0, 2.0], [1.0]]}), tmp_path / "ragged.parquet")
    with pytest.raises(InputError, match="different lengths"):
        read_vectors(str(tmp_path / "ragged.parquet"), vector_col="emb")
    (tmp_path / "v.bin").write_bytes(b"xx")
    with pytest.raises(InputError, match="cannot tell the format"):
        read_vectors(str(tmp_path / "v.bin"))
    with pytest.raises(InputError, match="does not exist"):
        read_vectors(str(tmp_path / "none.npy"))
    with pytest.raises(InputError, match="2 of 3 rows in x hold NaN or inf"):
        check_vectors(np.array([[1.0, np.nan], [np.inf, 0.0], [1.0, 2.0]]), "x")
    assert check_vectors(np.array([[1, 2], [3, 4]], dtype=np.int64), "x").dtype == np.float32


def test_ids_from_npy_txt_csv_parquet(tmp_path):
    np.save(tmp_path / "ids.npy", np.array([5, 6, 7]))
    (tmp_path / "ids.txt").write_text("a\nb\n\nc\n")
    pd.DataFrame({"item": ["x", "y", "z"], "other": [1, 2, 3]}).to_csv(tmp_path / "ids.csv", index=False)
    pd.DataFrame({"only": [1, 2, 3]}).to_parquet(tmp_path / "ids.parquet", index=False)
    assert read_ids(str(tmp_path / "ids.npy"), "id").tolist() == [5, 6, 7]
    assert read_ids(str(tmp_path / "ids.txt"), "id").tolist() == ["a", "b", "c"]
    assert read_ids(str(tmp_path / "ids.csv"), "item").tolist() == ["x", "y", "z"]
    assert read_ids(str(tmp_path / "ids.parquet"), "id").tolist() == [1, 2, 3]  # the only column
    with pytest.raises(ConfigError, match="has no column 'id'.*columns: item, other"):
        read_ids(str(tmp_path / "ids.csv"), "id")


def test_check_ids_counts_missing_and_duplicates():
    assert check_ids(None, 3, "s").tolist() == [0, 1, 2]
    assert check_ids(np.array([3, 1, 2], dtype=np.int32), 3, "s").dtype == np.int64
    with pytest.raises(InputError, match="s has 2 ids but the vectors have 3 rows"):
        check_ids(np.array([1, 2]), 3, "s")
    with pytest.raises(InputError, match="2 duplicate item ids in s .e.g. a, b"):
        check_ids(np.array(["a", "a", "b", "b"]), 4, "s")
    with pytest.raises(InputError, match="1 ids in s are missing"):
        check_ids(np.array(["a", None, "b"], dtype=object), 3, "s")


def test_tables_and_the_metadata_join(tmp_path):
    pd.DataFrame({"id": [3, 1, 2, 9], "name": ["c", "a", "b", "z"]}).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "m.tsv").write_text("id\tname\n1\ta\n")
    table = read_table(str(tmp_path / "m.csv"), "metadata file")
    assert read_table(str(tmp_path / "m.tsv"), "metadata file")["name"].tolist() == ["a"]
    joined = join_metadata(np.array([1, 2, 3]), table, "id", "m.csv")
    assert joined["name"].tolist() == ["a", "b", "c"] and list(joined.columns) == ["name"]
    with pytest.raises(InputError, match="1 of 2 items have no row in metadata m.csv .e.g. 7"):
        join_metadata(np.array([1, 7]), table, "id", "m.csv")
    doubled = pd.concat([table, table.iloc[:1]])
    with pytest.raises(InputError, match="1 items have more than one row"):
        join_metadata(np.array([1, 2, 3]), doubled, "id", "m.csv")
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(InputError, match="cannot tell the format of metadata file"):
        read_table(str(tmp_path / "m.json"), "metadata file")


def test_sources_are_described_and_checked(tmp_path):
    np.save(tmp_path / "v.npy", VECTORS)
    described = describe_source(str(tmp_path / "v.npy"))
    assert described["url"] == str(tmp_path / "v.npy") and described["size"] > VECTORS.nbytes
    assert describe_source(VECTORS) == describe_source(VECTORS.copy())  # in-memory data: its content's hash
    assert describe_source(VECTORS)["content"] != describe_source(VECTORS + 1)["content"]
    tags = pd.DataFrame({"id": ["a", "b"], "tags": [["x", "y"], ["z"]]})  # list values cannot be hashed as such
    assert describe_source(tags) == describe_source(tags.copy())
    assert describe_source(tags)["content"] != describe_source(tags.assign(tags=[["x"], ["z"]]))["content"]
    assert suffix_of("s3://b/x.PQ") == ".parquet" and suffix_of("a/b.csv") == ".csv" and suffix_of("a/b") == ""
    with pytest.raises(InputError, match="vectors file .* does not exist"):
        require_exists(str(tmp_path / "missing.npy"), "vectors file")
    with pytest.raises(InputError, match="install the fsspec package for nosuchproto://"):
        require_exists("nosuchproto://x/y.npy", "vectors file")
