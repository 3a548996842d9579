"""What a run leaves in OUT: layout.parquet, map.png, metrics.json, each written whole (:mod:`.storage`)."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from .storage import Location

logger = logging.getLogger("tsne_dist")

LAYOUT_FILE = "layout.parquet"
MAP_FILE = "map.png"
METRICS_FILE = "metrics.json"
OUTPUT_FILES = (LAYOUT_FILE, MAP_FILE, METRICS_FILE)
VIEWER_MANIFEST = "viewer/data/manifest.json"  # written last: the viewer folder is complete when it exists


def layout_table(ids: np.ndarray, layout: np.ndarray, metadata: pd.DataFrame | None) -> pd.DataFrame:
    """``id, x, y`` then the metadata columns (clashing names get a ``meta_`` prefix)."""
    table = pd.DataFrame({"id": ids, "x": layout[:, 0].astype(np.float32), "y": layout[:, 1].astype(np.float32)})
    if metadata is None:
        return table
    renamed = {name: f"meta_{name}" for name in metadata.columns if name in ("id", "x", "y")}
    metadata = metadata.rename(columns=renamed).reset_index(drop=True)
    for name in metadata.columns:
        if metadata[name].dtype == object and pd.api.types.infer_dtype(metadata[name], skipna=True).startswith("mixed"):
            # Parquet needs one type per column: values of mixed types are kept as text
            metadata[name] = metadata[name].map(_as_text)
    return pd.concat([table, metadata], axis=1)


def _as_text(value: Any) -> str | None:
    """A value of a mixed-type column as text (lists and arrays too); missing stays None."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    return str(list(value)) if np.ndim(value) else str(value)


def write_layout(location: Location, table: pd.DataFrame) -> str:
    """Write ``layout.parquet`` whole (see :meth:`Location.write_file`); return its path or URL."""
    return location.write_file(LAYOUT_FILE, lambda tmp: table.to_parquet(tmp, index=False))


def write_metrics(location: Location, metrics: dict[str, Any]) -> str:
    """Write ``metrics.json`` whole (NaN becomes null); return its path or URL."""
    text = json.dumps(json_safe(metrics), indent=2, sort_keys=False)
    return location.write_file(METRICS_FILE, lambda tmp: open(tmp, "w").write(text + "\n"))


def write_map(location: Location, layout: np.ndarray, values: pd.Series | None, title: str, top_k: int) -> str:
    """Render ``map.png`` whole; return its path or URL."""
    from .viz.png import render_map

    modes: list[str] = []
    path = location.write_file(MAP_FILE, lambda tmp: modes.append(render_map(layout, tmp, values, title=title,
                                                                             top_k=top_k)))
    logger.info("wrote %s (%s colours, %d points)", path, modes[0], len(layout))
    return path


def remove_outputs(location: Location) -> None:
    """Delete the files a previous run wrote (only ours, nothing else in the folder);
    ``viewer/`` goes only when it holds our ``data/manifest.json``."""
    for name in OUTPUT_FILES:
        location.remove(name)
    if location.exists(VIEWER_MANIFEST):
        location.remove("viewer")


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, numpy scalars as Python numbers, keys as text (for JSON)."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
