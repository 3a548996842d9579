"""Reading and validating an interactions table with dask.dataframe.

An interactions table says which items each collection (user, session, basket,
playlist) holds: one row per (collection, item) with an optional weight and an
optional timestamp, or one row per collection with a list column of item ids.
Every partition is normalised to the columns ``collection``, ``item`` and, when
asked for, ``weight`` (float64) and ``time`` (float64 seconds). Rows with a missing
collection or item id are dropped and counted; bad weights and timestamps are
counted and reported as one :class:`InputError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .sources import open_fs, require_exists, source_name, suffix_of

logger = logging.getLogger("tsne_dist")

COLLECTION, ITEM, WEIGHT, TIME = "collection", "item", "weight", "time"
STAT_KEYS = ("rows", "null_collection", "null_item", "bad_weight", "bad_time")


@dataclass(frozen=True)
class InteractionColumns:
    """Which columns of the table hold what.

    Parameters
    ----------
    collection_col : str
        Collection id (user, session, basket). With ``list_col`` it is optional:
        when the table lacks it, a collection is keyed by a hash of its items.
    item_col : str
        Item id (ignored with ``list_col``).
    weight_col, time_col : str, optional
        Interaction weight (non-negative) and timestamp (numbers in seconds,
        datetimes, or text that pandas parses as datetimes).
    list_col : str, optional
        One list column of item ids per collection instead of one row per item.
    """

    collection_col: str = "collection"
    item_col: str = "item"
    weight_col: str | None = None
    time_col: str | None = None
    list_col: str | None = None


def read_interactions(source: Any, columns: InteractionColumns):
    """The interactions as a dask DataFrame of normalised columns, lazily.

    Parameters
    ----------
    source : str, pandas.DataFrame or dask DataFrame
        Parquet file or folder, CSV/TSV file or glob, as a local path or fsspec
        URL; or an in-memory table (Python API).
    columns : InteractionColumns
        Column names.

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``collection``, ``item`` (+ ``weight``, ``time`` when configured)
        as read; :func:`clean_partition` turns each partition into clean rows.

    Raises
    ------
    InputError
        The source does not exist, cannot be read, or lacks a configured column
        (the message lists the columns it has).
    """
    import dask.dataframe as dd

    frame = _open_frame(source, (columns.collection_col, columns.item_col))
    present = [str(name) for name in frame.columns]
    wanted = _wanted_columns(columns, present)
    missing = [name for name in wanted.values() if name not in present]
    if missing:
        raise InputError(
            f"interactions {source_name(source)} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(present)})",
            "pass `collection_col` / `item_col` / `weight_col` / `time_col` / `list_col` with existing names",
        )
    frame = frame[list(dict.fromkeys(wanted.values()))]
    if columns.list_col is not None:
        frame = frame.map_partitions(_explode_lists, columns, COLLECTION in wanted,
                                     meta=_explode_meta(columns))
    else:
        frame = frame.rename(columns={name: key for key, name in wanted.items()})
        frame = frame[list(wanted)]
    if not isinstance(frame, dd.DataFrame):  # pragma: no cover - defensive
        raise TypeError("expected a dask DataFrame")
    return frame


def _open_frame(source: Any, id_columns: tuple[str, ...]):
    """The source as a dask DataFrame; a CSV's ``id_columns`` are read as text (``000123`` stays
    itself; spaces after a delimiter are skipped, as number parsing did)."""
    import dask.dataframe as dd

    if isinstance(source, dd.DataFrame):
        return source
    if isinstance(source, pd.DataFrame):
        return dd.from_pandas(source, npartitions=max(1, min(8, len(source) // 1_000_000 + 1)), sort=False)
    if not isinstance(source, str):
        raise InputError(f"interactions must be a path, URL or table, not {type(source).__name__}")
    is_glob = any(char in source for char in "*?[")
    if not is_glob:
        require_exists(source, "interactions file")
    suffix = suffix_of(source)
    try:
        if suffix in (".csv", ".tsv"):
            return dd.read_csv(source, sep="\t" if suffix == ".tsv" else ",", blocksize="64MB",
                               dtype={name: str for name in id_columns}, skipinitialspace=True)
        if suffix == ".parquet" or _is_folder(source):
            return dd.read_parquet(source)
    except (OSError, ValueError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"cannot read interactions {source}: {first_line}",
                         "check that the file is complete and in the format its name says") from None
    raise InputError(f"cannot tell the format of interactions {source}", "use Parquet (file or folder) or CSV")


def _is_folder(source: str) -> bool:
    fs, path = open_fs(source)
    return fs.isdir(path)


def _wanted_columns(columns: InteractionColumns, present: list[str]) -> dict[str, str]:
    """Normalised name -> column name in the table."""
    wanted: dict[str, str] = {}
    if columns.list_col is not None:
        if columns.collection_col in present:
            wanted[COLLECTION] = columns.collection_col
        wanted["items"] = columns.list_col
    else:
        wanted[COLLECTION] = columns.collection_col
        wanted[ITEM] = columns.item_col
    if columns.weight_col is not None:
        wanted[WEIGHT] = columns.weight_col
    if columns.time_col is not None:
        wanted[TIME] = columns.time_col
    return wanted


def _explode_meta(columns: InteractionColumns) -> pd.DataFrame:
    meta = {COLLECTION: pd.Series([], dtype=object), ITEM: pd.Series([], dtype=object)}
    if columns.weight_col is not None:
        meta[WEIGHT] = pd.Series([], dtype=object)
    if columns.time_col is not None:
        meta[TIME] = pd.Series([], dtype=object)
    return pd.DataFrame(meta)


def _explode_lists(part: pd.DataFrame, columns: InteractionColumns, has_collection: bool) -> pd.DataFrame:
    """One row per (collection, item) from one row per collection with a list of items."""
    lists = part[columns.list_col]
    if has_collection:
        keys = part[columns.collection_col].astype(object)
    else:
        # Identical lists without an id are the same collection: the key is a hash of the items.
        keys = pd.Series([_list_key(value) for value in lists], index=part.index, dtype=object)
    lengths = np.array([0 if _is_missing(value) else len(value) for value in lists], dtype=np.int64)
    items = [item for value in lists if not _is_missing(value) for item in value]
    out = {COLLECTION: np.repeat(keys.to_numpy(dtype=object), lengths), ITEM: np.array(items, dtype=object)}
    for key, name in ((WEIGHT, columns.weight_col), (TIME, columns.time_col)):
        if name is not None:
            out[key] = np.repeat(part[name].to_numpy(dtype=object), lengths)
    return pd.DataFrame(out)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _list_key(value: Any) -> str | None:
    if _is_missing(value):
        return None
    items = sorted(map(str, value))
    return "list:" + str(pd.util.hash_array(np.array(["\x1f".join(items)], dtype=object))[0])


def clean_partition(part: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop rows with missing ids, convert weights and times, count problems.

    Parameters
    ----------
    part : pandas.DataFrame
        One partition with normalised column names.

    Returns
    -------
    clean : pandas.DataFrame
        Rows with both ids; ``weight`` and ``time`` as float64 when present.
    stats : dict
        ``rows``, ``null_collection``, ``null_item``, ``bad_weight``, ``bad_time``
        and ``examples`` (one offending raw value per problem).
    """
    stats: dict[str, Any] = {"rows": len(part), "examples": {}}
    null_collection = part[COLLECTION].isna().to_numpy()
    null_item = part[ITEM].isna().to_numpy()
    stats["null_collection"] = int(null_collection.sum())
    stats["null_item"] = int((null_item & ~null_collection).sum())
    part = part[~(null_collection | null_item)]
    if WEIGHT in part.columns:
        raw = part[WEIGHT]
        weight = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        bad = (~np.isfinite(weight.to_numpy())) | (weight.to_numpy() < 0)
        stats["bad_weight"] = int(bad.sum())
        if bad.any():
            stats["examples"]["weight"] = repr(raw[bad].iloc[0])
        part = part.assign(**{WEIGHT: weight})
    else:
        stats["bad_weight"] = 0
    if TIME in part.columns:
        raw = part[TIME]
        seconds = to_seconds(raw)
        bad = ~np.isfinite(seconds)
        stats["bad_time"] = int(bad.sum())
        if bad.any():
            stats["examples"]["time"] = repr(raw[bad].iloc[0])
        part = part.assign(**{TIME: seconds})
    else:
        stats["bad_time"] = 0
    return part, stats


def to_seconds(values: pd.Series) -> np.ndarray:
    """Timestamps as float64 seconds; NaN where a value is missing or cannot be parsed.

    Numbers are taken as seconds; datetimes (and text that parses as one) become
    seconds since the Unix epoch.
    """
    if values.dtype.kind in "iuf":
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if values.dtype.kind == "M" or isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = pd.to_datetime(values, utc=True)
    else:
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text = ~np.isfinite(numeric)
        if not text.any():
            return numeric
        parsed = pd.to_datetime(values[text].astype(object), errors="coerce", utc=True, format="mixed")
        seconds = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9
        seconds[parsed.isna().to_numpy()] = np.nan
        numeric[text] = seconds
        return numeric
    nanoseconds = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    nanoseconds[parsed.isna().to_numpy()] = np.nan
    return nanoseconds / 1e9


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the per-partition counts of :func:`clean_partition`, keeping the first examples."""
    total: dict[str, Any] = {key: 0 for key in STAT_KEYS}
    examples: dict[str, str] = {}
    for stats in parts:
        for key in STAT_KEYS:
            total[key] += int(stats.get(key, 0))
        for key, value in stats.get("examples", {}).items():
            examples.setdefault(key, value)
    total["examples"] = examples
    return total


def check_stats(stats: dict[str, Any], source: Any, columns: InteractionColumns) -> None:
    """Log handled problems; raise :class:`InputError` for fatal ones.

    Missing ids are dropped and counted (fatal when every row lacks one);
    negative, NaN or non-numeric weights and unparsable timestamps are fatal.
    """
    name = source_name(source)
    if stats["rows"] == 0:
        raise InputError(f"interactions {name} has no rows", "check the file")
    dropped = stats["null_collection"] + stats["null_item"]
    if dropped >= stats["rows"]:
        raise InputError(
            f"every row of interactions {name} lacks a collection or item id "
            f"({stats['null_collection']} without {columns.collection_col!r}, {stats['null_item']} without an item)",
            "check `collection_col` and `item_col`",
        )
    if dropped:
        logger.warning("interactions: dropped %d of %d rows with a missing id (%d collection, %d item)",
                       dropped, stats["rows"], stats["null_collection"], stats["null_item"])
    if stats["bad_weight"]:
        raise InputError(
            f"{stats['bad_weight']} weights in column {columns.weight_col!r} of {name} are negative, NaN or not "
            f"numbers (e.g. {stats['examples'].get('weight')})",
            "weights must be non-negative numbers; fix or drop those rows",
        )
    if stats["bad_time"]:
        raise InputError(
            f"{stats['bad_time']} timestamps in column {columns.time_col!r} of {name} are missing or cannot be "
            f"parsed (e.g. {stats['examples'].get('time')})",
            "use numbers (seconds) or ISO dates, or fix those rows",
        )
