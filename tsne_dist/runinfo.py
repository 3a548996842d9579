"""Reading back what a run holds: stages done, parameters, timings, metrics."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import zarr

from .errors import StoreError
from .outputs import METRICS_FILE
from .store import MARKER_KEY, STORE_NAME


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
        The config of the last run.
    stages : dict
        Stage name -> marker (None when started but not done).
    metrics : dict or None
        ``metrics.json`` when present.
    """

    out: str
    version: str
    config: dict[str, Any]
    stages: dict[str, dict[str, Any] | None]
    metrics: dict[str, Any] | None

    def layout(self):
        """The (N, 2) layout array, or None before the layout stage is done."""
        if not self.stages.get("layout"):
            return None
        return zarr.open_group(os.path.join(self.out, STORE_NAME), mode="r")["layout"]["layout"][...]


def open_run(out: str) -> RunInfo:
    """Open the run in folder ``out`` read-only.

    Raises
    ------
    StoreError
        When ``out`` holds no run store.
    """
    path = os.path.join(out, STORE_NAME)
    if not os.path.isdir(path):
        raise StoreError(f"{out} holds no tsne_dist run ({STORE_NAME} is missing)", "pass the --out folder of a run")
    root = zarr.open_group(path, mode="r")
    attrs = root.attrs.asdict()
    stages = {}
    for name in root.group_keys():
        stages[name] = root[name].attrs.asdict().get(MARKER_KEY)
    metrics_path = os.path.join(out, METRICS_FILE)
    metrics = None
    if os.path.exists(metrics_path):
        with open(metrics_path) as handle:
            metrics = json.load(handle)
    return RunInfo(out=out, version=attrs.get("tsne_dist_version", "?"), config=attrs.get("config", {}),
                   stages=stages, metrics=metrics)


def describe(info: RunInfo) -> str:
    """Plain-text summary of a run for ``tsne-dist info``."""
    lines = [f"run in {info.out} (tsne_dist {info.version})"]
    config = info.config
    source = config.get("vectors") if config.get("vectors") is not None else config.get("interactions")
    lines.append(f"input: {source}  perplexity {config.get('perplexity')}  seed {config.get('seed')}")
    lines.append("stages:")
    order = ["vectors", "knn", "affinities", "layout", "metrics"]
    if config.get("interactions") is not None:  # the co-occurrence path; vectors only with embed_dim
        order = ["items", "cooccurrence"] + order[int(config.get("embed_dim") is None):]
    for name in order + sorted(set(info.stages) - set(order) - {"items"}):
        if name not in info.stages:
            lines.append(f"  {name:<11} not started")
            continue
        marker = info.stages[name]
        if marker is None:
            lines.append(f"  {name:<11} NOT DONE (interrupted; the next run redoes it)")
            continue
        params = ", ".join(f"{key}={value}" for key, value in marker.get("params", {}).items()
                           if not isinstance(value, dict))
        lines.append(f"  {name:<11} done in {marker.get('seconds', 0):8.2f} s, peak {marker.get('peak_memory_mb', 0):7.0f} MB"
                     f"  {params}")
    if info.metrics:
        metrics = info.metrics
        keys = ["n_items", "knn_recall@10", "trustworthiness@10", "silhouette_2d", "silhouette_hd",
                "kl_divergence", "engine", "knn_backend", "knn_graph_recall"]
        lines.append("metrics:")
        lines.extend(f"  {key:<20} {metrics[key]}" for key in keys if key in metrics)
        for warning in metrics.get("warnings", []):
            lines.append(f"  WARNING: {warning}")
    else:
        lines.append("metrics: none yet (metrics.json is written when a run finishes)")
    return "\n".join(lines)
