"""``tsne-dist compare``: two finished maps of one catalog side by side, aligned, with what changed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError, StoreError
from ..metrics import sample_items
from ..outputs import LAYOUT_FILE
from ..stability import (STABILITY_K, displacements, fit_onto, kept_map_neighbours, neighbour_sets_overlap,
                         shared_items)
from ..storage import Location, storage_options_applied
from ..store import RunStore
from ..viz.report import write_compare_report
from .previous import PreviousMap, read_previous

logger = logging.getLogger("tsne_dist")

COMPARE_JSON = "compare.json"
REPORT_HTML = "report.html"
TOP_ITEMS = 20


@dataclass
class CompareResult:
    """What ``compare`` wrote.

    Attributes
    ----------
    out : str
        Report folder (local path or URL).
    report : str
        Path or URL of ``report.html``.
    summary : dict
        As in ``compare.json``.
    items : pd.DataFrame
        Per shared item: id, displacement, map_jaccard, knn_jaccard.
    """

    out: str
    report: str
    summary: dict[str, Any]
    items: pd.DataFrame


def compare(run_a: str, run_b: str, out: str, *, color_by: str | None = None, label: str | None = None,
            k: int = STABILITY_K, sample: int = 5000, seed: int = 0, top: int = TOP_ITEMS,
            storage_options: dict[str, Any] | None = None) -> CompareResult:
    """Compare two finished runs of the same catalog; write ``report.html`` and ``compare.json``.

    Run B is fitted onto run A by an orthogonal Procrustes map on the shared ids
    (:func:`tsne_dist.stability.align_layout`). Per shared item: how far it moved (in
    A's median nearest-neighbour distances), the Jaccard index of its k map neighbours
    in A and in B (among the shared items), and of its k high-D neighbours in the two
    runs' kNN graphs (by id).

    Parameters
    ----------
    run_a, run_b : str
        Output folders or URLs of two finished runs.
    out : str
        Report folder or URL (created; ``report.html``, ``compare.json``).
    color_by : str, optional
        Column of ``layout.parquet`` colouring both maps (default: run A's ``color_by``).
    label : str, optional
        Column for per-label silhouettes (default: run A's ``label``, else ``color_by``).
    k : int
        Neighbours compared per item.
    sample : int
        Shared items sampled for the silhouettes.
    seed : int
        Seed of that sample.
    top : int
        Items listed as most moved and most changed.
    storage_options : dict, optional
        fsspec options for URLs.

    Returns
    -------
    CompareResult

    Raises
    ------
    StoreError
        When a run is not finished, or ``out`` is a run's folder.
    InputError
        When the runs share fewer than 3 ids.
    ConfigError
        When ``color_by`` or ``label`` is not a column of both runs' ``layout.parquet``.
    """
    with storage_options_applied(storage_options, [run_a, run_b, out]):
        first = read_previous(run_a, storage_options, flag="compare", with_metadata=True)
        second = read_previous(run_b, storage_options, flag="compare", with_metadata=True)
        location = Location(out, storage_options)
        if RunStore(location.url, storage_options=storage_options).exists():
            raise StoreError(f"out {location.url} holds a tsne_dist run", "write the report to a new folder")
        shared = shared_items(first.ids, second.ids)
        if len(shared) < 3:
            raise InputError(f"{first.out} and {second.out} share {len(shared)} item ids (at least 3 needed)",
                             "compare two runs of the same catalog, with the same ids")
        table_a, table_b = first.table, second.table
        color_by = _column(color_by, first.config.get("color_by"), "color_by", table_a, table_b)
        label = _column(label, first.config.get("label") or color_by, "label", table_a, table_b)
        location.check_writable()  # every check passed: only now is the report folder made
        aligned_b = fit_onto(first.layout, second.layout, shared)
        items = _per_item(first, second, aligned_b, shared, k)
        silhouettes = _label_silhouettes(first, second, shared, table_a, table_b, label, sample, seed)
        summary = _summary(first, second, shared, items, k, label, silhouettes)
        values = (pd.concat([table_a[color_by], table_b[color_by]], ignore_index=True) if color_by else None)
        most_moved = _listed(items.sort_values(["displacement", "id"], ascending=[False, True]).head(top),
                             table_a, label, shared)
        most_changed = _listed(items.sort_values(["knn_jaccard", "map_jaccard", "id"]).head(top), table_a, label,
                               shared)
        summary["most_moved"], summary["most_changed"] = most_moved, most_changed
        write_compare_report(location, summary, first.layout, aligned_b, values, color_by, COMPARE_JSON, REPORT_HTML)
    logger.info("compared %s and %s: %d shared items, median displacement %.2f, map-neighbour Jaccard %.2f; "
                "report in %s", first.out, second.out, len(shared), summary["displacement_median"],
                summary["map_jaccard_mean"], location.join(REPORT_HTML))
    return CompareResult(out=location.url, report=location.join(REPORT_HTML), summary=summary, items=items)


def _column(asked: str | None, default: str | None, what: str, table_a: pd.DataFrame,
            table_b: pd.DataFrame) -> str | None:
    """The column to use: one asked for must be in both tables; a default that is not is dropped."""
    name = asked or default
    if name is None or (name in table_a and name in table_b):
        return name
    if asked is not None:
        both = [column for column in table_a.columns if column in table_b and column not in ("id", "x", "y")]
        raise ConfigError(f"{what} column {name!r} is not in both runs' {LAYOUT_FILE} (both hold: "
                          f"{', '.join(map(str, both)) or 'no metadata column'})",
                          f"pass --{what.replace('_', '-')} with a column both hold")
    logger.warning("run A's %s column %r is not in both runs' %s: not used", what, name, LAYOUT_FILE)
    return None


def _per_item(first: PreviousMap, second: PreviousMap, fitted_b: np.ndarray, shared, k: int) -> pd.DataFrame:
    """Displacement and neighbourhood Jaccard indices of each shared item."""
    moved = displacements(first.layout, fitted_b, shared)
    map_jaccard = kept_map_neighbours(first.layout, second.layout, shared, k, jaccard=True)
    knn_a, knn_b = _knn(first, k), _knn(second, k)
    if knn_a is None or knn_b is None:
        knn_jaccard = np.full(len(shared), np.nan)
    else:
        # B's neighbours keyed as A's row numbers; an item only B holds gets a key of its own (N_a + its row)
        a_row_of_b = len(first.ids) + np.arange(len(second.ids), dtype=np.int64)
        a_row_of_b[shared.rows_b] = shared.rows_a
        in_b = np.where(knn_b[shared.rows_b] >= 0, a_row_of_b[np.maximum(knn_b[shared.rows_b], 0)], -1)
        knn_jaccard = neighbour_sets_overlap(knn_a[shared.rows_a], in_b, jaccard=True)
    return pd.DataFrame({"id": pd.Series(first.ids[shared.rows_a]).astype(str), "displacement": moved,
                         "map_jaccard": map_jaccard, "knn_jaccard": knn_jaccard})


def _knn(run: PreviousMap, k: int) -> np.ndarray | None:
    """The run's first k high-D neighbours per item (row numbers), or None when it has none."""
    if not run.store.has("knn", "indices"):
        return None
    indices = run.store.read("knn", "indices")[:, :k].astype(np.int64)
    if run.store.has("knn", "n_real"):  # padded neighbours of the co-occurrence path are not neighbours
        n_real = run.store.read("knn", "n_real")
        indices[np.arange(indices.shape[1])[None, :] >= n_real[:, None]] = -1
    return indices if len(indices) == len(run.ids) else None


def _label_silhouettes(first: PreviousMap, second: PreviousMap, shared, table_a: pd.DataFrame,
                       table_b: pd.DataFrame, label: str | None, sample: int, seed: int) -> list[dict[str, Any]]:
    """Per label: items sampled and the mean silhouette of its items in map A and in map B."""
    from sklearn.metrics import silhouette_samples  # scikit-learn loads in 2 s: only where used

    if label is None:
        return []
    labels = table_a[label].to_numpy()[shared.rows_a]
    known = np.flatnonzero(pd.notna(labels))
    chosen = known[sample_items(len(known), sample, seed)]
    codes, names = pd.factorize(pd.Series(labels[chosen]).astype(str))
    if len(names) < 2 or len(names) >= len(chosen):
        return []
    scores_a = silhouette_samples(first.layout[shared.rows_a][chosen], codes)
    scores_b = silhouette_samples(second.layout[shared.rows_b][chosen], codes)
    rows = [{"label": name, "n": int((codes == index).sum()),
             "silhouette_a": round(float(scores_a[codes == index].mean()), 4),
             "silhouette_b": round(float(scores_b[codes == index].mean()), 4)} for index, name in enumerate(names)]
    return sorted(rows, key=lambda row: (-row["n"], row["label"]))


def _summary(first: PreviousMap, second: PreviousMap, shared, items: pd.DataFrame, k: int, label: str | None,
             silhouettes: list[dict[str, Any]]) -> dict[str, Any]:
    knn = items["knn_jaccard"].to_numpy()
    return {
        "run_a": first.out, "run_b": second.out, "n_a": int(len(first.ids)), "n_b": int(len(second.ids)),
        "n_shared": len(shared), "k": k,
        "displacement_median": round(float(items["displacement"].median()), 4),
        "displacement_p95": round(float(np.percentile(items["displacement"], 95)), 4),
        "displacement_unit": "run A's median map nearest-neighbour distance",
        "map_jaccard_mean": round(float(items["map_jaccard"].mean()), 4),
        "knn_jaccard_mean": None if np.isnan(knn).all() else round(float(np.nanmean(knn)), 4),
        "label": label, "label_silhouettes": silhouettes,
    }


def _listed(rows: pd.DataFrame, table_a: pd.DataFrame, label: str | None, shared) -> list[dict[str, Any]]:
    """The rows (indexed by shared item) as JSON-ready records, with the label when there is one."""
    records = rows.round(4).to_dict("records")
    if label is not None:
        labels = table_a[label].to_numpy()[shared.rows_a]
        for record, index in zip(records, rows.index):
            record[label] = None if pd.isna(labels[index]) else str(labels[index])
    return records
