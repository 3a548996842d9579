"""Item ids and the metadata table joined to them."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from .sources import open_fs, reading, require_exists, suffix_of

logger = logging.getLogger("tsne_dist")


ALL_COLUMNS = ("*",)  # text_columns meaning every column


def read_table(url: str | pd.DataFrame, what: str, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a Parquet or CSV table from a path or fsspec URL (a DataFrame is used as is).

    ``text_columns`` of a CSV are read as text, as written (ids like ``000123``
    keep their zeros; large integers are not rounded through floating point).
    """
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
                if text_columns == ALL_COLUMNS:  # every cell as written: only empty cells are missing ("NA" is an id)
                    return pd.read_csv(handle, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                                       keep_default_na=False, na_values=[""])
                return pd.read_csv(handle, sep="\t" if suffix == ".tsv" else ",", low_memory=False,
                                   dtype={name: str for name in text_columns})
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
    table = read_table(url, "ids file", text_columns=ALL_COLUMNS)
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
    if ids.dtype.kind == "u":
        return ids.astype(np.uint64)  # uint64 stays unsigned: ids at or above 2**63 keep their value
    if ids.dtype.kind == "i":
        return ids.astype(np.int64)
    if ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=False) == "integer":
        return _integer_array(ids)
    return ids.astype(str).astype(object)


def _integer_array(ids: np.ndarray) -> np.ndarray:
    """Python ints as int64, or uint64 when one is at or above 2**63.

    Raises
    ------
    InputError
        When the ids do not fit one 64-bit integer type.
    """
    try:
        return np.array(list(ids), dtype=np.uint64 if max(ids) >= 2**63 else np.int64)
    except OverflowError:
        raise InputError(f"integer ids from {min(ids)} to {max(ids)} do not fit one 64-bit integer type",
                         "use ids between -2**63 and 2**63 - 1, or between 0 and 2**64 - 1, or text ids") from None


def join_metadata(ids: np.ndarray, metadata: pd.DataFrame, id_col: str, source: str, *,
                  log_ignored: bool = True) -> pd.DataFrame:
    """Metadata rows in item order, one per id, without the id column.

    Rows with a missing id and rows for ids that are not mapped are ignored (and
    counted in the log when ``log_ignored``).

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
    item_keys, keys = comparable_keys(pd.Series(ids), metadata[id_col], "the item ids",
                                      f"the metadata id column {id_col!r}")
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
            f"add rows for them, or check that `id_col` {id_col!r} holds the same ids as the items",
        )
    ignored = len(metadata) - int(relevant.sum())
    if ignored > 0 and log_ignored:
        logger.info("metadata has %d rows for ids that are not among the %d mapped items; ignored", ignored,
                    len(ids))
    return table.loc[item_keys.to_numpy()].reset_index(drop=True)


INTEGER_TEXT = r"^\s*[+-]?[0-9]+(\.0*)?\s*$"  # "123", "000123", and "1000.0" as CSV writers print whole floats


def _key_kind(values: pd.Series) -> str:
    """``integer``, ``text`` or ``other``: how ids of this column compare exactly."""
    values = values.dropna()
    if pd.api.types.is_bool_dtype(values.dtype):
        return "other"
    if pd.api.types.is_integer_dtype(values.dtype):
        return "integer"
    if values.dtype.kind == "f":
        return "integer" if bool(np.all(np.mod(values.to_numpy(), 1) == 0)) else "other"
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "integer":
        return "integer"
    if inferred in ("string", "empty"):
        return "text"
    return "other"


def _type_name(values: pd.Series, kind: str) -> str:
    return f"{kind} ({values.dtype})" if kind != "other" else str(values.dtype)


def comparable_keys(ids: pd.Series, other: pd.Series, what: str, other_what: str) -> tuple[pd.Series, pd.Series]:
    """Both id columns as exactly comparable keys, never through floating point.

    Integers on both sides compare as Python ints (uint64 and ids above 2**53
    stay exact). Integers against text compare as integers when every text value
    is a whole number written in digits (a CSV id column is read as text), else
    it is a type mismatch. Anything else compares as text.

    Raises
    ------
    InputError
        When one side holds integers and the other text that is not integers.
    """
    ids, other = pd.Series(ids).reset_index(drop=True), pd.Series(other).reset_index(drop=True)
    kinds = (_key_kind(ids), _key_kind(other))
    if set(kinds) == {"integer", "text"}:
        text = ids if kinds[0] == "text" else other
        if not text.dropna().astype(str).str.match(INTEGER_TEXT).all():
            raise InputError(f"{what} are {_type_name(ids, kinds[0])} but {other_what} holds "
                             f"{_type_name(other, kinds[1])}, so no id can match",
                             "give both the same kind of ids (check `id_col`)")
        kinds = ("integer", "integer")
    if kinds == ("integer", "integer"):
        same = {ids.dtype.kind, other.dtype.kind}
        if same in ({"i"}, {"u"}):  # both int64-like or both uint64-like: exact as arrays
            return ids.astype(np.uint64 if same == {"u"} else np.int64), other.astype(
                np.uint64 if same == {"u"} else np.int64)
        return _as_int_keys(ids), _as_int_keys(other)
    return _as_text_keys(ids), _as_text_keys(other)


def _as_int_keys(values: pd.Series) -> pd.Series:
    return values.map(lambda value: value if pd.isna(value) else int(value.strip().split(".")[0])
                      if isinstance(value, str) else int(value)).astype(object)


def _as_text_keys(values: pd.Series) -> pd.Series:
    if values.dtype.kind in "OSU" and not values.isna().any():
        return values.astype(str).astype(object)
    return values.map(lambda value: value if pd.isna(value) else str(value)).astype(object)


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
