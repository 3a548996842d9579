"""How far a map can be trusted, at a cost of O(sample), never O(N^2).

- ``knn_recall@k``: for sampled items, the share of their k nearest map neighbours
  that are among their true k nearest high-D neighbours, ties included: a map
  neighbour counts when its high-D distance is at most the query's true k-th
  neighbour distance (without ties this is the usual overlap of the two top-k
  sets; with many equal distances, e.g. duplicate rows, any of the equally near
  items is a correct neighbour).
- ``trustworthiness@k``: Venna & Kaski's measure, estimated from sampled query
  items with exact high-D ranks over all N items (equals scikit-learn's value
  when every item is sampled).
- silhouettes of a label column in 2-D and high-D, on a sample.
- collapse checks on the raw vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .neighbors.metric import prepare_metric
from .neighbors.bruteforce import squared_distances
from .neighbors.exact import tied_hits

logger = logging.getLogger("tsne_dist")

QUERY_BLOCK_VALUES = 2**25  # float64 distances held per query block (256 MB)
EXPANSION_TOLERANCE = 1e-9  # of |q|² + |x|²: two squared distances this close are a tie


@dataclass
class NeighbourQuality:
    """Sampled neighbour-preservation figures."""

    recall: float
    trustworthiness: float
    n_sampled: int


def sample_items(n_items: int, sample_size: int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded random sample (all rows when N <= sample_size)."""
    if n_items <= sample_size:
        return np.arange(n_items)
    return np.sort(np.random.default_rng(seed).choice(n_items, size=sample_size, replace=False))


@numba.njit(parallel=True, cache=True)
def _ranks_below(distances: np.ndarray, thresholds: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """For each row i and threshold t: how many entries of row i are < thresholds[i, t]."""
    n_rows, n_cols = distances.shape
    n_thresholds = thresholds.shape[1]
    counts = np.zeros((n_rows, n_thresholds), dtype=np.int64)
    for row in numba.prange(n_rows):
        for col in range(n_cols):
            value = distances[row, col]
            for t in range(n_thresholds):
                if value < thresholds[row, t]:
                    counts[row, t] += 1
    return counts


def neighbour_quality(vectors: np.ndarray, layout: np.ndarray, *, k: int = 10, sample: int = 5000,
                      seed: int = 0, metric: str = "euclidean", queries: np.ndarray | None = None) -> NeighbourQuality:
    """kNN recall@k and trustworthiness@k of a layout, from sampled query items.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) high-dimensional vectors.
    layout : np.ndarray
        (N, 2) map coordinates.
    k : int
        Neighbourhood size.
    sample : int
        Query items sampled (all when N is smaller).
    seed : int
        Seed of the sample.
    metric : str
        High-D metric: ``euclidean``, ``cosine`` or ``inner_product``.
    queries : np.ndarray, optional
        Sorted rows to score instead of a sample (e.g. only the items a transform placed).

    Returns
    -------
    NeighbourQuality
    """
    n_items = vectors.shape[0]
    k = max(1, min(k, (n_items - 1) // 2))  # trustworthiness is defined for k < N / 2
    queries = sample_items(n_items, sample, seed) if queries is None else np.asarray(queries)
    on_map = map_neighbours(layout, k, queries)
    items, query_vectors = prepare_metric(vectors, metric)
    data, query_data = items.astype(np.float64), query_vectors.astype(np.float64)
    sq_norms = (data * data).sum(axis=1)
    hits = 0
    penalty = 0.0
    query_block = int(np.clip(QUERY_BLOCK_VALUES // n_items, 8, 256))
    for start in range(0, len(queries), query_block):
        block = queries[start:start + query_block]
        rows = np.arange(len(block))
        query_rows, query_sq = query_data[block], (query_data[block] ** 2).sum(axis=1)
        distances = squared_distances(query_rows, data, sq_norms)  # |q|² + |x|² - 2 q·x: fast, rounded
        distances[rows, block] = np.inf
        block_map = on_map[start:start + query_block]
        # the map neighbours' squared distances computed directly, so exact copies are exactly 0
        map_distances = ((query_rows[:, None, :] - data[block_map]) ** 2).sum(axis=2)
        kth_item = np.argpartition(distances, k - 1, axis=1)[:, k - 1]
        kth = distances[rows, kth_item]
        # the expansion's rounding for one pair is about 1e-16 (|q|² + |x|²); allow 1e-9 of it, per pair
        hits += int(tied_hits(map_distances, kth, rtol=0.0, atol=EXPANSION_TOLERANCE * (query_sq + sq_norms[kth_item])).sum())
        # 1-based high-D rank of each map neighbour; items tied with it (within rounding) do not outrank it
        margin = EXPANSION_TOLERANCE * (query_sq[:, None] + sq_norms[block_map])
        ranks = _ranks_below(distances, map_distances - margin) + 1
        penalty += np.clip(ranks - k, 0, None).sum()
    n_sampled = len(queries)
    recall = hits / (n_sampled * k)
    trust = 1.0 - 2.0 / (n_sampled * k * (2.0 * n_items - 3.0 * k - 1.0)) * penalty
    return NeighbourQuality(recall=float(recall), trustworthiness=float(trust), n_sampled=n_sampled)


MAP_EXTRA_CANDIDATES = 8  # map candidates beyond k, so ties at the k-th map distance are settled by index


def map_neighbours(layout: np.ndarray, k: int, queries: np.ndarray | None = None) -> np.ndarray:
    """Exact k nearest map neighbours of ``queries`` among all items, self excluded.

    Nearest first, ties by the smaller index (what the viewer computes on a click):
    squared distances in float64 of the layout's values.

    Parameters
    ----------
    layout : np.ndarray
        (N, 2) map coordinates (any float dtype).
    k : int
        Neighbours per query; below N.
    queries : np.ndarray, optional
        Row numbers to answer (default: all).

    Returns
    -------
    np.ndarray
        (len(queries), k) int64 row numbers.
    """
    xy = np.asarray(layout, dtype=np.float64)
    queries = np.arange(len(xy)) if queries is None else np.asarray(queries)
    n_candidates = min(len(xy), k + 1 + MAP_EXTRA_CANDIDATES)
    _, candidates = cKDTree(xy).query(xy[queries], k=n_candidates, workers=-1)
    candidates = np.atleast_2d(candidates).reshape(len(queries), n_candidates)
    squared = ((xy[candidates] - xy[queries][:, None, :]) ** 2).sum(axis=2)
    squared[candidates == queries[:, None]] = np.inf  # self last
    order = np.lexsort((candidates, squared), axis=1)
    return np.take_along_axis(candidates, order, axis=1)[:, :k]


LABEL_SHUFFLES = 5


def label_agreement(layout: np.ndarray, labels: pd.Series, *, k: int = 10, sample: int = 5000,
                    seed: int = 0) -> dict[str, float] | None:
    """The share of an item's k nearest map neighbours that carry its label, and the same
    share with the labels shuffled (the chance level for these label sizes).

    Only items with a label count, as queries and as neighbours (the map neighbours are
    searched among labelled items).

    Parameters
    ----------
    layout : np.ndarray
        (N, 2) map.
    labels : pd.Series
        N labels (missing values are left out).
    k : int
        Map neighbours per item.
    sample : int
        Query items sampled.
    seed : int
        Seed of the sample and of the shuffles (``LABEL_SHUFFLES`` of them, averaged).

    Returns
    -------
    dict or None
        ``label_agreement@10`` and ``label_agreement_shuffled@10`` (fractions), or None
        with fewer than k + 2 labelled items.
    """
    values = pd.Series(labels).reset_index(drop=True)
    known = np.flatnonzero(values.notna().to_numpy())
    if len(known) < k + 2:
        return None
    codes = pd.factorize(values.iloc[known].astype(str))[0]
    queries = sample_items(len(known), sample, seed)
    found = map_neighbours(np.asarray(layout)[known], k, queries)
    agreement = float((codes[found] == codes[queries][:, None]).mean())
    rng = np.random.default_rng(seed)
    shuffled = []
    for _ in range(LABEL_SHUFFLES):
        permuted = rng.permutation(codes)
        shuffled.append(float((permuted[found] == permuted[queries][:, None]).mean()))
    return {"label_agreement@10": agreement, "label_agreement_shuffled@10": float(np.mean(shuffled))}


def duplicate_rows(vectors: np.ndarray) -> int:
    """How many rows are exact copies of at least one other row (all copies counted).

    Rows are compared by a 64-bit hash of their bytes, computed in row blocks
    (memory bounded by one block, O(N x D) time).
    """
    rows = np.ascontiguousarray(vectors)
    words = rows.view(np.uint8).reshape(len(rows), -1)
    coefficients = np.random.default_rng(0).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | 1
    keys = np.empty(len(rows), dtype=np.uint64)
    block = max(1, (1 << 24) // max(words.shape[1], 1))
    with np.errstate(over="ignore"):
        for start in range(0, len(rows), block):  # a hash of each row's bytes, modulo 2**64, in row blocks
            keys[start:start + block] = (words[start:start + block].astype(np.uint64) * coefficients).sum(axis=1)
    return int(pd.Series(keys).duplicated(keep=False).sum())


MAX_LABEL_VALUES = 50  # a numeric column with more distinct values is a measurement, not a label


def label_problem(labels: pd.Series, name: str) -> str | None:
    """Why silhouettes of ``labels`` would mean nothing, in words; None when they are meaningful.

    Silhouettes compare groups: they need at least two groups, and groups with
    members. A numeric column with many distinct values (a measurement such as a
    price) or a column where most items are alone in their group (ids, titles)
    gives silhouettes near 0 whatever the map shows. (Integer codes with many
    classes are judged by their group sizes, not as measurements.)
    """
    known = pd.Series(labels).dropna()
    if known.map(np.ndim).any():
        return f"label {name!r} holds lists or arrays, not one label per item: silhouettes were not computed"
    counts = known.value_counts()
    if len(known) < 3 or len(counts) < 2:
        return (f"silhouette of {name!r} is undefined: it needs at least two labels "
                f"({len(counts)} distinct among {len(known):,} labelled items)")
    if pd.api.types.is_float_dtype(known.dtype) and len(counts) > MAX_LABEL_VALUES:
        return (f"label {name!r} looks continuous ({len(counts):,} distinct numbers), not like categories: "
                "silhouettes were not computed; bin it into a few ranges or choose a category column")
    alone = float(counts[counts == 1].sum()) / len(known)
    if alone > 0.5:
        return (f"label {name!r} has {len(counts):,} distinct values for {len(known):,} items ({alone:.0%} are alone "
                "in their group): silhouettes were not computed; choose a column with fewer, larger groups")
    return None


def silhouettes(vectors: np.ndarray, layout: np.ndarray, labels: pd.Series, *, sample: int = 5000,
                seed: int = 0, metric: str = "euclidean") -> dict[str, float] | None:
    """Silhouette of ``labels`` in the map and in high-D on a sample; None if undefined.

    Items with a missing label are left out; at least two labels are needed.
    The high-D silhouette uses ``metric``; for ``inner_product`` the dissimilarity
    max_i |x_i|^2 - x.y on the sample.
    """
    from sklearn.metrics import silhouette_score  # scikit-learn loads in 2 s: only where used
    labels = pd.Series(labels).reset_index(drop=True)
    known = np.flatnonzero(labels.notna().to_numpy())
    if len(known) < 3:
        return None
    chosen = known[sample_items(len(known), sample, seed)]
    codes = pd.factorize(labels.iloc[chosen])[0]
    n_labels = len(np.unique(codes))
    if n_labels < 2 or n_labels >= len(chosen):
        return None
    return {
        "silhouette_2d": float(silhouette_score(layout[chosen], codes)),
        "silhouette_hd": _silhouette_hd(vectors[chosen].astype(np.float64), codes, metric),
    }


def _silhouette_hd(vectors: np.ndarray, codes: np.ndarray, metric: str) -> float:
    """High-D silhouette; for inner product on the dissimilarity max|x|^2 - x.y."""
    from sklearn.metrics import silhouette_score  # scikit-learn loads in 2 s: only where used
    if metric != "inner_product":
        return float(silhouette_score(vectors, codes, metric=metric))
    products = vectors @ vectors.T
    dissimilarity = np.maximum(products.diagonal().max() - products, 0.0)
    np.fill_diagonal(dissimilarity, 0.0)
    return float(silhouette_score(dissimilarity, codes, metric="precomputed"))


def collapse_check(vectors: np.ndarray, *, sample: int = 5000, seed: int = 0) -> tuple[dict[str, float], list[str]]:
    """Signs that the vectors collapsed (carry little information).

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) raw vectors.
    sample : int
        Rows sampled for the cosine and rank estimates.
    seed : int
        Seed of the sample.

    Returns
    -------
    figures : dict
        ``dead_dimensions`` (share of dimensions with no variance),
        ``mean_pairwise_cosine`` and ``effective_rank`` (exp of the entropy of
        the normalised singular values of the centred sample).
    warnings : list of str
        Plain-words warnings; empty when nothing looks wrong.
    """
    rows = vectors[sample_items(vectors.shape[0], sample, seed)].astype(np.float64)
    variances = rows.var(axis=0)
    scale = max(float(variances.max()), 0.0)
    dead = float((variances <= 1e-12 * scale).mean()) if scale > 0 else 1.0
    norms = np.linalg.norm(rows, axis=1)
    unit = rows[norms > 0] / norms[norms > 0, None]
    mean_cosine = float(((unit.sum(axis=0) ** 2).sum() - len(unit)) / max(len(unit) * (len(unit) - 1), 1))
    singular = np.linalg.svd(rows - rows.mean(axis=0), compute_uv=False)
    weights = singular / singular.sum() if singular.sum() > 0 else np.ones(1)
    weights = weights[weights > 0]
    effective_rank = float(np.exp(-(weights * np.log(weights)).sum()))
    figures = {"dead_dimensions": round(dead, 4), "mean_pairwise_cosine": round(mean_cosine, 4),
               "effective_rank": round(effective_rank, 3), "n_dims": int(vectors.shape[1])}
    return figures, _collapse_warnings(figures, scale)


def _collapse_warnings(figures: dict[str, float], scale: float) -> list[str]:
    warnings = []
    if scale <= 0:
        warnings.append("all vectors are identical: the map cannot show any structure")
        return warnings
    if figures["dead_dimensions"] >= 0.5:
        warnings.append(f"{figures['dead_dimensions']:.0%} of the dimensions never vary: the vectors may have collapsed")
    if figures["mean_pairwise_cosine"] >= 0.95:
        warnings.append(
            f"vectors point almost the same way (mean pairwise cosine {figures['mean_pairwise_cosine']:.2f}): "
            "they may have collapsed; distances between them carry little information")
    if figures["effective_rank"] < 2.0 and figures["n_dims"] >= 2:
        warnings.append(
            f"the vectors span about {figures['effective_rank']:.1f} effective dimensions: "
            "they may have collapsed onto a line or a point")
    return warnings
