"""Per-partition work: collections from interaction rows, capping, compiled pair emission.

A partition holds whole collections (the interactions were shuffled by collection
id). Its rows are mapped to vocabulary indices, de-duplicated per (collection,
item) (weights summed, the latest timestamp kept), collections left with fewer
than 2 items are dropped, long ones are capped, and every ordered pair (i, j),
i != j, of each collection is emitted by a numba kernel together with the
diagonal entry (i, i, 1). Pairs are summed within the partition (scipy's COO ->
CSR) before they leave it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..io.interactions import COLLECTION, ITEM, TIME, WEIGHT, clean_partition

COMBINATIONS = ("product", "min", "mean")
BATCH_PAIRS = 4_000_000  # pairs emitted at once (~64 MB of row, col, value)
_MODES = {None: 0, "product": 1, "min": 2, "mean": 3}


@dataclass(frozen=True)
class PairSpec:
    """How pairs are weighted and collections capped.

    Parameters
    ----------
    weight_combine : str or None
        None: every pair weighs 1. ``product`` (w_i * w_j, the weighted B^T B),
        ``min`` or ``mean`` of the two items' weights.
    tau : float or None
        With timestamps: pairs are multiplied by exp(-|t_i - t_j| / tau).
    max_collection_size : int
        Longer collections keep their most recent items (with timestamps), else
        a sample seeded by a hash of the collection id and ``seed``.
    seed : int
        Seed of the sampling.
    use_time : bool
        Whether the partitions carry a ``time`` column.
    """

    weight_combine: str | None = None
    tau: float | None = None
    max_collection_size: int = 500
    seed: int = 0
    use_time: bool = False


@dataclass
class Collections:
    """Collections of one partition, items as vocabulary indices.

    Attributes
    ----------
    offsets : np.ndarray
        (C + 1,) int64; collection c holds ``items[offsets[c]:offsets[c + 1]]``, sorted.
    items : np.ndarray
        int32 vocabulary indices.
    weights, times : np.ndarray or None
        float64 per entry when weights / timestamps are used.
    stats : dict
        ``collections`` (distinct, before filters), ``kept`` (with >= 2 items),
        ``capped`` and ``interactions`` (entries after de-duplication and caps).
    """

    offsets: np.ndarray
    items: np.ndarray
    weights: np.ndarray | None
    times: np.ndarray | None
    stats: dict


def collection_key(collection_id: object) -> int:
    """A stable 64-bit hash of a collection id (the same in every process and run)."""
    text = np.array([str(collection_id)], dtype=object)
    return int(pd.util.hash_array(text)[0])


def cap_collection(items: np.ndarray, times: np.ndarray | None, key: int, max_size: int, seed: int) -> np.ndarray:
    """Positions (sorted) of the entries a collection keeps under the size cap.

    Parameters
    ----------
    items : np.ndarray
        The collection's distinct item indices, sorted.
    times : np.ndarray or None
        Their timestamps: the ``max_size`` most recent are kept (ties: lower index).
    key : int
        :func:`collection_key` of the collection id; without timestamps it seeds
        a uniform sample together with ``seed``, so reruns, retried tasks and any
        partitioning choose the same items.
    max_size : int
        Largest size kept.
    seed : int
        The run's seed.

    Returns
    -------
    np.ndarray
        Sorted int64 positions into ``items``.
    """
    n = len(items)
    if n <= max_size:
        return np.arange(n, dtype=np.int64)
    if times is not None:
        order = np.lexsort((items, -np.asarray(times, dtype=np.float64)))
        return np.sort(order[:max_size]).astype(np.int64)
    rng = np.random.default_rng([int(seed), int(key)])
    return np.sort(rng.choice(n, size=max_size, replace=False)).astype(np.int64)


def prepare_collections(part: pd.DataFrame, vocabulary: pd.Index, spec: PairSpec) -> Collections:
    """Map a partition's rows to vocabulary indices and build its capped collections.

    Parameters
    ----------
    part : pandas.DataFrame
        Normalised interaction rows (whole collections).
    vocabulary : pandas.Index
        Item ids; position = index. Items not in it are dropped.
    spec : PairSpec
        Capping settings.
    """
    part, _ = clean_partition(part)
    keys = part[ITEM]
    if len(part) and vocabulary.inferred_type == "string" and pd.api.types.infer_dtype(keys) != "string":
        keys = keys.astype(str)  # ids read back from the store as text; compare as text
    codes = vocabulary.get_indexer(keys) if len(part) else np.empty(0, dtype=np.int64)
    n_collections = int(part[COLLECTION].nunique()) if len(part) else 0
    known = codes >= 0
    part = part[known]
    items = codes[known].astype(np.int32)
    groups, uniques = pd.factorize(part[COLLECTION], sort=False)
    order = np.lexsort((items, groups))
    groups, items = groups[order], items[order]
    weights = part[WEIGHT].to_numpy(np.float64)[order] if WEIGHT in part.columns else None
    times = part[TIME].to_numpy(np.float64)[order] if (spec.use_time and TIME in part.columns) else None
    # one entry per (collection, item): weights summed, latest timestamp kept
    first = np.ones(len(items), dtype=bool)
    if len(items):
        first[1:] = (groups[1:] != groups[:-1]) | (items[1:] != items[:-1])
    starts = np.flatnonzero(first)
    if weights is not None and len(starts):
        weights = np.add.reduceat(weights, starts)
    if times is not None and len(starts):
        times = np.maximum.reduceat(times, starts)
    groups, items = groups[starts], items[starts]
    bounds = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else np.empty(0, np.int64)
    sizes = np.diff(np.r_[bounds, len(groups)]).astype(np.int64)
    keep = np.repeat(sizes >= 2, sizes)
    capped = 0
    for c in np.flatnonzero(sizes > spec.max_collection_size):
        lo, hi = bounds[c], bounds[c] + sizes[c]
        chosen = cap_collection(items[lo:hi], None if times is None else times[lo:hi],
                                collection_key(uniques[groups[lo]]), spec.max_collection_size, spec.seed)
        mask = np.zeros(hi - lo, dtype=bool)
        mask[chosen] = True
        keep[lo:hi] &= mask
        capped += 1
    kept_sizes = np.minimum(sizes[sizes >= 2], spec.max_collection_size)
    offsets = np.zeros(len(kept_sizes) + 1, dtype=np.int64)
    np.cumsum(kept_sizes, out=offsets[1:])
    stats = {"collections": n_collections, "kept": int(len(kept_sizes)), "capped": capped,
             "interactions": int(offsets[-1])}
    return Collections(offsets=offsets, items=items[keep], weights=None if weights is None else weights[keep],
                       times=None if times is None else times[keep], stats=stats)


@numba.njit(cache=True, nogil=True)
def _emit(offsets, items, weights, times, mode, tau, rows, cols, values):  # pragma: no cover - compiled
    """All ordered pairs of each collection, plus (i, i, 1) per entry; returns the count written."""
    pos = 0
    for c in range(len(offsets) - 1):
        lo, hi = offsets[c], offsets[c + 1]
        for x in range(lo, hi):
            i = items[x]
            rows[pos] = i
            cols[pos] = i
            values[pos] = 1.0
            pos += 1
            for y in range(lo, hi):
                if y == x:
                    continue
                w = 1.0
                if mode == 1:
                    w = weights[x] * weights[y]
                elif mode == 2:
                    w = min(weights[x], weights[y])
                elif mode == 3:
                    w = 0.5 * (weights[x] + weights[y])
                if tau > 0.0:
                    w *= np.exp(-abs(times[x] - times[y]) / tau)
                rows[pos] = i
                cols[pos] = items[y]
                values[pos] = w
                pos += 1
    return pos


def emit_pairs(collections: Collections, spec: PairSpec, n_items: int) -> sp.coo_matrix:
    """Sum of the pair weights of a partition's collections as an (N, N) COO matrix.

    The diagonal counts collections holding each item. Work is done in batches of
    about :data:`BATCH_PAIRS` pairs, so memory does not grow with partition size
    beyond its distinct pairs.
    """
    mode = _MODES[spec.weight_combine] if collections.weights is not None else 0
    tau = float(spec.tau) if (spec.tau and collections.times is not None) else 0.0
    empty = np.empty(0, dtype=np.float64)
    weights = collections.weights if collections.weights is not None else empty
    times = collections.times if collections.times is not None else empty
    offsets = collections.offsets
    sizes = np.diff(offsets)
    cost = np.cumsum(sizes * sizes)
    total = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    start = 0
    n_coll = len(sizes)
    while start < n_coll:
        base = cost[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cost, base + BATCH_PAIRS, side="right")))
        stop = min(stop, n_coll)
        n_pairs = int(cost[stop - 1] - base)
        rows = np.empty(n_pairs, dtype=np.int32)
        cols = np.empty(n_pairs, dtype=np.int32)
        values = np.empty(n_pairs, dtype=np.float64)
        written = _emit(offsets[start:stop + 1], collections.items, weights, times, mode, tau, rows, cols, values)
        batch = sp.coo_matrix((values[:written], (rows[:written], cols[:written])), shape=(n_items, n_items))
        total = total + batch.tocsr()
        start = stop
    return total.tocoo()


def partition_pairs(part: pd.DataFrame, vocabulary: pd.Index, spec: PairSpec, n_items: int,
                    block_rows: int) -> tuple[pd.DataFrame, dict]:
    """One partition's summed pairs as rows (row, col, value, block), and its stats."""
    collections = prepare_collections(part, vocabulary, spec)
    matrix = emit_pairs(collections, spec, n_items)
    rows = matrix.row.astype(np.int32)
    frame = pd.DataFrame({"row": rows, "col": matrix.col.astype(np.int32), "value": matrix.data,
                          "block": (rows // block_rows).astype(np.int32)})
    stats = dict(collections.stats, pairs=int(sizes_pairs(collections.offsets)), partition_nnz=len(frame))
    return frame, stats


def sizes_pairs(offsets: np.ndarray) -> int:
    """Ordered pairs i != j of the collections described by ``offsets``."""
    sizes = np.diff(offsets)
    return int((sizes * (sizes - 1)).sum())


PAIR_META = pd.DataFrame({"row": pd.Series([], dtype=np.int32), "col": pd.Series([], dtype=np.int32),
                          "value": pd.Series([], dtype=np.float64), "block": pd.Series([], dtype=np.int32)})
