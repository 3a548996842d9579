"""The run store: one Zarr v3 group per stage, each finished by a marker.

:class:`RunStore` owns every read and write of ``OUT/run.zarr`` and every name in
it; nothing else opens the store. A stage writes its group, then its marker
(``stage`` in the group's attrs): stage name, parameters, a fingerprint of its
inputs, seconds, package version. A group without a marker is not done. Sparse
matrices use anndata's CSR encoding so other tools can read them.

The root attrs hold the run's ``identity`` (its input source), ``config`` (the
settings as the user asked for them) and ``resolved`` (what the plan resolved them
to: engine, kNN backend, k, learning rates, each with its reason).

A location is a local path or an fsspec URL (``memory://``, ``file://``,
``s3://`` with s3fs installed, ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from fsspec.implementations.dirfs import DirFileSystem
import numpy as np
import scipy.sparse as sp
import zarr

from .arrays import read_csr, write_array, write_csr
from .errors import StoreError
from .storage import Location, is_url, normalise_location, storage_errors
from .version import __version__

logger = logging.getLogger("tsne_dist")

STORE_NAME = "run.zarr"
# What reading a folder or group that is not (or not yet) a whole Zarr group of ours raises
NOT_A_STORE = (FileNotFoundError, KeyError, ValueError, TypeError, zarr.errors.BaseZarrError)
LAYOUT_VERSION = 1
MARKER_KEY = "stage"
# Scratch folders beside the store, for the co-occurrence stages (removed when done)
COOCCURRENCE_PARTS = ".cooccurrence-parts"
SPILLED_LOG = ".cooccurrence-log"


def fingerprint(*parts: Any) -> str:
    """A stable hash of the package version and JSON-serialisable parts (parameters,
    upstream fingerprints): an upgrade recomputes every stage."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RunStore:
    """A run's Zarr v3 store at ``LOCATION/run.zarr``.

    Open one with :meth:`open` (read-only) or :meth:`for_run` (to write a run).

    Parameters
    ----------
    location : str
        The run's output folder: a local path or an fsspec URL.
    storage_options : dict, optional
        fsspec options for a URL (endpoint, credentials).
    """

    def __init__(self, location: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.location = normalise_location(location)
        self.storage_options = dict(storage_options or {})
        self.place = Location(self.location, self.storage_options)  # the output location the store lives in
        self.url = self.place.join(STORE_NAME)
        self._root: zarr.Group | None = None

    # opening -------------------------------------------------------------
    @classmethod
    def open(cls, location: str, *, storage_options: dict[str, Any] | None = None) -> "RunStore":
        """The store of an existing run, read-only.

        Raises
        ------
        StoreError
            When ``location`` holds no run store.
        """
        store = cls(location, storage_options=storage_options)
        if not store.exists():
            raise StoreError(f"{location} holds no tsne_dist run ({STORE_NAME} is missing)",
                             "pass the output folder of a run")
        with storage_errors(store.place):
            try:
                store._root = zarr.open_group(store.url, mode="r", **store._open_options())
            except NOT_A_STORE:
                raise StoreError(f"{store.url} is not a complete tsne_dist run store (no root metadata)",
                                 "rerun the run that writes it, or pass another run's folder") from None
        return store

    @classmethod
    def for_run(cls, location: str, identity: dict[str, Any], config: dict[str, Any], *, overwrite: bool = False,
                storage_options: dict[str, Any] | None = None) -> "RunStore":
        """The store to write a run into: reused, replaced or created.

        Parameters
        ----------
        location : str
            Output folder (path or URL).
        identity : dict
            What makes runs comparable (the input source). A store made for
            another identity is refused unless ``overwrite``.
        config : dict
            The settings as asked for, kept in the root attrs.
        overwrite : bool
            Delete an incompatible store instead of refusing it.

        Raises
        ------
        StoreError
            See :meth:`check_reusable`.
        """
        store = cls(location, storage_options=storage_options)
        if store.check_reusable(identity, overwrite):
            logger.warning("replacing the run in %s", store.url)
            store.delete()
        store._root = zarr.open_group(store.url, mode="a", zarr_format=3, **store._open_options())
        store._root.attrs.update({"tsne_dist_version": __version__, "layout_version": LAYOUT_VERSION,
                                  "identity": identity, "config": config, "resolved": {}})
        return store

    @classmethod
    def seeded_from(cls, location: str, source: "RunStore", stages: tuple[str, ...], *,
                    storage_options: dict[str, Any] | None = None) -> "RunStore":
        """A new store at ``location`` holding copies of ``source``'s finished ``stages`` (and its
        root attrs), so a run there with the same settings for those stages skips them.

        The location must hold no store yet; stages ``source`` has not finished are not
        copied. Both stores must be on the same file system (e.g. folders of one bucket).

        Parameters
        ----------
        location : str
            The new run's output folder (path or URL).
        source : RunStore
            A store open for reading.
        stages : tuple of str
            Stage groups to copy when ``source`` finished them (``items`` goes with a
            finished ``vectors`` stage, which writes it).
        storage_options : dict, optional
            fsspec options for a URL.

        Returns
        -------
        RunStore
            Not opened (a run opens it with :meth:`for_run`).

        Raises
        ------
        StoreError
            When a store already exists at ``location``.
        """
        store = cls(location, storage_options=storage_options)
        if store.exists():
            raise StoreError(f"{store.url} already holds a store", "choose an empty folder")
        present = source.stages()
        # the vector path writes items/ids inside its vectors stage, with no marker of its own
        done = [stage for stage in stages if stage in present
                and (source.marker(stage) or (stage == "items" and source.marker("vectors")))]
        fs = store.place.fs
        source_root, target_root = source.place.fs_path(STORE_NAME), store.place.fs_path(STORE_NAME)
        files = [path for stage in done for path in sorted(fs.find(f"{source_root}/{stage}"))]
        # data first, then each group's zarr.json (its marker), the root's last: a copy cut short
        # has no root metadata, so it is never taken for a store (see ``seed_is_complete``)
        ordered = ([path for path in files if not path.endswith("/zarr.json")]
                   + [path for path in files if path.endswith("/zarr.json")] + [f"{source_root}/zarr.json"])
        with storage_errors(store.place, "write to output location"):
            for path in ordered:
                target = target_root + path[len(source_root):]
                if not store.place.is_object_store:  # object stores have no folders
                    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                fs.cp_file(path, target)
        logger.info("copied the finished stages %s of %s into %s", ", ".join(done), source.url, store.url)
        return store

    def seed_is_complete(self) -> bool:
        """False when a :meth:`seeded_from` copy was cut short (no root metadata yet)."""
        return self.place.exists(STORE_NAME, "zarr.json")

    def _open_options(self) -> dict[str, Any]:
        return {"storage_options": self.storage_options} if is_url(self.url) and self.storage_options else {}

    def exists(self) -> bool:
        """True when something is at the store's place (ours or not).

        Raises
        ------
        StoreError
            When the storage cannot be reached (endpoint, credentials).
        """
        return self.place.exists(STORE_NAME)

    def delete(self) -> None:
        """Delete the whole store."""
        self.place.remove(STORE_NAME)
        self._root = None

    def check_reusable(self, identity: dict[str, Any], overwrite: bool) -> bool:
        """Whether the store must be deleted before this run; never deletes anything.

        A store of ours made for the same input is reused. One made for other
        input is replaced only with ``overwrite`` (or when it holds no finished
        stage); anything else in its place is refused.

        Returns
        -------
        bool
            True when the store must be replaced.

        Raises
        ------
        StoreError
            When the store cannot be reused and ``overwrite`` is not given.
        """
        if not self.exists():
            return False
        try:
            with storage_errors(self.place):  # unreachable: refuse, delete nothing
                root = zarr.open_group(self.url, mode="r", **self._open_options())
                attrs = root.attrs.asdict()
        except NOT_A_STORE:  # something that is not a Zarr group of ours is not ours to reuse
            attrs, root = {}, None
        if "layout_version" not in attrs:
            if overwrite:
                return True
            raise StoreError(f"{self.url} exists and is not a tsne_dist run store",
                             "choose a new `out` folder, or pass `overwrite` to replace it")
        if attrs.get("layout_version") != LAYOUT_VERSION:
            problem = f"store layout version {attrs.get('layout_version')} (this version writes {LAYOUT_VERSION})"
        elif attrs.get("identity") != identity:
            problem = f"other input ({_describe_identity(attrs.get('identity'))}, now {_describe_identity(identity)})"
        else:
            return False
        finished = any(root[name].attrs.asdict().get(MARKER_KEY) for name in root.group_keys())
        if finished and not overwrite:
            raise StoreError(f"{self.url} holds a run made from {problem}",
                             "choose a new `out` folder, or pass `overwrite` to replace that run")
        return True

    @property
    def root(self) -> zarr.Group:
        """The open Zarr root group."""
        if self._root is None:
            raise RuntimeError(f"{self.url} is not open: use RunStore.open or RunStore.for_run")
        return self._root

    # run-level attributes ------------------------------------------------
    def run_attrs(self) -> dict[str, Any]:
        """Root attrs: ``tsne_dist_version``, ``identity``, ``config``, ``resolved`` (empty until
        the plan's size-dependent choices are made) and ``drawn`` (see :meth:`record_drawn`)."""
        return self.root.attrs.asdict()

    def record_resolved(self, resolved: dict[str, Any]) -> None:
        """Store what the plan resolved (beside, never over, the requested config)."""
        self.root.attrs.update({"resolved": json.loads(json.dumps(resolved, default=str))})

    def record_drawn(self, drawing_fingerprint: str) -> None:
        """Store the fingerprint of what ``map.png`` and ``viewer/`` were drawn from (a rerun
        with the same one does not redraw them)."""
        self.root.attrs.update({"drawn": drawing_fingerprint})

    # stage markers -------------------------------------------------------
    def stages(self) -> list[str]:
        """Names of the stage groups present (done or not)."""
        return sorted(self.root.group_keys())

    def marker(self, stage: str) -> dict[str, Any] | None:
        """The marker of ``stage`` or None when the stage is not done."""
        with storage_errors(self.place):  # unreachable is an error, not "not done"
            if stage not in self.root:
                return None
            try:
                return self.root[stage].attrs.asdict().get(MARKER_KEY)
            except NOT_A_STORE:  # a half-written group is "not done"
                return None

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
        """The group of a stage, for the algorithm code that streams it (e.g. CSR row blocks)."""
        return self.root[stage]

    def has(self, stage: str, name: str) -> bool:
        """True when ``stage`` holds an array ``name``."""
        return stage in self.root and name in self.root[stage]

    def read(self, stage: str, name: str) -> np.ndarray:
        """The whole array ``stage/name``."""
        return self.root[stage][name][...]

    def shape(self, stage: str, name: str) -> tuple[int, ...]:
        """Shape of ``stage/name`` without reading it."""
        return tuple(self.root[stage][name].shape)

    def attrs(self, stage: str) -> dict[str, Any]:
        """The attrs of a stage group (its marker included)."""
        return self.root[stage].attrs.asdict() if stage in self.root else {}

    def read_ids(self) -> np.ndarray:
        """Item ids (``items/ids``): integers as int64, text as an object array."""
        ids = self.read("items", "ids")
        return ids if ids.dtype.kind in "iu" else ids.astype(object)

    def read_csr(self, stage: str) -> sp.csr_matrix:
        """The CSR matrix a stage holds (anndata encoding)."""
        return read_csr(self.root[stage])

    @staticmethod
    def write(group: zarr.Group, name: str, data: np.ndarray) -> None:
        """Write ``data`` as a row-chunked array into a stage's group."""
        write_array(group, name, data)

    @staticmethod
    def write_csr(group: zarr.Group, matrix: sp.csr_matrix) -> None:
        """Write a CSR matrix (anndata encoding) into a stage's group."""
        write_csr(group, matrix)

    # scratch -------------------------------------------------------------
    def scratch(self, name: str) -> DirFileSystem:
        """A scratch folder beside the store (``COOCCURRENCE_PARTS``, ``SPILLED_LOG``), as a
        filesystem rooted there that Dask workers can use with nothing but its storage options."""
        return self.place.scratch(name)


def _describe_identity(identity: Any) -> str:
    if not isinstance(identity, dict):
        return "unknown input"
    return ", ".join(f"{key}={value}" for key, value in sorted(identity.items()) if value is not None)
