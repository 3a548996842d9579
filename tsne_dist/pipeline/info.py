"""Reading back what a run holds: stages done, settings asked for and resolved, metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..outputs import METRICS_FILE
from ..storage import Location
from ..store import RunStore
from .plan import RESOLVED_ORDER


@dataclass
class RunInfo:
    """A finished or partial run, read-only.

    Attributes
    ----------
    out : str
        Output folder.
    version : str
        tsne_dist version that last wrote the store.
    config : dict
        The settings as asked for in the last run.
    resolved : dict
        What the plan resolved them to (``engine``, ``knn``, ``initialization``,
        ``learning_rate``: requested, value, reason; ``k``, ``n_items``, ``n_dims``).
    stages : dict
        Stage name -> marker (None when started but not done).
    metrics : dict or None
        ``metrics.json`` when present.
    store : RunStore
        The store, open read-only.
    """

    out: str
    version: str
    config: dict[str, Any]
    resolved: dict[str, Any]
    stages: dict[str, dict[str, Any] | None]
    metrics: dict[str, Any] | None
    store: RunStore

    def layout(self) -> np.ndarray | None:
        """The (N, 2) float32 layout, or None before the layout stage is done."""
        if not self.stages.get("layout"):
            return None
        return self.store.read("layout", "layout")

    def as_dict(self) -> dict[str, Any]:
        """Everything but the store handle (for ``info --json``)."""
        return {"out": self.out, "version": self.version, "config": self.config, "resolved": self.resolved,
                "stages": self.stages, "metrics": self.metrics}


def open_run(out: str, storage_options: dict[str, Any] | None = None) -> RunInfo:
    """Open the run in ``out`` (a local folder or an fsspec URL) read-only.

    Raises
    ------
    StoreError
        When ``out`` holds no run store.
    """
    location = Location(out, storage_options)
    store = RunStore.open(location.url, storage_options=storage_options)
    attrs = store.run_attrs()
    stages = {name: store.marker(name) for name in store.stages()}
    metrics = json.loads(location.read_bytes(METRICS_FILE)) if location.exists(METRICS_FILE) else None
    return RunInfo(out=out, version=attrs.get("tsne_dist_version", "?"), config=attrs.get("config", {}),
                   resolved=attrs.get("resolved", {}), stages=stages, metrics=metrics, store=store)


def describe(info: RunInfo) -> str:
    """Plain-text summary of a run for ``tsne-dist info``."""
    lines = [f"run in {info.out} (tsne_dist {info.version})"]
    config = info.config
    source = config.get("vectors") if config.get("vectors") is not None else config.get("interactions")
    lines.append(f"input: {source}  perplexity {config.get('perplexity')}  k {info.resolved.get('k', '?')}  "
                 f"seed {config.get('seed')}")
    lines.append("choices (asked -> ran, why):" if info.resolved.get("engine") else
                 "choices: not resolved yet (they are once the item count is known)")
    for name in RESOLVED_ORDER:
        choice = info.resolved.get(name)
        if choice:
            lines.append(f"  {name:<15} {choice['requested']} -> {choice['value']}  ({choice['reason']})")
    lines.append("stages:")
    order = ["vectors", "knn", "affinities", "layout", "metrics"]
    if config.get("interactions") is not None:  # the co-occurrence path; vectors only with embed_dim
        order = ["items", "cooccurrence"] + order[int(config.get("embed_dim") is None):]
    for name in order + sorted(set(info.stages) - set(order) - {"items"}):
        if name not in info.stages:
            lines.append(f"  {name:<12} not started")
            continue
        marker = info.stages[name]
        if marker is None:
            lines.append(f"  {name:<12} NOT DONE (interrupted; the next run redoes it)")
            continue
        params = ", ".join(f"{key}={value}" for key, value in marker.get("params", {}).items()
                           if not isinstance(value, dict))
        lines.append(f"  {name:<12} done in {marker.get('seconds', 0):8.2f} s, peak "
                     f"{marker.get('peak_memory_mb', 0):7.0f} MB  {params}")
    if info.metrics:
        metrics = info.metrics
        keys = ["n_items", "knn_recall@10", "trustworthiness@10", "silhouette_2d", "silhouette_hd",
                "label_agreement@10", "label_agreement_shuffled@10", "kl_divergence", "engine", "repulsion", "knn_backend",
                "knn_graph_recall", "init_from"]
        lines.append("metrics:")
        lines.extend(f"  {key:<20} {metrics[key]}" for key in keys if key in metrics)
        if metrics.get("stability"):
            lines.append("  stability against init_from: " + ", ".join(f"{key} {value}" for key, value
                                                                       in metrics["stability"].items()))
        for warning in metrics.get("warnings", []):
            lines.append(f"  WARNING: {warning}")
    else:
        lines.append("metrics: none yet (metrics.json is written when a run finishes)")
    return "\n".join(lines)
