"""What a run leaves in OUT: layout.parquet, map.png, metrics.json, written atomically."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .errors import StoreError

logger = logging.getLogger("tsne_dist")

LAYOUT_FILE = "layout.parquet"
MAP_FILE = "map.png"
METRICS_FILE = "metrics.json"
OUTPUT_FILES = (LAYOUT_FILE, MAP_FILE, METRICS_FILE)


def prepare_out_dir(out: str) -> str:
    """Create ``out`` if needed and prove it is writable; return its absolute path.

    Raises
    ------
    StoreError
        When the folder cannot be created or written.
    """
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"output path {out} exists and is not a folder", "set `out` to a folder path")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StoreError(f"cannot write to output folder {out} ({exc.strerror or exc})",
                         "set `out` to a folder you can write to") from None
    return path


def current_umask() -> int:
    """The process's umask, read from /proc where it can be (setting it to read it would
    change it for every thread for a moment)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str, directory: bool = False) -> None:
    """Give ``path`` the mode a newly created file (or folder) would get under the umask.

    Temporary files and folders are private (0600 / 0700); outputs renamed from
    them must be readable like any other file the user creates.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename into ``path``, so no half file is ever seen.

    The file gets the mode the umask gives new files.
    """
    folder, name = os.path.split(path)
    handle, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=f".tmp{os.path.splitext(name)[1]}")
    os.close(handle)
    try:
        write(tmp_path)
        follow_umask(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


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


def write_layout(out: str, table: pd.DataFrame) -> str:
    """Write ``layout.parquet`` atomically; return its path."""
    path = os.path.join(out, LAYOUT_FILE)
    write_atomically(path, lambda tmp: table.to_parquet(tmp, index=False))
    return path


def write_metrics(out: str, metrics: dict[str, Any]) -> str:
    """Write ``metrics.json`` atomically (NaN becomes null); return its path."""
    path = os.path.join(out, METRICS_FILE)
    text = json.dumps(_json_safe(metrics), indent=2, sort_keys=False)
    write_atomically(path, lambda tmp: open(tmp, "w").write(text + "\n"))
    return path


def write_map(out: str, layout: np.ndarray, values: pd.Series | None, title: str, top_k: int) -> str:
    """Render ``map.png`` atomically; return its path."""
    from .viz.png import render_map

    path = os.path.join(out, MAP_FILE)
    modes: list[str] = []
    write_atomically(path, lambda tmp: modes.append(render_map(layout, tmp, values, title=title, top_k=top_k)))
    logger.info("wrote %s (%s colours, %d points)", path, modes[0], len(layout))
    return path


def remove_outputs(out: str) -> None:
    """Delete the files a previous run wrote (only ours, nothing else in the folder);
    ``viewer/`` goes only when it holds our ``data/manifest.json``."""
    for name in OUTPUT_FILES:
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    viewer = os.path.join(out, "viewer")
    if os.path.isfile(os.path.join(viewer, "data", "manifest.json")):
        shutil.rmtree(viewer)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
