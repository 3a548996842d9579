"""The item vocabulary: item id -> contiguous index, with frequency filters.

An item's count is the number of distinct collections that hold it. Items seen
in fewer than ``min_count`` collections are dropped; with ``max_items`` only the
most frequent are kept (ties: smaller id first). Kept items are indexed in
ascending id order, so row blocks of the matrix mix popular and rare items.
"""

from __future__ import annotations

import logging
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fsspec import AbstractFileSystem

from ..storage import empty_folder
from ..io.interactions import COLLECTION, ITEM, clean_partition, merge_stats

logger = logging.getLogger("tsne_dist")


@dataclass
class Vocabulary:
    """Kept item ids (position = index) and their collection counts.

    Attributes
    ----------
    ids : pandas.Index
        Item ids in index order.
    counts : np.ndarray
        int64 collections holding each item (before the size-2 filter and caps).
    filters : dict
        Items at each filter: ``items_seen``, ``items_min_count``, ``items_kept``.
    """

    ids: pd.Index
    counts: np.ndarray
    filters: dict


def _partition_counts(part: pd.DataFrame, index: int, spill: AbstractFileSystem | None) -> tuple[pd.DataFrame, dict]:
    clean, stats = clean_partition(part)
    if spill is not None:
        try:
            payload = io.BytesIO()
            clean.to_parquet(payload, index=False)
        except (ValueError, TypeError):  # e.g. mixed id types Parquet cannot hold: later passes shuffle again
            logger.debug("partition %d not spilled", index)
        else:
            spill.pipe_file(f"part-{index:05d}.parquet", payload.getvalue())
    pairs = clean[[COLLECTION, ITEM]].drop_duplicates()
    counts = pairs[ITEM].value_counts(sort=False).rename("count").rename_axis(ITEM).reset_index()
    stats["collections"] = int(pairs[COLLECTION].nunique())
    return counts, stats


def item_counts(frame, spill: AbstractFileSystem | None = None) -> tuple[pd.Series, dict]:
    """Collections per item over the whole table, and the cleaning counts (one Dask pass).

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Normalised interactions.
    spill : fsspec.AbstractFileSystem, optional
        A filesystem rooted at a scratch folder (emptied first; e.g. a
        ``DirFileSystem`` on the run's location, which workers reach with nothing
        but its storage options) where the cleaned, collection-shuffled partitions are
        saved as Parquet, so later passes read them without shuffling again
        (:func:`tsne_dist.cooccurrence.matrix.read_spilled`). A file ``_complete``
        holding the part count marks a finished spill.

    Returns
    -------
    counts : pandas.Series
        Item id -> number of distinct collections holding it.
    stats : dict
        :func:`tsne_dist.io.interactions.merge_stats` of every partition, plus
        ``collections`` (distinct collection ids with at least one clean row).
    """
    import dask
    import dask.dataframe as dd
    from dask import delayed

    from .matrix import by_collection

    if spill is not None:
        empty_folder(spill)
    parts = by_collection(frame).to_delayed()
    results = [delayed(_partition_counts)(part, index, spill) for index, part in enumerate(parts)]
    meta = pd.DataFrame({ITEM: pd.Series([], dtype=frame[ITEM].dtype), "count": pd.Series([], dtype=np.int64)})
    per_part = dd.from_delayed([delayed(lambda r: r[0])(r) for r in results], meta=meta, verify_meta=False)
    totals = per_part.groupby(ITEM)["count"].sum(split_out=max(1, per_part.npartitions // 8))
    counts, stats = dask.compute(delayed(pd.concat)(totals.to_delayed()), [delayed(lambda r: r[1])(r) for r in results])
    if spill is not None:
        spill.pipe_file("_complete", str(len(parts)).encode())
    merged = merge_stats(stats)
    merged["collections"] = sum(part.get("collections", 0) for part in stats)
    return counts.astype(np.int64), merged


def build_vocabulary(counts: pd.Series, min_count: int, max_items: int | None) -> Vocabulary:
    """Apply the frequency filters and index the kept items by ascending id."""
    counts = counts[counts.index.notna()]
    filters = {"items_seen": int(len(counts))}
    kept = counts[counts >= min_count]
    filters["items_min_count"] = int(len(kept))
    if max_items is not None and len(kept) > max_items:
        frame = pd.DataFrame({"id": _sortable(kept.index), "count": kept.to_numpy()}, index=kept.index)
        frame = frame.sort_values(["count", "id"], ascending=[False, True], kind="stable")
        kept = kept.loc[frame.index[:max_items]]
    filters["items_kept"] = int(len(kept))
    order = np.argsort(_sortable(kept.index), kind="stable")
    ids = kept.index[order]
    return Vocabulary(ids=pd.Index(ids), counts=kept.to_numpy()[order].astype(np.int64), filters=filters)


CANONICAL_INTEGER = r"^(0|-?[1-9][0-9]{0,18})$"  # as an int64 prints: no "+", no leading zeros, no spaces
INT64_MAX = 2**63 - 1


def integer_ids(values: np.ndarray) -> np.ndarray | None:
    """Text ids as int64 when every one is an integer written as int64 writes it, else None.

    A CSV's id column is read as text so that ``000123`` stays itself; a column of
    plain integers (``123``) still sorts, stores and joins as integers.
    """
    if values.dtype.kind in "iub":
        return None
    text = pd.Series(values, dtype=object).astype(str)
    if len(text) == 0 or not text.str.fullmatch(CANONICAL_INTEGER).all():
        return None
    long = text[text.str.lstrip("-").str.len() == 19]  # 19 digits may overflow int64
    if any(abs(int(value)) > INT64_MAX for value in long):
        return None
    return text.to_numpy().astype(np.int64)


def _sortable(index: pd.Index) -> np.ndarray:
    """Ids in a form that sorts: numbers as numbers (integers written as text too), anything else as text."""
    values = index.to_numpy()
    if values.dtype.kind in "iufb":
        return values
    as_integers = integer_ids(values)
    return as_integers if as_integers is not None else values.astype(str)
