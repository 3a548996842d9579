"""The run store: one Zarr v3 group per stage, each finished by a marker.

A stage writes its group, then its marker (``stage`` in the group's attrs): stage
name, parameters, a fingerprint of its inputs, seconds, package version. A group
without a marker is not done. Sparse matrices use anndata's CSR encoding so other
tools can read them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any

import numpy as np
import scipy.sparse as sp
import zarr

from . import __version__
from .errors import StoreError

logger = logging.getLogger("tsne_dist")

STORE_NAME = "run.zarr"
LAYOUT_VERSION = 1
MARKER_KEY = "stage"
ROW_CHUNK_BYTES = 16 * 2**20


def fingerprint(*parts: Any) -> str:
    """A stable hash of the package version and JSON-serialisable parts (parameters,
    upstream fingerprints): an upgrade recomputes every stage."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def rows_per_chunk(n_cols: int, itemsize: int) -> int:
    """Rows in a chunk of about 16 MB for an array with ``n_cols`` columns."""
    return max(1024, ROW_CHUNK_BYTES // max(1, n_cols * itemsize))


class RunStore:
    """A run's Zarr v3 store at ``OUT/run.zarr``.

    Parameters
    ----------
    out : str
        Output folder of the run.
    identity : dict
        What makes runs comparable (the input source). A store made for another
        identity is refused unless ``overwrite``.
    config : dict
        The resolved config, kept in the root attrs.
    overwrite : bool
        Delete an incompatible store instead of refusing it.
    """

    def __init__(self, out: str, identity: dict[str, Any], config: dict[str, Any], overwrite: bool = False) -> None:
        self.path = os.path.join(out, STORE_NAME)
        if needs_replacing(out, identity, overwrite):
            logger.warning("replacing the run in %s", self.path)
            shutil.rmtree(self.path)
        self.root = zarr.open_group(self.path, mode="a", zarr_format=3)
        self.root.attrs.update({
            "tsne_dist_version": __version__, "layout_version": LAYOUT_VERSION,
            "identity": identity, "config": config,
        })

    # stage markers -------------------------------------------------------
    def marker(self, stage: str) -> dict[str, Any] | None:
        """The marker of ``stage`` or None when the stage is not done."""
        return stored_marker(os.path.dirname(self.path), stage)

    def is_done(self, stage: str, stage_fingerprint: str) -> bool:
        """True when ``stage`` finished with exactly this fingerprint."""
        found = self.marker(stage)
        return found is not None and found.get("fingerprint") == stage_fingerprint

    def begin(self, stage: str) -> zarr.Group:
        """Delete whatever ``stage`` held and return its fresh, unmarked group."""
        if stage in self.root:
            del self.root[stage]
        return self.root.create_group(stage)

    def finish(self, stage: str, stage_fingerprint: str, params: dict[str, Any], seconds: float,
               extra: dict[str, Any] | None = None) -> None:
        """Write the marker that declares ``stage`` done."""
        marker = {
            "stage": stage, "fingerprint": stage_fingerprint, "params": params,
            "seconds": round(seconds, 3), "tsne_dist_version": __version__, **(extra or {}),
        }
        self.root[stage].attrs.update({MARKER_KEY: json.loads(json.dumps(marker, default=str))})

    # arrays --------------------------------------------------------------
    def group(self, stage: str) -> zarr.Group:
        """The group of a stage (read or write)."""
        return self.root[stage]


def needs_replacing(out: str, identity: dict[str, Any], overwrite: bool) -> bool:
    """Whether ``OUT/run.zarr`` must be deleted before this run; never deletes anything.

    A store of ours made for the same input is reused. One made for other input
    is replaced only with ``overwrite`` (or when it holds no finished stage);
    anything else in its place is refused.

    Raises
    ------
    StoreError
        When the store cannot be reused and ``overwrite`` is not given.
    """
    path = os.path.join(out, STORE_NAME)
    if not os.path.exists(path):
        return False
    try:
        root = zarr.open_group(path, mode="r")
        attrs = root.attrs.asdict()
    except Exception:  # noqa: BLE001 - any unreadable store is not ours to reuse
        attrs, root = {}, None
    if "layout_version" not in attrs:
        if overwrite:
            return True
        raise StoreError(f"{path} exists and is not a tsne_dist run store",
                         "choose a new --out folder, or pass --overwrite to replace it")
    if attrs.get("layout_version") != LAYOUT_VERSION:
        problem = f"store layout version {attrs.get('layout_version')} (this version writes {LAYOUT_VERSION})"
    elif attrs.get("identity") != identity:
        problem = f"other input ({_describe_identity(attrs.get('identity'))}, now {_describe_identity(identity)})"
    else:
        return False
    finished = any(root[name].attrs.asdict().get(MARKER_KEY) for name in root.group_keys())
    if finished and not overwrite:
        raise StoreError(f"{path} holds a run made from {problem}",
                         "choose a new --out folder, or pass --overwrite to replace that run")
    return True


def stored_marker(out: str, stage: str) -> dict[str, Any] | None:
    """The marker of ``stage`` in ``OUT/run.zarr``, read-only; None if absent or unreadable."""
    try:
        return zarr.open_group(os.path.join(out, STORE_NAME), path=stage, mode="r").attrs.asdict().get(MARKER_KEY)
    except Exception:  # noqa: BLE001 - missing or half-written groups are "not done"
        return None


def write_array(group: zarr.Group, name: str, data: np.ndarray) -> zarr.Array:
    """Write ``data`` as a row-chunked array named ``name`` in ``group``."""
    n_cols = int(np.prod(data.shape[1:])) if data.ndim > 1 else 1
    itemsize = data.dtype.itemsize if data.dtype.kind in "biuf" else 16
    chunk_rows = min(max(1, data.shape[0]), rows_per_chunk(n_cols, itemsize))
    chunks = (chunk_rows, *data.shape[1:])
    dtype = str if data.dtype.kind in "OUT" else data.dtype
    array = group.create_array(name, shape=data.shape, chunks=chunks, dtype=dtype, overwrite=True)
    if data.shape[0]:
        array[...] = data.astype(str) if dtype is str else data
    return array


def write_csr(group: zarr.Group, matrix: sp.csr_matrix) -> None:
    """Write a CSR matrix in anndata's encoding (data f32, indices i32, indptr i64)."""
    matrix = matrix.tocsr()
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(matrix.shape)})
    write_array(group, "data", matrix.data.astype(np.float32))
    write_array(group, "indices", matrix.indices.astype(np.int32))
    write_array(group, "indptr", matrix.indptr.astype(np.int64))


def read_csr(group: zarr.Group) -> sp.csr_matrix:
    """Read a CSR matrix written by :func:`write_csr`."""
    attrs = group.attrs.asdict()
    if attrs.get("encoding-type") != "csr_matrix":
        raise ValueError(f"group {group.path} is not a csr_matrix")
    shape = tuple(attrs["shape"])
    return sp.csr_matrix((group["data"][:], group["indices"][:], group["indptr"][:]), shape=shape)


def _describe_identity(identity: Any) -> str:
    if not isinstance(identity, dict):
        return "unknown input"
    return ", ".join(f"{key}={value}" for key, value in sorted(identity.items()) if value is not None)
