"""Item ids and the metadata table joined to them."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from .sources import open_fs, reading, require_exists, suffix_of

logger = logging.getLogger("tsne_dist")


def read_table(url: str | pd.DataFrame, what: str) -> pd.DataFrame:
    """Read a Parquet or CSV table from a path or fsspec URL (a DataFrame is used as is)."""
    if isinstance(url, pd.DataFrame):
        return url
    require_exists(url, what)
    suffix = suffix_of(url)
    fs, path = open_fs(url)
    with reading(url, what):
        if suffix == ".parquet":
            return pd.read_parquet(path, filesystem=fs)
        if suffix in (".csv", ".tsv"):
            with fs.open(path, "rb") as handle:
                return pd.read_csv(handle, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
    raise InputError(f"cannot tell the format of {what} {url}", "use a .parquet or .csv file")


def read_ids(url: str | np.ndarray, id_col: str) -> np.ndarray:
    """Read item ids, one per vector row, from .npy, .txt, Parquet or CSV (or an array).

    Parquet/CSV: the ``id_col`` column, or the only column when there is one.
    """
    if isinstance(url, (np.ndarray, list, pd.Series)):
        return np.asarray(url)
    suffix = suffix_of(url)
    require_exists(url, "ids file")
    fs, path = open_fs(url)
    with reading(url, "ids file"):
        if suffix == ".npy":
            with fs.open(path, "rb") as handle:
                return np.load(handle, allow_pickle=False)
        if suffix == ".txt":
            with fs.open(path, "rt") as handle:
                return np.array([line.rstrip("\n") for line in handle if line.rstrip("\n")], dtype=object)
    table = read_table(url, "ids file")
    if id_col in table.columns:
        return table[id_col].to_numpy()
    if table.shape[1] == 1:
        return table.iloc[:, 0].to_numpy()
    raise ConfigError(f"ids file {url} has no column {id_col!r} (columns: {', '.join(map(str, table.columns))})",
                      "pass `id_col` NAME")


def check_ids(ids: np.ndarray | None, n_items: int, source: str) -> np.ndarray:
    """Validate ids against the vectors; row numbers when none are given.

    Raises
    ------
    InputError
        Count mismatch, missing ids, or duplicates.
    """
    if ids is None:
        return np.arange(n_items, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.ndim != 1:
        ids = ids.reshape(-1)
    if len(ids) != n_items:
        unmatched = abs(len(ids) - n_items)
        raise InputError(
            f"{source} has {len(ids)} ids but the vectors have {n_items} rows ({unmatched} unmatched)",
            "give exactly one id per vector row, in row order",
        )
    series = pd.Series(ids)
    if series.isna().any():
        raise InputError(f"{int(series.isna().sum())} ids in {source} are missing", "give every item an id")
    duplicated = series[series.duplicated(keep=False)]
    if len(duplicated):
        examples = ", ".join(map(str, pd.unique(duplicated)[:5]))
        raise InputError(
            f"{int(series.duplicated().sum())} duplicate item ids in {source} (e.g. {examples})",
            "make ids unique, or drop the repeated rows",
        )
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return ids.astype(str).astype(object)


def join_metadata(ids: np.ndarray, metadata: pd.DataFrame, id_col: str, source: str) -> pd.DataFrame:
    """Metadata rows in item order, one per id, without the id column.

    Rows with a missing id and rows for items not in the vectors are ignored.

    Raises
    ------
    InputError
        No id column, several rows for one item, or items without metadata.
    """
    if id_col not in metadata.columns:
        raise ConfigError(
            f"metadata {source} has no id column {id_col!r} (columns: {', '.join(map(str, metadata.columns))})",
            "pass `id_col` NAME",
        )
    metadata = metadata[metadata[id_col].notna()]
    keys = _comparable_keys(metadata[id_col], ids)
    item_keys = _comparable_keys(pd.Series(ids), metadata[id_col])
    relevant = keys.isin(item_keys).to_numpy()
    repeated = keys[relevant].duplicated()
    if repeated.any():
        examples = ", ".join(map(str, keys[relevant][repeated].unique()[:3]))
        raise InputError(f"{int(repeated.sum())} items have more than one row in metadata {source} (e.g. {examples})",
                         "keep one metadata row per item")
    table = metadata.drop(columns=[id_col])[relevant].set_axis(pd.Index(keys[relevant]), axis=0)
    missing = ~item_keys.isin(table.index)
    if missing.any():
        examples = ", ".join(map(str, item_keys[missing][:3]))
        raise InputError(
            f"{int(missing.sum())} of {len(ids)} items have no row in metadata {source} (e.g. {examples})",
            f"add rows for them, or check that `id_col` {id_col!r} holds the same ids as the vectors",
        )
    ignored = len(metadata) - int(relevant.sum())
    if ignored > 0:
        logger.info("metadata has %d rows for items that are not in the vectors; ignored", ignored)
    return table.loc[item_keys.to_numpy()].reset_index(drop=True)


def _comparable_keys(values: pd.Series, other: np.ndarray | pd.Series) -> pd.Series:
    """Ids as int64 when both sides hold whole numbers, else as text."""
    values = pd.Series(values).reset_index(drop=True)
    if _whole_numbers(values) and _whole_numbers(pd.Series(other)):
        return values.astype("float64").astype(np.int64)
    return values.astype(str)


def _whole_numbers(values: pd.Series) -> bool:
    values = values.dropna()
    if values.dtype.kind in "iu" or str(values.dtype) in ("Int64", "Int32", "UInt64", "UInt32"):
        return True
    if values.dtype.kind == "f":
        return bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    return False


def check_columns(metadata: pd.DataFrame | None, columns: dict[str, str | None]) -> None:
    """Raise :class:`ConfigError` when a requested column (e.g. `color_by`) is missing."""
    for setting, name in columns.items():
        if name is None:
            continue
        if metadata is None:
            raise ConfigError(f"`{setting}` {name} needs a metadata table", "pass `metadata` PATH")
        if name not in metadata.columns:
            raise ConfigError(
                f"`{setting}` column {name!r} does not exist",
                f"metadata columns are: {', '.join(map(str, metadata.columns))}",
            )
