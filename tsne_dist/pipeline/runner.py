"""Running stages: fingerprint, skip what is done, time, mark.

Stages never call each other. Each reads what earlier stages stored, writes one
group of the run store, then its marker. A stage's fingerprint hashes its
parameters and its upstream fingerprints, so a changed parameter recomputes that
stage and everything after it, and a finished stage with the same fingerprint is
skipped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import zarr

from ..io.sources import source_name
from ..outputs import remove_outputs
from ..progress import StageTimings
from ..store import RunStore, fingerprint
from ..version import __version__
from ..viz.export import bundle_available, check_viewer_folder
from .memory import check_fits, expected_memory, format_bytes
from .plan import Plan

logger = logging.getLogger("tsne_dist")

Compute = Callable[[zarr.Group], "dict[str, Any] | None"]


class StageRunner:
    """One run: its plan, its store, the fingerprints so far, and the timings.

    Parameters
    ----------
    plan : Plan
        The checked request.
    store : RunStore
        The run's store, open for writing.
    """

    def __init__(self, plan: Plan, store: RunStore) -> None:
        self.plan = plan
        self.store = store
        self.timings = StageTimings()
        self.fingerprints: dict[str, str] = {}
        self.stages_run: list[str] = []
        self.stages_skipped: list[str] = []

    @property
    def config(self):
        """The request (read-only by convention)."""
        return self.plan.config

    def resolve(self, n_items: int, n_dims: int | None) -> None:
        """Resolve the plan's size-dependent choices and record them in the store.

        Raises
        ------
        ConfigError
            When the memory model expects more memory than the run may use
            (:func:`.memory.check_fits`).
        """
        self.plan = self.plan.for_items(n_items, n_dims)
        estimate = expected_memory(n_items, n_dims)
        logger.info("expected peak memory %s (stage %s)", format_bytes(estimate.peak), estimate.peak_stage)
        check_fits(estimate, self.config.max_memory)
        for name, choice in self.plan.choices.items():
            if choice.requested != choice.value:
                logger.info("%s: %s -> %s (%s)", name, choice.requested, choice.value, choice.reason)
        for warning in self.plan.warnings():
            logger.warning(warning)
        self.store.record_resolved(self.plan.resolved())

    def stage(self, name: str, params: dict[str, Any], upstream: tuple[str, ...], compute: Compute) -> bool:
        """Run ``compute(group)`` unless the stage is done with this fingerprint.

        Parameters
        ----------
        name : str
            Stage (and store group) name.
        params : dict
            What the stage's result depends on (resolved choices, not requests).
        upstream : tuple of str
            Stages whose fingerprints this one's includes.
        compute : callable
            Writes the stage's arrays into the fresh group; returns extra marker fields.

        Returns
        -------
        bool
            True when the stage ran, False when it was skipped.
        """
        stage_fp = fingerprint(name, params, [self.fingerprints[up] for up in upstream])
        self.fingerprints[name] = stage_fp
        earlier = self.store.marker(name)
        if earlier is not None and earlier.get("fingerprint") == stage_fp:
            logger.info("stage %s: already done with these settings, skipped", name)
            self.stages_skipped.append(name)
            return False
        if earlier is not None:
            _say_what_is_replaced(name, earlier.get("params", {}), params)
        start = time.perf_counter()
        with self.timings.stage(name):
            extra = compute(self.store.begin(name)) or {}
        self.store.finish(name, stage_fp, params, time.perf_counter() - start,
                          {"peak_memory_mb": self.timings.peak_memory_mb[name], **extra})
        self.stages_run.append(name)
        return True


def _say_what_is_replaced(name: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Log why a finished stage is recomputed (its settings, or an earlier stage, changed)."""
    changed = _changes(before, after)
    if changed:
        logger.info("stage %s: settings changed (%s); replacing its earlier result", name, "; ".join(changed))
    else:
        logger.info("stage %s: an earlier stage (or the package version) changed; replacing its earlier result",
                    name)


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``name old -> new`` for each parameter that differs (nested values compared whole)."""
    before = json.loads(json.dumps(before, default=str))
    after = json.loads(json.dumps(after, default=str))
    return [f"{key} {_short(before.get(key))} -> {_short(after.get(key))}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_location(plan: Plan) -> bool:
    """Create the output folder (or prefix), prove it writable and check the store there can be used.

    Returns
    -------
    bool
        True when an existing store will be replaced: one of other input with
        ``overwrite``, or an unfinished one of other input (a store of the same
        input is reused, with or without ``overwrite``).

    Raises
    ------
    StoreError
        When the folder cannot be written, or holds a store that is not ours or
        of other input (without ``overwrite``). Nothing is written to the store.
    """
    plan.location.check_writable()
    if bundle_available():  # the last stage would refuse a foreign viewer/: refuse before the first
        check_viewer_folder(plan.location)
    logger.info("tsne_dist %s: run in %s (%s %s)", __version__, plan.out, plan.path,
                source_name(plan.config.vectors if plan.path == "vectors" else plan.config.interactions))
    return RunStore(plan.out).check_reusable(plan.identity, plan.config.overwrite)


def stored_marker(plan: Plan, stage: str) -> dict[str, Any] | None:
    """The marker of ``stage`` in the store at the plan's location, read-only (None if absent)."""
    return RunStore.open(plan.out).marker(stage) if RunStore(plan.out).exists() else None


def start_runner(plan: Plan) -> StageRunner:
    """Open the run store for writing (replacing it if needed) and return the runner.

    With ``overwrite``, our earlier outputs (layout.parquet, map.png,
    metrics.json, viewer/) are removed first.
    """
    store = RunStore.for_run(plan.out, plan.identity, plan.config.to_dict(), overwrite=plan.config.overwrite)
    if plan.config.overwrite:
        remove_outputs(plan.location)
    return StageRunner(plan, store)
