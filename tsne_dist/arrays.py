"""Row-chunked Zarr arrays and sparse matrices in anndata's CSR encoding.

Helpers that write into or read from a given ``zarr.Group``; which group (and
which store) is the caller's business: the run store hands stages their groups.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import zarr

ROW_CHUNK_BYTES = 16 * 2**20


def rows_per_chunk(n_cols: int, itemsize: int) -> int:
    """Rows in a chunk of about 16 MB for an array with ``n_cols`` columns."""
    return max(1024, ROW_CHUNK_BYTES // max(1, n_cols * itemsize))


def write_array(group: zarr.Group, name: str, data: np.ndarray) -> zarr.Array:
    """Write ``data`` as a row-chunked array named ``name`` in ``group`` (text as str)."""
    n_cols = int(np.prod(data.shape[1:])) if data.ndim > 1 else 1
    itemsize = data.dtype.itemsize if data.dtype.kind in "biuf" else 16
    chunk_rows = min(max(1, data.shape[0]), rows_per_chunk(n_cols, itemsize))
    chunks = (chunk_rows, *data.shape[1:])
    dtype = str if data.dtype.kind in "OUT" else data.dtype
    array = group.create_array(name, shape=data.shape, chunks=chunks, dtype=dtype, overwrite=True)
    if data.shape[0]:
        array[...] = data.astype(str) if dtype is str else data
    return array


def write_csr(group: zarr.Group, matrix: sp.csr_matrix) -> None:
    """Write a CSR matrix in anndata's encoding (data f32, indices i32, indptr i64)."""
    matrix = matrix.tocsr()
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(matrix.shape)})
    write_array(group, "data", matrix.data.astype(np.float32))
    write_array(group, "indices", matrix.indices.astype(np.int32))
    write_array(group, "indptr", matrix.indptr.astype(np.int64))


def read_csr(group: zarr.Group) -> sp.csr_matrix:
    """Read a CSR matrix written by :func:`write_csr`.

    Raises
    ------
    ValueError
        When ``group`` does not hold anndata's csr_matrix encoding.
    """
    attrs = group.attrs.asdict()
    if attrs.get("encoding-type") != "csr_matrix":
        raise ValueError(f"group {group.path} is not a csr_matrix")
    shape = tuple(attrs["shape"])
    return sp.csr_matrix((group["data"][:], group["indices"][:], group["indptr"][:]), shape=shape)
