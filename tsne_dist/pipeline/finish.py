"""The end of a run: layout.parquet, map.png, metrics.json and viewer/, and the Result."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..io.sources import content_hash
from ..outputs import MAP_FILE, VIEWER_MANIFEST, layout_table, write_layout, write_map, write_metrics
from ..storage import Location
from ..store import fingerprint
from ..version import __version__
from .runner import StageRunner

logger = logging.getLogger("tsne_dist")

STAGE_ORDER = ("items", "cooccurrence", "vectors", "knn", "affinities", "layout", "metrics")


@dataclass
class Result:
    """What a run produced.

    Attributes
    ----------
    out : str
        Output location (local folder or URL).
    layout : pd.DataFrame
        ``id, x, y`` and metadata columns (as in ``layout.parquet``).
    metrics : dict
        As in ``metrics.json``.
    stages_run, stages_skipped : list of str
        Stages computed by this call, and those found already done.
    """

    out: str
    layout: pd.DataFrame
    metrics: dict[str, Any]
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)


def write_outputs(runner: StageRunner, ids: np.ndarray, metadata: pd.DataFrame | None) -> Result:
    """Write the run's files from its finished stages and return the :class:`Result`."""
    config, store, out = runner.config, runner.store, runner.plan.out
    location = runner.plan.location
    layout = store.read("layout", "layout")
    with runner.timings.stage("outputs"):
        drawing = _drawing_fingerprint(runner, metadata)
        unchanged = store.run_attrs().get("drawn") == drawing and _drawings_present(location)
        table = layout_table(ids, layout, metadata)
        write_layout(location, table)
        if unchanged:
            logger.info("map.png and viewer/ unchanged since the last run (same stages and metadata): not redrawn")
        else:
            values = metadata[config.color_by] if (metadata is not None and config.color_by) else None
            title = f"t-SNE of {len(ids):,} items" + (f", coloured by {config.color_by}" if config.color_by else "")
            write_map(location, layout, values, title, config.top_categories)
    metrics = metrics_document(runner, len(ids))
    write_metrics(location, metrics)
    if not unchanged:
        _export_viewer(location)
        store.record_drawn(drawing)
    logger.info("map written to %s: %s", out, key_figures(metrics))
    if "stability" in metrics:
        figures = metrics["stability"]
        logger.info("against %s: %d shared items moved %.2f (median) / %.2f (95th percentile) median map-neighbour "
                    "distances; %.0f%% of their 10 map neighbours kept", metrics["init_from"], figures["n_shared"],
                    figures["displacement_median"], figures["displacement_p95"],
                    100 * figures["kept_neighbours@10"])
    return Result(out=out, layout=table, metrics=metrics, stages_run=runner.stages_run,
                  stages_skipped=runner.stages_skipped)


def key_figures(metrics: dict[str, Any]) -> str:
    """One line of the figures that say whether to trust a map (printed at the end of a run).

    Parameters
    ----------
    metrics : dict
        As in ``metrics.json``: recall and trustworthiness always; the silhouette and
        the label agreement when present.

    Returns
    -------
    str
    """
    parts = [f"recall@10 {metrics['knn_recall@10']:.3f}", f"trustworthiness@10 {metrics['trustworthiness@10']:.3f}"]
    if metrics.get("silhouette_2d") is not None:
        parts.append(f"silhouette_2d {metrics['silhouette_2d']:.3f}")
    if metrics.get("label_agreement@10") is not None:
        parts.append(f"label agreement@10 {metrics['label_agreement@10']:.3f} (shuffled labels "
                     f"{metrics['label_agreement_shuffled@10']:.3f})")
    return ", ".join(parts)


def _drawing_fingerprint(runner: StageRunner, metadata: pd.DataFrame | None) -> str:
    """What ``map.png`` and ``viewer/`` are drawn from: every stage's fingerprint (the layout,
    the neighbours, the ids), the metadata's content and the colour settings (and, through
    :func:`fingerprint`, our version)."""
    store, config = runner.store, runner.config
    stages = {name: (store.marker(name) or {}).get("fingerprint") for name in store.stages()}
    content = None if metadata is None else content_hash(metadata)
    return fingerprint(stages, content, config.color_by, config.top_categories)


def _drawings_present(location: Location) -> bool:
    from ..viz.export import bundle_available

    return location.exists(MAP_FILE) and (location.exists(VIEWER_MANIFEST) or not bundle_available())


def _export_viewer(location: Location) -> None:
    """Write OUT/viewer/ (the browser map); only warn when the bundle was not built into this install."""
    from ..viz.export import bundle_available, export_viewer

    if not bundle_available():
        logger.warning("viewer not written: its bundle is not installed (reinstall tsne-dist with npm on PATH)")
        return
    export_viewer(location.url, storage_options=location.storage_options)


def metrics_document(runner: StageRunner, n_items: int) -> dict[str, Any]:
    """The content of ``metrics.json``: figures, what ran, timings and memory by stage."""
    store, plan = runner.store, runner.plan
    found = {name: store.marker(name) for name in STAGE_ORDER}
    markers = {name: marker for name, marker in found.items() if marker}
    names = list(markers)
    timings = {name: markers[name].get("seconds") for name in names}
    timings["outputs"] = runner.timings.seconds.get("outputs")
    memory = {name: markers[name].get("peak_memory_mb") for name in names}
    memory["outputs"] = runner.timings.peak_memory_mb.get("outputs")
    metrics_attrs = store.attrs("metrics")
    figures = metrics_attrs["figures"]
    layout_attrs = store.attrs("layout")
    return {
        "n_items": n_items,
        "n_dims": markers.get("vectors", {}).get("n_dims"),
        "knn_recall@10": figures["knn_recall@10"],
        "trustworthiness@10": figures["trustworthiness@10"],
        **({"label": runner.config.label} if "silhouette_2d" in figures or "label_agreement@10" in figures else {}),
        **{key: figures[key] for key in ("silhouette_2d", "silhouette_hd", "label_agreement@10",
                                         "label_agreement_shuffled@10") if key in figures},
        "kl_divergence": layout_attrs.get("kl_divergence"),
        "engine": layout_attrs.get("engine"),
        "repulsion": layout_attrs.get("repulsion"),
        "knn_backend": markers["knn"].get("ran") or markers["knn"].get("params", {}).get("backend"),
        "knn_graph_recall": markers["knn"].get("graph_recall", 1.0),
        "perplexity": plan.choice("perplexity"),
        "n_neighbors": plan.k,
        "initialization": plan.choice("initialization"),
        "learning_rate": plan.choice("learning_rate"),
        "resolved": plan.resolved(),
        "metrics_sample": figures["metrics_sample"],
        "collapse": figures["collapse"],
        "duplicate_rows": figures.get("duplicate_rows"),
        **({"init_from": plan.previous.out, "stability": figures["stability"]} if "stability" in figures else {}),
        "warnings": metrics_attrs.get("warnings", []),
        "timings": timings,
        "peak_memory_mb": memory,
        "stages_run": runner.stages_run,
        "stages_skipped": runner.stages_skipped,
        "tsne_dist_version": __version__,
    }
