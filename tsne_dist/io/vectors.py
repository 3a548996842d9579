"""Reading item vectors (.npy, Parquet, Zarr) and checking they can be mapped."""

from __future__ import annotations

import fnmatch
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from ..errors import ConfigError, InputError
from .sources import open_fs, reading, require_exists, suffix_of

logger = logging.getLogger("tsne_dist")


def read_vectors(url: str | np.ndarray, vector_col: str | None = None, id_col: str = "id",
                 vector_cols: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read vectors, and ids when the file carries them.

    Parameters
    ----------
    url : str or np.ndarray
        Local path or fsspec URL ending in .npy, .parquet or .zarr, or an
        in-memory array.
    vector_col : str, optional
        Parquet only: the list/array column holding each vector.
    id_col : str
        Parquet only: the id column (excluded from the dimensions).
    vector_cols : str, optional
        Parquet only: a shell-style pattern (``dim_*``) naming the numeric
        dimension columns.

    Returns
    -------
    vectors : np.ndarray
        (N, D) array as stored (checked by :func:`check_vectors`).
    ids : np.ndarray or None
        Ids from the Parquet ``id_col``, else None.
    """
    if isinstance(url, np.ndarray):
        return url, None
    require_exists(url, "vectors file")
    suffix = suffix_of(url)
    with reading(url, "vectors file"):
        if suffix == ".npy":
            return _read_npy(url), None
        if suffix == ".parquet":
            return _read_parquet(url, vector_col, id_col, vector_cols)
        if suffix == ".zarr":
            return _read_zarr(url), None
    raise InputError(f"cannot tell the format of {url}", "use a .npy, .parquet or .zarr file for `vectors`")


def _read_npy(url: str) -> np.ndarray:
    fs, path = open_fs(url)
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{url} is not a numeric .npy array ({exc})", "save the vectors with np.save as float") from None
    with fs.open(path, "rb") as handle:
        try:
            return np.load(handle, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{url} is not a numeric .npy array ({exc})", "save the vectors with np.save as float") from None


def vector_columns(names: list[str], pattern: str) -> list[str]:
    """The column names matching a shell-style ``pattern``, in file order."""
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def _read_parquet(url: str, vector_col: str | None, id_col: str,
                  vector_cols: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    fs, path = open_fs(url)
    table = pq.read_table(path, filesystem=fs)
    ids = table.column(id_col).to_numpy() if id_col in table.column_names else None
    if vector_cols is not None:
        chosen = [name for name in vector_columns(table.column_names, vector_cols) if name != id_col]
        if not chosen:
            raise ConfigError(f"no column of {url} matches vector_cols {vector_cols!r}",
                              f"columns are: {', '.join(table.column_names)}")
        bad = [name for name in chosen if not _is_numeric(table.schema.field(name).type)]
        if bad:
            raise InputError(f"vector_cols {vector_cols!r} matches non-numeric columns of {url}: {', '.join(bad[:5])}",
                             "narrow the pattern `vector_cols`")
        return table.select(chosen).to_pandas().to_numpy(dtype=np.float64, na_value=np.nan), ids
    if vector_col is not None:
        if vector_col not in table.column_names:
            raise ConfigError(
                f"vector column {vector_col!r} is not in {url}",
                f"columns are: {', '.join(table.column_names)}",
            )
        return _list_column_to_array(table.column(vector_col), url), ids
    columns = [name for name in table.column_names if name != id_col]
    numeric = [name for name in columns if _is_numeric(table.schema.field(name).type)]
    lists = [name for name in columns if pa.types.is_list(table.schema.field(name).type)
             or pa.types.is_fixed_size_list(table.schema.field(name).type)
             or pa.types.is_large_list(table.schema.field(name).type)]
    if not numeric and len(lists) == 1:
        return _list_column_to_array(table.column(lists[0]), url), ids
    if not numeric:
        raise InputError(
            f"{url} has no numeric columns to use as vectors (columns: {', '.join(table.column_names)})",
            "store one numeric column per dimension, or one list column and pass `vector_col`",
        )
    non_numeric = [name for name in columns if name not in numeric]
    if non_numeric:
        raise InputError(
            f"{url} mixes numeric and non-numeric columns ({', '.join(non_numeric[:5])})",
            f"keep only the id column ({id_col!r}) and numeric dimensions, or pass `vector_col`",
        )
    logger.info("vectors: the %d numeric columns of %s (%s) are the dimensions; `vector_cols` chooses them",
                len(numeric), url, _column_span(numeric))
    frame = table.select(numeric).to_pandas()
    return frame.to_numpy(dtype=np.float64, na_value=np.nan), ids


def _column_span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]}, ..., {names[-1]}"


def _is_numeric(arrow_type: pa.DataType) -> bool:
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def _list_column_to_array(column: pa.ChunkedArray, url: str) -> np.ndarray:
    array = column.combine_chunks()
    if array.null_count:
        raise InputError(f"{url}: {array.null_count} rows have no vector", "drop those rows or fill them")
    if pa.types.is_fixed_size_list(array.type):
        lengths = np.full(len(array), array.type.list_size)
    else:
        lengths = np.diff(array.offsets.to_numpy())
    if len(np.unique(lengths)) > 1:
        raise InputError(f"{url}: vectors have different lengths ({np.unique(lengths)[:5].tolist()})",
                         "give every row the same dimension")
    values = array.flatten()
    if not _is_numeric(values.type):
        raise InputError(f"{url}: the vector column holds non-numeric values ({values.type})",
                         "store numbers in the list column")
    return values.to_numpy(zero_copy_only=False).reshape(len(array), -1)


def _read_zarr(url: str) -> np.ndarray:
    try:
        node = zarr.open(url, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds for unreadable stores
        raise InputError(f"cannot read the Zarr store {url}: {exc}", "pass a Zarr array or a group with a 'vectors' array") from None
    if isinstance(node, zarr.Group):
        if "vectors" not in node:
            raise InputError(f"Zarr group {url} has no 'vectors' array", "point `vectors` at the array itself")
        node = node["vectors"]
    return node[...]


def check_vectors(vectors: np.ndarray, source: str) -> np.ndarray:
    """Validate vectors and return them as C-contiguous float32.

    Raises
    ------
    InputError
        Empty input, zero dimensions, non-numeric values, or NaN/inf.
    """
    array = np.asarray(vectors)
    if array.dtype.kind not in "biuf":
        raise InputError(f"vectors in {source} are not numeric (dtype {array.dtype})", "store the vectors as float or int numbers")
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError(f"{source} holds no items (0 rows)", "give at least one vector per item")
    if array.ndim != 2:
        raise InputError(f"vectors in {source} must be a 2-D (items x dimensions) array, got shape {array.shape}",
                         "reshape to (n_items, n_dims)")
    if array.shape[1] == 0:
        raise InputError(f"vectors in {source} have zero dimensions (shape {array.shape})", "give each item at least one number")
    n_items = array.shape[0]
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad_rows = _count_nonfinite_rows(array)
    if bad_rows:
        raise InputError(f"{bad_rows} of {n_items} rows in {source} hold NaN or inf", "fix or drop those rows")
    return array


def _count_nonfinite_rows(array: np.ndarray, block: int = 65536) -> int:
    bad = 0
    for start in range(0, array.shape[0], block):
        bad += int((~np.isfinite(array[start:start + block])).any(axis=1).sum())
    return bad
