"""How far a map made from co-occurrence can be trusted, without vectors.

The "high-dimensional" neighbourhood of an item is its row of the similarity
graph (the similarity chosen for the run, on the stored co-occurrence):

- ``knn_recall@10``: for sampled items, the share of their 10 most similar items
  that are among their 10 nearest items in the map, ties included: a map
  neighbour counts when its similarity to the query is at least the query's
  10th-highest similarity (co-occurrence counts tie often; any of the equally
  similar items is a correct neighbour). Items with similarity 0 (they never
  co-occur with the query, or PPMI's shift zeroes them) are not its neighbours:
  a query with m < 10 similar items is scored on those m (hits over min(10, m),
  summed over the sample; 0.0 if no sampled item has a similar item).
- ``trustworthiness@10``: Venna & Kaski's measure with graph ranks: an item's
  rank is 1 + the number of items more similar to the query; items that never
  co-occur with the query share the remaining ranks and get their average.
- ``silhouette_2d`` on the map; ``silhouette_hd`` with the co-occurrence cosine
  distance 1 - c_ij / sqrt(n_i n_j) (1 for items that never co-occur), on at
  most 2,000 sampled items.

Rows are read once, in blocks; only sampled rows are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import zarr

from ..metrics import map_neighbours, sample_items
from .similarity import BLOCK_VALUES, similarity

HD_SILHOUETTE_SAMPLE = 2000
TIE_RTOL = 1e-9  # two similarities this close (relative) are a tie


def graph_quality(group: zarr.Group, layout: np.ndarray, *, kind: str,
                  n_collections: int, ppmi_shift: float = 0.0, k: int = 10, sample: int = 5000, seed: int = 0,
                  labels: pd.Series | None = None) -> dict:
    """Recall, trustworthiness and silhouettes of a map against the similarity graph.

    Parameters
    ----------
    group : zarr.Group
        The ``cooccurrence`` group.
    layout : np.ndarray
        (N, 2) map.
    kind, n_collections, ppmi_shift
        The run's similarity (see :mod:`.similarity`).
    k : int
        Neighbourhood size.
    sample : int
        Query items sampled.
    seed : int
        Seed of the sample.
    labels : pandas.Series, optional
        Label per item for the silhouettes.

    Returns
    -------
    dict
        ``knn_recall@10``, ``trustworthiness@10``, ``metrics_sample`` and, with
        labels, ``silhouette_2d`` / ``silhouette_hd``.
    """
    n_items = layout.shape[0]
    k = max(1, min(k, (n_items - 1) // 2))
    queries = sample_items(n_items, sample, seed)
    on_map = map_neighbours(layout, k, queries)
    silhouette_rows = _silhouette_rows(queries, labels, seed)
    scores, cosine_rows = _row_scores(group, queries, on_map, k, kind, n_collections, ppmi_shift,
                                      silhouette_rows)
    n_sampled = len(queries)
    penalty = scores.penalty
    figures = {
        "knn_recall@10": float(scores.hits / scores.possible) if scores.possible else 0.0,
        "trustworthiness@10": float(1.0 - 2.0 / (n_sampled * k * (2.0 * n_items - 3.0 * k - 1.0)) * penalty),
        "metrics_sample": int(n_sampled),
    }
    if labels is not None:
        label_scores = _silhouettes(layout, labels, queries, silhouette_rows, cosine_rows)
        if label_scores is not None:
            figures.update(label_scores)
    return figures


def _silhouette_rows(queries: np.ndarray, labels: pd.Series | None, seed: int) -> np.ndarray:
    if labels is None:
        return np.empty(0, dtype=np.int64)
    known = queries[pd.Series(labels).reset_index(drop=True).iloc[queries].notna().to_numpy()]
    return np.sort(known[sample_items(len(known), HD_SILHOUETTE_SAMPLE, seed)])


@dataclass
class _RowScores:
    hits: int = 0  # map neighbours at least as similar as the query's k-th most similar item
    possible: int = 0  # sum over queries of min(k, items the query co-occurs with)
    penalty: float = 0.0  # sum over queries of max(0, graph rank - k) of their map neighbours


def _row_scores(group, queries, on_map, k, kind, n_collections, ppmi_shift, silhouette_rows):
    """Tie-aware recall counts and the trustworthiness penalty of the queries; cosine rows for silhouettes."""
    n_items = int(group.attrs["shape"][0])
    indptr = group["indptr"][:]
    diagonal = group["diagonal"][:].astype(np.float64)
    wanted = np.union1d(queries, silhouette_rows)
    position = {int(q): i for i, q in enumerate(queries)}
    silhouette_position = {int(r): i for i, r in enumerate(silhouette_rows)}
    cosine = np.zeros((len(silhouette_rows), len(silhouette_rows)))
    scores = _RowScores()
    data, columns = group["data"], group["indices"]
    start = 0
    while start < len(wanted):
        first = int(wanted[start])
        limit = int(np.searchsorted(indptr, indptr[first] + BLOCK_VALUES, side="right")) - 1
        stop = start + max(1, int(np.searchsorted(wanted[start:], max(limit, first + 1), side="left")))
        last = int(wanted[stop - 1])
        lo, hi = int(indptr[first]), int(indptr[last + 1])
        block_cols, block_vals = columns[lo:hi], data[lo:hi]
        for row in wanted[start:stop]:
            row = int(row)
            a, b = int(indptr[row]) - lo, int(indptr[row + 1]) - lo
            cols = block_cols[a:b].astype(np.int64)
            vals = block_vals[a:b]
            if row in position:
                sims = similarity(vals, np.full(len(cols), diagonal[row]), diagonal[cols], kind, n_collections,
                                  ppmi_shift)
                valid = (cols != row) & (sims > 0)
                cols_v, sims_v = cols[valid], sims[valid]
                ordered = np.sort(sims_v)[::-1]
                m = len(sims_v)
                absent_rank = (m + 1 + n_items - 1) / 2.0
                lookup = dict(zip(cols_v.tolist(), sims_v.tolist()))
                kth = np.inf  # a row with no similar item has no neighbour to find
                if m:
                    kth = ordered[min(k, m) - 1] * (1.0 - TIE_RTOL)
                    scores.possible += min(k, m)
                for j in on_map[position[row]]:
                    s = lookup.get(int(j))
                    rank = absent_rank if s is None else 1.0 + np.searchsorted(-ordered, -s, side="left")
                    scores.penalty += max(0.0, rank - k)
                    scores.hits += int(s is not None and s >= kth)
            if row in silhouette_position:
                keep = np.isin(cols, silhouette_rows)
                cos = vals[keep] / np.sqrt(np.maximum(diagonal[row] * diagonal[cols[keep]], 1e-12))
                cosine[silhouette_position[row], np.searchsorted(silhouette_rows, cols[keep])] = cos
        start = stop
    return scores, cosine


def _silhouettes(layout, labels, queries, rows, cosine) -> dict | None:
    from sklearn.metrics import silhouette_score  # scikit-learn loads in 2 s: only where used
    labels = pd.Series(labels).reset_index(drop=True)
    known = queries[labels.iloc[queries].notna().to_numpy()]
    codes = pd.factorize(labels.iloc[known])[0]
    if len(np.unique(codes)) < 2 or len(np.unique(codes)) >= len(known):
        return None
    out = {"silhouette_2d": float(silhouette_score(layout[known], codes))}
    hd_codes = pd.factorize(labels.iloc[rows])[0]
    if 2 <= len(np.unique(hd_codes)) < len(rows):
        distance = np.clip(1.0 - np.minimum(cosine, cosine.T), 0.0, None)
        np.fill_diagonal(distance, 0.0)
        out["silhouette_hd"] = float(silhouette_score(distance, hd_codes, metric="precomputed"))
    return out
