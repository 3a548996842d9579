"""A previous run's map, for ``init_from`` (warm start) and ``transform``: read once, checked once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, StoreError
from ..outputs import LAYOUT_FILE
from ..stability import SharedItems, shared_items
from ..storage import Location, storage_errors
from ..store import RunStore

FINISHED_STAGES = ("layout", "metrics")
MIN_SHARED = 3  # a Procrustes fit of two maps needs three shared items


@dataclass(frozen=True)
class PreviousMap:
    """A finished run's map and what it was made from.

    Attributes
    ----------
    out : str
        Its output location (local folder or URL).
    ids : np.ndarray
        (N,) item ids as ``layout.parquet`` holds them.
    layout : np.ndarray
        (N, 2) float64 positions.
    path : str
        ``vectors`` or ``interactions``.
    metric : str
        The vectors' metric (vector path), else the co-occurrence similarity.
    config : dict
        The settings it was made with.
    layout_fingerprint : str
        Its layout stage's fingerprint (a warm-started stage depends on it).
    store : RunStore
        Its store, open read-only.
    table : pd.DataFrame
        Its ``layout.parquet`` as read: ``id, x, y``, and the metadata columns when asked
        for (:func:`read_previous`'s ``with_metadata``).
    """

    out: str
    ids: np.ndarray
    layout: np.ndarray
    path: str
    metric: str
    config: dict[str, Any]
    layout_fingerprint: str
    store: RunStore
    table: pd.DataFrame

    def identity(self) -> dict[str, str]:
        """What a stage started from this map depends on (for fingerprints)."""
        return {"out": self.out, "layout": self.layout_fingerprint}

    def shared_with(self, ids: np.ndarray, what: str) -> SharedItems:
        """The items of ``ids`` this map holds (rows in ``ids``, rows here).

        Raises
        ------
        InputError
            When fewer than ``MIN_SHARED`` items are shared.
        """
        shared = shared_items(ids, self.ids)
        if len(shared) < MIN_SHARED:
            raise InputError(f"{what} and the previous map in {self.out} share {len(shared)} item "
                             f"id{'' if len(shared) == 1 else 's'} (at least "
                             f"{MIN_SHARED} needed; its ids look like {_examples(self.ids)}, these like "
                             f"{_examples(ids)})",
                             "warm-start from a map of the same catalog, with the same ids (`id_col`, `ids`)")
        return shared


def path_of(config: dict[str, Any]) -> str:
    """``interactions`` or ``vectors``: which path a run's settings take."""
    return "interactions" if config.get("interactions") is not None else "vectors"


def metric_of(config: dict[str, Any], path: str) -> str:
    """What compares two items: the metric on vectors, the similarity on co-occurrence."""
    if path == "interactions" and config.get("embed_dim") is None:
        return f"similarity {config.get('similarity', 'cosine')}"
    return f"metric {config.get('metric', 'euclidean')}"


def read_previous(out: str, storage_options: dict[str, Any] | None, *, flag: str = "`init_from`",
                  with_metadata: bool = False) -> PreviousMap:
    """Open the finished run at ``out`` and read its map.

    Parameters
    ----------
    out : str
        A run's output folder or URL.
    storage_options : dict, optional
        fsspec options for a URL.
    flag : str
        How errors name the setting (``init_from``, or the ``transform`` argument).
    with_metadata : bool
        Read every column of ``layout.parquet`` (``compare`` and ``transform`` show them),
        not only ``id, x, y``.

    Raises
    ------
    StoreError
        When ``out`` holds no tsne_dist run, or one that has not finished.
    """
    location = Location(out, storage_options)
    if location.is_local and not os.path.exists(location.url):
        raise StoreError(f"{flag} {location.url} does not exist", "pass the output folder of a finished run")
    if not RunStore(location.url, storage_options=storage_options).exists():  # unreachable storage: its own error
        raise StoreError(f"{flag} {location.url} holds no tsne_dist run (no run.zarr)",
                         "pass the output folder of a finished run")
    store = RunStore.open(location.url, storage_options=storage_options)
    unfinished = [stage for stage in FINISHED_STAGES if not store.marker(stage)]
    if unfinished or not location.exists(LAYOUT_FILE):
        missing = f"its {unfinished[0]} stage is not done" if unfinished else f"it has no {LAYOUT_FILE}"
        raise StoreError(f"{flag} {location.url} is not a finished run ({missing})",
                         "finish that run first (rerun it), or pass another run's output folder")
    with storage_errors(location), location.open(LAYOUT_FILE) as handle:
        table = pd.read_parquet(handle, columns=None if with_metadata else ["id", "x", "y"])
    config = store.run_attrs().get("config", {})
    path = path_of(config)
    return PreviousMap(out=location.url, ids=table["id"].to_numpy(), layout=table[["x", "y"]].to_numpy(np.float64),
                       path=path, metric=metric_of(config, path), config=config,
                       layout_fingerprint=store.marker("layout")["fingerprint"], store=store, table=table)


def check_same_kind(previous: PreviousMap, config: dict[str, Any], flag: str = "`init_from`") -> None:
    """Refuse a previous map made on another path or with another metric/similarity.

    Raises
    ------
    InputError
        With the difference and the fix.
    """
    path = path_of(config)
    if previous.path != path:
        raise InputError(f"{flag} {previous.out} is a map of {previous.path}, this run maps {path}",
                         f"warm-start from a map made from {path}, or leave out {flag}")
    metric = metric_of(config, path)
    if previous.metric != metric:
        raise InputError(f"{flag} {previous.out} was made with {previous.metric}, this run uses {metric}",
                         f"use the same {metric.split()[0]} as the previous map, or leave out {flag}")


def _examples(ids: np.ndarray) -> str:
    return ", ".join(repr(str(value)) for value in np.asarray(ids)[:2]) or "nothing"
