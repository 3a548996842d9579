"""Write ``OUT/viewer/``: the browser viewer's bundle plus compact binary data.

The folder is static: ``tsne-dist view OUT`` serves it, and it works copied to any
static web host. Data files (all little-endian, listed in ``data/manifest.json``):

- ``positions``: (N, 2) float32, x and y interleaved, scaled into [-1, 1] with the
  aspect ratio kept (the manifest holds the scale to map back).
- per metadata column: ``category`` columns as uint8/uint16 codes into a dictionary
  held in the manifest (with counts; code 0 is "missing"); ``number`` columns as
  float32 (NaN for missing); ``text`` columns (too many distinct values to colour by)
  as a UTF-8 blob plus per-item byte lengths.
- ``ids``: a text column.
- ``knn``: the first ``n_neighbors`` high-D neighbours of each item, bit-packed with
  ceil(log2 N) bits per index (20 bits at one million items instead of 32).
- ``kept``: uint8 per item, the tie-aware count of its nearest map neighbours that
  are true high-D neighbours (see :mod:`.kept`).
- ``outlier``: float32 outlier scores (see :func:`outlier_scores`).
- with ``compare``: ``positions_compare``, a second layout aligned on shared ids, and a
  ``displacement`` number column (how far each item moves, in median map-neighbour
  distances) to colour by.

A file is stored gzip-compressed (name ending ``.gz``) when that saves at least 10%;
the viewer recognises gzip by its magic bytes and inflates it with the browser's
DecompressionStream, so no web server configuration is needed.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, StoreError
from ..stability import displacements, fit_onto, shared_items
from .kept import kept_counts

logger = logging.getLogger("tsne_dist")

VIEWER_DIR = "viewer"
DATA_DIR = "data"
MANIFEST = "manifest.json"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
BUNDLE_FILES = ("index.html", "viewer.js", "viewer.css", "spatial-worker.js")
MAX_CATEGORIES = 65_535
VIEWER_NEIGHBORS = 15
TOP_OUTLIERS = 0.01
FORMAT_VERSION = 1
DISPLACEMENT_COLUMN = "displacement"


@dataclass
class ViewerExport:
    """What :func:`export_viewer` wrote.

    Attributes
    ----------
    path : str
        The ``OUT/viewer`` folder.
    data_bytes : int
        Size of the data files (``data/``) on disk.
    manifest : dict
        The manifest written to ``data/manifest.json``.
    """

    path: str
    data_bytes: int
    manifest: dict[str, Any]


def bundle_available() -> bool:
    """True when the built viewer bundle is installed in ``tsne_dist/viz/static``."""
    return all(os.path.isfile(os.path.join(STATIC_DIR, name)) for name in BUNDLE_FILES)


def export_viewer(out: str, compare: str | None = None, *, color_by: str | None = None,
                  n_neighbors: int = VIEWER_NEIGHBORS, compress_level: int = 6,
                  storage_options: dict[str, Any] | None = None) -> ViewerExport:
    """Write ``OUT/viewer/`` for the finished run in ``out``.

    Parameters
    ----------
    out : str
        A run's output location (holding ``layout.parquet`` and ``run.zarr``): a
        local folder or an fsspec URL (``s3://bucket/maps/a``).
    compare : str, optional
        Another run's output location; its layout becomes a second layout that the
        viewer can animate to, aligned on shared ids (see :func:`tsne_dist.stability.align_layout`).
    color_by : str, optional
        The column the viewer opens coloured by; default the run's ``color_by``
        (else the first category column).
    n_neighbors : int
        High-D neighbours kept per item for the click view (at most the run's k).
    compress_level : int
        gzip level for data files.
    storage_options : dict, optional
        fsspec options for URLs (endpoint, credentials).

    Returns
    -------
    ViewerExport

    Raises
    ------
    StoreError
        When ``out`` holds no finished run, or the viewer bundle is not installed.

    Notes
    -----
    The folder appears whole: on a local disk it is written beside and renamed into
    place; on object storage it is uploaded with ``data/manifest.json`` last.
    """
    from ..outputs import LAYOUT_FILE, METRICS_FILE
    from ..storage import Location

    location = Location(out, storage_options)
    if not bundle_available():
        raise StoreError(f"the viewer bundle is not installed in {STATIC_DIR}",
                         'reinstall tsne-dist with Node.js and npm on PATH (pip install -e ".")')
    table = _read_layout(location, LAYOUT_FILE)
    check_viewer_folder(location)
    if not location.is_local:
        location.check_writable()  # credentials that may read but not write fail here, in one line
    store = _open_store(location)
    high_d = _read_high_d(store, len(table))
    color_by = color_by if color_by is not None else _stored_color_by(store)
    second = None
    if compare:
        *second, moved = _compare_layout(table, Location(compare, storage_options), LAYOUT_FILE)
        if DISPLACEMENT_COLUMN in table:  # a metadata column of that name keeps its values, under another name
            table = table.rename(columns={DISPLACEMENT_COLUMN: f"meta_{DISPLACEMENT_COLUMN}"})
        table[DISPLACEMENT_COLUMN] = moved  # a number column: the viewer can colour by it
    metrics = json.loads(location.read_bytes(METRICS_FILE)) if location.exists(METRICS_FILE) else None
    tmp = tempfile.mkdtemp(dir=location.url if location.is_local else None, prefix=".viewer-")
    try:
        for entry in os.scandir(STATIC_DIR):  # the bundle and its third-party licence notices
            if entry.is_file():
                shutil.copyfile(entry.path, os.path.join(tmp, entry.name))
        manifest = _write_data(os.path.join(tmp, DATA_DIR), table, high_d, second, color_by,
                               n_neighbors, compress_level, _name_of(location.url), metrics)
        data_bytes = sum(entry.stat().st_size for entry in os.scandir(os.path.join(tmp, DATA_DIR)))
        final = _place(tmp, location)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    logger.info("viewer written to %s (%.2f MB of data for %d items); tsne-dist view %s serves it", final,
                data_bytes / 1e6, len(table), location.url)
    return ViewerExport(path=final, data_bytes=data_bytes, manifest=manifest)


def _place(tmp: str, location) -> str:
    """Put the finished viewer folder ``tmp`` at ``location``/viewer, replacing ours; return where it is."""
    from ..storage import follow_umask

    if not location.is_local:
        return location.put_folder(tmp, VIEWER_DIR, last=f"{DATA_DIR}/{MANIFEST}")
    for folder, _, files in os.walk(tmp):
        follow_umask(folder, directory=True)
        for name in files:
            follow_umask(os.path.join(folder, name))
    final = os.path.join(location.url, VIEWER_DIR)
    if os.path.isdir(final):
        shutil.rmtree(final)  # our own folder, replaced whole
    os.replace(tmp, final)
    return final


def _name_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] if "://" in url else os.path.basename(os.path.normpath(url))


def check_viewer_folder(location) -> None:
    """Raise :class:`StoreError` when ``location`` (a :class:`~tsne_dist.storage.Location`)
    holds a ``viewer/`` that we did not write.

    tsne-dist replaces only its own viewer (one with ``data/manifest.json``); a run
    checks this before its first stage, so it never computes a map it cannot finish.
    """
    if location.exists(VIEWER_DIR) and not location.exists(VIEWER_DIR, DATA_DIR, MANIFEST):
        raise StoreError(f"{location.join(VIEWER_DIR)} exists and is not a viewer we wrote (no {DATA_DIR}/{MANIFEST})",
                         "move it away; tsne-dist replaces only its own viewer/")


def _read_layout(location, layout_file: str, columns: list[str] | None = None) -> pd.DataFrame:
    if not location.exists(layout_file):
        raise StoreError(f"{location.url} holds no finished run (no {layout_file})",
                         "run tsne-dist run --out to make one first")
    with location.open(layout_file) as handle:
        return pd.read_parquet(handle, columns=columns)


def _open_store(location):
    """The run's store, read-only, or None (with a warning) when it cannot be opened."""
    from ..store import RunStore

    try:
        return RunStore.open(location.url, storage_options=location.storage_options)
    except (StoreError, ValueError, FileNotFoundError) as exc:
        logger.warning("viewer: the run store cannot be read (%s); no click view, default colours", exc)
        return None


@dataclass
class _HighD:
    """What the run store holds of the high-D side (each None when absent)."""

    indices: np.ndarray | None = None
    distances: np.ndarray | None = None
    n_real: np.ndarray | None = None  # interactions path: real (not padded) neighbours per item
    vectors: np.ndarray | None = None  # only when the kNN graph was searched on them
    metric: str = "euclidean"


def _read_high_d(store, n_items: int) -> _HighD:
    """The run's kNN indices and distances, and its vectors and metric, from the store."""
    if store is None or not store.has("knn", "indices"):
        logger.warning("viewer: no kNN graph in the run store; the click view will be empty")
        return _HighD()
    indices = store.read("knn", "indices")
    if indices.shape[0] != n_items:
        logger.warning("viewer: kNN graph has %d rows for %d items; not exported", indices.shape[0], n_items)
        return _HighD()
    distances = store.read("knn", "distances") if store.has("knn", "distances") else None
    n_real = store.read("knn", "n_real") if store.has("knn", "n_real") else None
    # the kNN stage's own record says whether it searched vectors (and in which metric) or the similarity graph
    knn_params = (store.marker("knn") or {}).get("params", {})
    metric = knn_params.get("metric")
    with_vectors = (metric is not None and distances is not None and store.has("vectors", "vectors")
                    and store.shape("vectors", "vectors")[0] == n_items)
    return _HighD(indices=indices, distances=distances, n_real=n_real, metric=metric or "euclidean",
                  vectors=store.read("vectors", "vectors") if with_vectors else None)


def _stored_color_by(store) -> str | None:
    """The ``color_by`` the run was asked for (None when absent)."""
    return None if store is None else store.run_attrs().get("config", {}).get("color_by")


def _compare_layout(table: pd.DataFrame, other_location,
                    layout_file: str) -> tuple[np.ndarray, int, str, np.ndarray]:
    """The other run's layout aligned onto this one, the shared count, its name, and each item's displacement."""
    compare = other_location.url
    if not other_location.exists(layout_file):
        raise StoreError(f"--compare {compare} holds no finished run (no {layout_file})",
                         "pass the output folder of another finished run")
    other = _read_layout(other_location, layout_file, columns=["id", "x", "y"])
    xy = table[["x", "y"]].to_numpy(np.float64)
    shared = shared_items(table["id"].to_numpy(), other["id"].to_numpy())
    if len(shared) < 3:
        raise InputError(f"--compare {compare} shares {len(shared)} ids with this run (at least 3 needed)",
                         "compare two runs of the same catalog")
    fitted = fit_onto(xy, other[["x", "y"]].to_numpy(np.float64), shared)
    aligned = xy.copy()  # items the other run lacks keep their own position
    aligned[shared.rows_a] = fitted[shared.rows_b]
    moved = np.full(len(table), np.nan)  # in this map's median nearest-neighbour distances; NaN: not in the other
    moved[shared.rows_a] = displacements(xy, fitted, shared)
    return aligned, len(shared), _name_of(compare), moved


def outlier_scores(distances: np.ndarray, k: int) -> np.ndarray:
    """k-distance outlier score: distance to the k-th high-D neighbour over its median.

    An item whose k-th nearest neighbour is much farther than is typical sits alone
    in the original space (Ramaswamy, Rastogi & Shim 2000). 1 is typical; 3 means
    three times the usual neighbourhood radius. Computed from the stored kNN
    distances, so it costs O(N) and judges the vectors, not the map.

    Parameters
    ----------
    distances : np.ndarray
        (N, K) sorted kNN distances from the run store.
    k : int
        Which neighbour (1-based, at most K).

    Returns
    -------
    np.ndarray
        (N,) float32 scores.
    """
    kth = distances[:, min(k, distances.shape[1]) - 1].astype(np.float64)
    median = float(np.median(kth))
    if not math.isfinite(median) or median <= 0:
        positive = kth[kth > 0]
        median = float(np.median(positive)) if positive.size else 1.0
    return (kth / median).astype(np.float32)


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers below 2**bits into a little-endian bit stream.

    Value ``i`` occupies bits ``i*bits`` to ``(i+1)*bits - 1`` (bit 0 is the lowest
    bit of byte 0). Four zero bytes are appended so a reader may always load 32 bits.
    """
    flat = np.ascontiguousarray(values, dtype=np.uint32).ravel()
    chunks = []
    step = 1 << 20  # a multiple of 8 values, so every chunk ends on a byte boundary
    for start in range(0, flat.size, step):
        part = flat[start:start + step]
        bit_matrix = np.unpackbits(part.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")[:, :bits]
        chunks.append(np.packbits(bit_matrix.ravel(), bitorder="little").tobytes())
    return b"".join(chunks) + b"\0\0\0\0"


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits` (for tests and tools)."""
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: count * bits]
    weights = (1 << np.arange(bits, dtype=np.uint64))
    return (stream.reshape(count, bits).astype(np.uint64) @ weights).astype(np.int64)


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA (lists and other containers are values, not missing)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text_blob(values: pd.Series) -> tuple[bytes, np.ndarray]:
    encoded = [b"" if _missing(value) else str(value).encode("utf-8") for value in values.tolist()]
    lengths = np.fromiter((len(item) for item in encoded), dtype=np.int64, count=len(encoded))
    return b"".join(encoded), lengths


def _smallest_uint(max_value: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{max_value} does not fit in 32 bits")


class _DataWriter:
    """Writes data files into one folder, gzip-compressed when that saves >= 10%."""

    def __init__(self, folder: str, level: int) -> None:
        self.folder = folder
        self.level = level
        os.makedirs(folder)

    def write(self, stem: str, payload: bytes | np.ndarray) -> str:
        raw = payload.tobytes() if isinstance(payload, np.ndarray) else payload
        packed = gzip.compress(raw, compresslevel=self.level, mtime=0) if self.level > 0 else raw
        name, data = (f"{stem}.gz", packed) if len(packed) <= 0.9 * len(raw) else (stem, raw)
        with open(os.path.join(self.folder, name), "wb") as handle:
            handle.write(data)
        return name


def _column_entry(writer: _DataWriter, index: int, name: str, values: pd.Series, n_items: int) -> dict[str, Any]:
    stem = f"col{index}"
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.map({True: "true", False: "false"})
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        finite = numbers[np.isfinite(numbers)]
        return {"name": str(name), "kind": "number",
                "file": writer.write(stem, numbers.astype("<f4")),
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
                "missing": int(numbers.size - finite.size)}
    text = pd.Series([None if _missing(value) else str(value) for value in values.tolist()], dtype=object)
    codes, uniques = pd.factorize(text, sort=False)
    if len(uniques) <= MAX_CATEGORIES and (len(uniques) <= 20 or len(uniques) <= n_items // 2):
        counts = np.bincount(codes + 1, minlength=len(uniques) + 1)  # code 0: missing
        order = np.argsort(-counts[1:], kind="stable")  # most frequent first: code 1 is the largest
        recode = np.zeros(len(uniques) + 1, dtype=np.int64)
        recode[order + 1] = np.arange(1, len(uniques) + 1)
        stored = recode[codes + 1]
        return {"name": str(name), "kind": "category",
                "file": writer.write(stem, stored.astype(_smallest_uint(len(uniques)).newbyteorder("<"))),
                "dtype": _smallest_uint(len(uniques)).name,
                "categories": [str(uniques[i]) for i in order],
                "counts": [int(counts[i + 1]) for i in order],
                "missing": int(counts[0])}
    return _text_entry(writer, stem, str(name), text)


def _text_entry(writer: _DataWriter, stem: str, name: str, values: pd.Series) -> dict[str, Any]:
    blob, lengths = _text_blob(values)
    dtype = _smallest_uint(int(lengths.max()) if lengths.size else 0)
    return {"name": name, "kind": "text", "file": writer.write(stem, blob),
            "lengths": writer.write(f"{stem}_len", lengths.astype(dtype.newbyteorder("<"))),
            "lengths_dtype": dtype.name}


def _normaliser(*layouts: np.ndarray) -> tuple[np.ndarray, float]:
    stacked = np.concatenate([xy[np.isfinite(xy).all(axis=1)] for xy in layouts])
    if stacked.size == 0:
        return np.zeros(2), 1.0
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    centre = (low + high) / 2
    half = float((high - low).max()) / 2 * 1.02
    return centre, half if half > 0 else 1.0


def _write_data(folder: str, table: pd.DataFrame, high_d: _HighD, second: tuple[np.ndarray, int, str] | None,
                color_by: str | None, n_neighbors: int, level: int, name: str,
                metrics: dict[str, Any] | None) -> dict[str, Any]:
    writer = _DataWriter(folder, level)
    n_items = len(table)
    xy = table[["x", "y"]].to_numpy(np.float64)
    centre, half = _normaliser(xy, *([second[0]] if second else []))
    positions = ((xy - centre) / half).astype("<f4")
    layouts = [{"name": name, "file": writer.write("positions", positions)}]
    if second:
        layouts.append({"name": second[2], "n_shared": second[1],
                        "file": writer.write("positions_compare", ((second[0] - centre) / half).astype("<f4"))})
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION, "n_items": n_items, "layouts": layouts,
        "transform": {"centre": centre.tolist(), "half_range": half},
        "ids": _text_entry(writer, "ids", "id", table["id"]),
        "columns": [], "knn": None, "outlier": None,
        "color_by": None,
    }
    for index, name in enumerate(column for column in table.columns if column not in ("id", "x", "y")):
        manifest["columns"].append(_column_entry(writer, index, name, table[name], n_items))
    colourable = {entry["name"] for entry in manifest["columns"] if entry.get("kind") in ("category", "number")}
    manifest["color_by"] = color_by if color_by in colourable else None  # a text column cannot colour the map
    knn_indices, knn_distances = high_d.indices, high_d.distances
    if knn_indices is not None and n_items > 1:
        k = min(n_neighbors, knn_indices.shape[1])
        bits = max(1, int(math.ceil(math.log2(n_items))))
        if bits > 25:
            logger.warning("viewer: %d items need %d bits per neighbour index; the click view is left out", n_items, bits)
        else:
            manifest["knn"] = {"k": k, "bits": bits, "file": writer.write("knn", pack_bits(knn_indices[:, :k], bits))}
            if knn_distances is not None:
                kept = kept_counts(positions, knn_indices, knn_distances, k, vectors=high_d.vectors,
                                   metric=high_d.metric, n_real=high_d.n_real)
                manifest["knn"]["kept"] = writer.write("kept", kept)
                manifest["knn"]["kept_definition"] = (
                    f"of the {k} nearest items on the map, those at most as far in high-D as the {k}-th listed "
                    "neighbour (ties included)" if high_d.vectors is not None else
                    f"of the {k} nearest items on the map, those among the real (not padded) neighbours the run "
                    f"stored ({knn_indices.shape[1]} per item) at most as far as the {k}-th listed one "
                    "(ties included)")
    if knn_distances is not None and n_items > 1:
        k = min(n_neighbors, knn_distances.shape[1])
        scores = outlier_scores(knn_distances, k)
        n_top = max(1, int(round(TOP_OUTLIERS * n_items)))
        top = np.argsort(-scores, kind="stable")[:n_top]
        manifest["outlier"] = {
            "file": writer.write("outlier", scores.astype("<f4")), "k": k,
            "definition": f"distance to the {k}-th high-D neighbour / its median over all items",
            "top": writer.write("outlier_top", np.sort(top).astype("<u4")), "n_top": int(n_top),
            "threshold": float(scores[top[-1]]),
        }
    if metrics is not None:
        manifest["metrics"] = {key: metrics.get(key) for key in ("knn_recall@10", "trustworthiness@10", "engine",
                                                                  "repulsion", "perplexity", "kl_divergence") if key in metrics}
    with open(os.path.join(folder, MANIFEST), "w") as handle:
        json.dump(manifest, handle, separators=(",", ":"))
    return manifest
