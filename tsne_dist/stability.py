"""How much two maps of one catalog agree: alignment on shared ids, displacement, kept neighbours.

Two t-SNE layouts of the same data may differ by a rotation, a reflection, a uniform
scale and a shift, none of which changes what the map shows; so a second map is first
fitted onto the first by an orthogonal Procrustes map on the items both hold
(Schönemann 1966; scipy.linalg.orthogonal_procrustes solves the same problem), and
only then are positions compared. Distances are reported in units of the first map's
median nearest-neighbour distance, so figures read the same at any N and any spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .metrics import map_neighbours

STABILITY_K = 10


@dataclass(frozen=True)
class SharedItems:
    """Row numbers of the items two runs both hold, matched by id.

    Attributes
    ----------
    rows_a, rows_b : np.ndarray
        (S,) int64 rows in run A and in run B of the same items, in A's order.
    """

    rows_a: np.ndarray
    rows_b: np.ndarray

    def __len__(self) -> int:
        return len(self.rows_a)


def shared_items(ids_a: np.ndarray, ids_b: np.ndarray) -> SharedItems:
    """The items in both id arrays (ids compared as text, so 7 and "7" match, 7.0 and 7 do not).

    Parameters
    ----------
    ids_a, ids_b : np.ndarray
        (N_a,) and (N_b,) ids, each unique.

    Returns
    -------
    SharedItems
        Rows in A (ascending) and the same items' rows in B.
    """
    position = pd.Index(pd.Series(ids_b).astype(str)).get_indexer(pd.Series(ids_a).astype(str))
    rows_a = np.flatnonzero(position >= 0)
    return SharedItems(rows_a=rows_a.astype(np.int64), rows_b=position[rows_a].astype(np.int64))


def procrustes_map(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """The similarity transform (rotation or reflection, uniform scale, shift) that fits
    ``source`` onto ``target`` in least squares.

    Parameters
    ----------
    source, target : np.ndarray
        (S, 2) matched positions.

    Returns
    -------
    rotation : np.ndarray
        (2, 2) orthogonal matrix.
    scale : float
    source_mean, target_mean : np.ndarray
        (2,) centres; a point p maps to ``(p - source_mean) @ rotation * scale + target_mean``.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    u, s, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    scale = float(s.sum() / max((a**2).sum(), 1e-300))
    return rotation, scale, source_mean, target_mean


def align_layout(ids: np.ndarray, xy: np.ndarray, other_ids: np.ndarray, other_xy: np.ndarray) -> tuple[np.ndarray, int]:
    """Place another run's layout over this one, matched by id.

    The other layout is fitted onto this one by :func:`procrustes_map` on the shared
    ids. Items missing from the other run keep their own position.

    Parameters
    ----------
    ids, xy : np.ndarray
        This run's ids (N,) and positions (N, 2).
    other_ids, other_xy : np.ndarray
        The other run's ids and positions.

    Returns
    -------
    aligned : np.ndarray
        (N, 2) float64 positions for this run's items.
    n_shared : int
        Number of ids found in both runs (nothing is moved below 3).
    """
    shared = shared_items(ids, other_ids)
    aligned = np.asarray(xy, dtype=np.float64).copy()
    if len(shared) >= 3:
        aligned[shared.rows_a] = fit_onto(aligned, other_xy, shared)[shared.rows_b]
    return aligned, len(shared)


def fit_onto(xy_a: np.ndarray, xy_b: np.ndarray, shared: SharedItems) -> np.ndarray:
    """All of map B's positions under the :func:`procrustes_map` that fits B's shared items onto A's.

    Parameters
    ----------
    xy_a, xy_b : np.ndarray
        (N_a, 2) and (N_b, 2) positions.
    shared : SharedItems
        The items both hold (at least 3).

    Returns
    -------
    np.ndarray
        (N_b, 2) float64, in B's row order.
    """
    xy_b = np.asarray(xy_b, dtype=np.float64)
    rotation, scale, source_mean, target_mean = procrustes_map(xy_b[shared.rows_b],
                                                               np.asarray(xy_a, dtype=np.float64)[shared.rows_a])
    return (xy_b - source_mean) @ rotation * scale + target_mean


def median_neighbour_distance(xy: np.ndarray) -> float:
    """Median distance from each point to its nearest other point (0 only when most points coincide).

    Parameters
    ----------
    xy : np.ndarray
        (N, 2) positions.

    Returns
    -------
    float
        In the positions' units; 0.0 for fewer than 2 points.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 2:
        return 0.0
    distances, _ = cKDTree(xy).query(xy, k=2, workers=-1)
    return float(np.median(distances[:, 1]))


def displacements(xy_a: np.ndarray, fitted_b: np.ndarray, shared: SharedItems) -> np.ndarray:
    """How far each shared item moved from map A to map B fitted onto A (:func:`fit_onto`), in
    A's median nearest-neighbour distances.

    Parameters
    ----------
    xy_a : np.ndarray
        (N_a, 2) positions.
    fitted_b : np.ndarray
        (N_b, 2) map B's positions, already fitted onto A.
    shared : SharedItems
        The items both hold (:func:`shared_items`).

    Returns
    -------
    np.ndarray
        (S,) float64, in A's row order of the shared items.
    """
    xy_a = np.asarray(xy_a, dtype=np.float64)
    moved = np.sqrt(((np.asarray(fitted_b)[shared.rows_b] - xy_a[shared.rows_a]) ** 2).sum(axis=1))
    unit = median_neighbour_distance(xy_a)
    return moved / unit if unit > 0 else moved


def neighbour_sets_overlap(neighbours_a: np.ndarray, neighbours_b: np.ndarray, *, jaccard: bool = False) -> np.ndarray:
    """Per row, how many entries the two neighbour lists share: as a share of the list
    length, or (``jaccard``) as |A ∩ B| / |A ∪ B|.

    Parameters
    ----------
    neighbours_a, neighbours_b : np.ndarray
        (S, k) integer neighbour keys (the same key for the same item in both); -1 is no
        neighbour and never matches.

    Returns
    -------
    np.ndarray
        (S,) float64 in [0, 1].
    """
    a = np.sort(np.asarray(neighbours_a, dtype=np.int64), axis=1)
    b = np.asarray(neighbours_b, dtype=np.int64)
    common = np.zeros(len(a), dtype=np.int64)
    for column in range(b.shape[1]):
        values = b[:, column:column + 1]
        found = np.take_along_axis(a, np.clip(np.sum(a < values, axis=1, keepdims=True), 0, a.shape[1] - 1), axis=1)
        common += ((found == values) & (values >= 0)).ravel()
    sizes_a, sizes_b = (a >= 0).sum(axis=1), (b >= 0).sum(axis=1)
    if jaccard:
        union = sizes_a + sizes_b - common
        return np.where(union > 0, common / np.maximum(union, 1), 1.0)
    return common / max(a.shape[1], 1)


def kept_map_neighbours(xy_a: np.ndarray, xy_b: np.ndarray, shared: SharedItems, k: int = STABILITY_K, *,
                        jaccard: bool = False) -> np.ndarray:
    """Per shared item, the share of its k map neighbours (among the shared items) that are
    its map neighbours in both maps (or their Jaccard index).

    Parameters
    ----------
    xy_a, xy_b : np.ndarray
        (N_a, 2) and (N_b, 2) positions.
    shared : SharedItems
        The items both hold.
    k : int
        Map neighbours per item (at most S - 1).
    jaccard : bool
        Return |A ∩ B| / |A ∪ B| instead of |A ∩ B| / k.

    Returns
    -------
    np.ndarray
        (S,) float64 in [0, 1], in A's row order of the shared items.
    """
    k = min(k, len(shared) - 1)
    if k < 1:
        return np.ones(len(shared))
    in_a = map_neighbours(np.asarray(xy_a)[shared.rows_a], k)
    in_b = map_neighbours(np.asarray(xy_b)[shared.rows_b], k)
    return neighbour_sets_overlap(in_a, in_b, jaccard=jaccard)


def stability(ids_a: np.ndarray, xy_a: np.ndarray, ids_b: np.ndarray, xy_b: np.ndarray,
              k: int = STABILITY_K) -> dict[str, float | int]:
    """How much map B (e.g. tonight's) kept of map A (last night's), over the items both hold.

    Parameters
    ----------
    ids_a, xy_a : np.ndarray
        Map A's ids (N_a,) and positions (N_a, 2).
    ids_b, xy_b : np.ndarray
        Map B's ids and positions.
    k : int
        Map neighbours compared per item.

    Returns
    -------
    dict
        ``n_shared``; ``displacement_median`` and ``displacement_p95``: how far shared items
        moved once B is fitted onto A (:func:`procrustes_map`), in A's median
        nearest-neighbour distances; ``kept_neighbours@10``: the mean share of each shared
        item's k map neighbours that are its neighbours in both maps.

    Raises
    ------
    ValueError
        When fewer than 3 items are shared.
    """
    shared = shared_items(ids_a, ids_b)
    if len(shared) < 3:
        raise ValueError(f"the two maps share {len(shared)} items; at least 3 are needed to align them")
    moved = displacements(xy_a, fit_onto(xy_a, xy_b, shared), shared)
    kept = kept_map_neighbours(xy_a, xy_b, shared, k)
    return {"n_shared": len(shared), "displacement_median": float(np.median(moved)),
            "displacement_p95": float(np.percentile(moved, 95)), f"kept_neighbours@{k}": float(kept.mean())}
