"""The run plan: the request checked once and every choice resolved once.

:func:`make_plan` coerces and checks the settings, the output location, the inputs'
existence and the requested engine and kNN backend, before anything is written.
Choices that depend on the data's size (engine, kNN backend, initialization,
learning rates) are resolved by :meth:`Plan.for_items` as soon as N and D are known,
each with its reason. Stages read choices from the plan only; the store keeps
them beside the request, and fingerprints hash what actually runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..cluster import check_cluster_request
from ..config import Config, build_config, read_config_file
from ..errors import ConfigError
from ..io.sources import is_in_memory, require_exists
from ..neighbors import choose_backend, gpu_free_bytes
from ..neighbors.gpu import rapids_search
from ..storage import Location, normalise_location, storage_options_applied
from ..tsne import Schedule, choose_engine, resolve_repulsion
from ..tsne.engine import WARM_START_RATE_DIVISOR
from .inputs import check_vector_columns_named
from .previous import PreviousMap, check_same_kind, read_previous

VECTORS, INTERACTIONS = "vectors", "interactions"
RESOLVED_ORDER = ("engine", "repulsion", "knn", "initialization", "warm_start", "learning_rate", "perplexity")


@dataclass(frozen=True)
class Choice:
    """A resolved choice: what was asked, what runs, and why."""

    requested: Any
    value: Any
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "value": self.value, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """Everything a run will do, decided before it does it.

    Attributes
    ----------
    config : Config
        The validated request (not changed by resolution).
    out : str
        Output location: an absolute local path or an fsspec URL (``s3://bucket/maps/a``).
    path : str
        ``vectors`` or ``interactions``.
    identity : dict
        What makes two runs of one store comparable (the input's source).
    k : int
        Neighbours per item.
    schedule : Schedule
        The optimiser schedule as requested (learning rate maybe ``auto``).
    cluster : str
        The Dask scheduler the stages use: ``local``, or an address (for ``kubernetes``
        and ``local-cuda``, of the cluster made for the run; see :meth:`with_cluster`).
    n_items, n_dims : int, optional
        Size of what is mapped, once known (``n_dims`` is None on the similarity graph).
    choices : dict
        ``engine``, ``knn``, ``initialization``, ``learning_rate``, ``perplexity`` (and
        ``warm_start`` with ``init_from``) :class:`Choice` once :meth:`for_items` has run.
    previous : PreviousMap, optional
        The finished map of ``init_from``, read and checked.
    """

    config: Config
    out: str
    path: str
    identity: dict[str, Any]
    k: int
    schedule: Schedule
    cluster: str = "local"
    n_items: int | None = None
    n_dims: int | None = None
    choices: dict[str, Choice] = field(default_factory=dict)
    previous: PreviousMap | None = None

    @property
    def location(self) -> Location:
        """The output location (local folder or object storage)."""
        return Location(self.out, self.config.storage_options)

    def urls(self) -> list[str]:
        """Every location the run reads or writes, as given (for the storage options' protocols)."""
        config = self.config
        return [config.out, *_source_urls(config), *([config.init_from] if config.init_from else [])]

    @property
    def has_vectors(self) -> bool:
        """True when vectors are mapped (the vector path, or interactions with ``embed_dim``)."""
        return self.path == VECTORS or self.config.embed_dim is not None

    def with_cluster(self, address: str) -> "Plan":
        """This plan with its stages sent to the scheduler at ``address``."""
        return replace(self, cluster=address)

    def for_items(self, n_items: int, n_dims: int | None) -> "Plan":
        """This plan with the size-dependent choices resolved for N items of D dimensions.

        ``n_dims`` is None when the kNN graph comes from the co-occurrence
        similarity (no vectors).
        """
        config = self.config
        engine, engine_reason = choose_engine(config.engine, repulsion=config.repulsion)
        repulsion = Choice(config.repulsion, *resolve_repulsion(config.repulsion, engine, n_items))
        if n_dims is None:
            knn = Choice(config.knn, f"cooccurrence-{config.similarity}",
                         f"similarity top-k on the co-occurrence matrix ({config.similarity})")
        else:
            backend, reason = choose_backend(config.knn, n_items, n_dims, gpu_free_bytes=gpu_free_bytes(),
                                             sharded=self.cluster != "local" or config.knn_shards > 1)
            knn = Choice(config.knn, backend, reason)
        schedule, warm = self.schedule, {}
        if self.previous is not None:
            initialization = Choice(config.initialization, "previous",
                                    f"warm start from the map in {self.previous.out} (`init_from`)")
            schedule = schedule.for_warm_start(config.warm_start_iter, n_items)
            warm = {"warm_start": Choice(
                {"n_iter": self.schedule.n_iter, "early_exaggeration_iter": self.schedule.early_exaggeration_iter,
                 "learning_rate": self.schedule.learning_rate},
                {"n_iter": schedule.n_iter, "early_exaggeration_iter": 0, "learning_rate": schedule.learning_rate},
                f"the previous map's clusters are formed: `warm_start_iter` iterations of the main phase only"
                f"{', learning rate max(N / %d, 50)' % WARM_START_RATE_DIVISOR if config.learning_rate == 'auto' else ''}")}
        elif n_dims is None and config.initialization == "pca":
            initialization = Choice("pca", "random", "no vectors for PCA on the similarity graph")
        else:
            initialization = Choice(config.initialization, config.initialization, "requested")
        rates = [round(phase.learning_rate, 6) for phase in schedule.phases(n_items)]
        learning_rate = Choice(config.learning_rate, rates,
                               "requested" if config.learning_rate != "auto" else "warm start: max(N / "
                               f"{WARM_START_RATE_DIVISOR}, 50)" if warm else "max(N / exaggeration, 50) per phase")
        choices = {"engine": Choice(config.engine, engine, engine_reason), "repulsion": repulsion, "knn": knn,
                   "initialization": initialization, **warm, "learning_rate": learning_rate,
                   "perplexity": self._perplexity()}
        return replace(self, n_items=n_items, n_dims=n_dims, choices=choices, schedule=schedule)

    def _perplexity(self) -> Choice:
        """The perplexity each row is calibrated to: a row of k neighbours cannot exceed k."""
        asked, used = self.config.perplexity, self.config.affinity_neighbors
        k = self.k if used is None else min(self.k, used)
        if k >= asked:
            return Choice(asked, asked, "requested")
        wanted = int(round(3 * asked))
        name = "n_neighbors" if used is None or used >= self.k else "affinity_neighbors"
        fix = (f"set {name} to at least {wanted}" if name == "n_neighbors" or wanted <= self.k
               else f"set n_neighbors and affinity_neighbors to at least {wanted}")
        return Choice(asked, float(k),
                      f"with {name} {k} each row is calibrated to perplexity {k}, not {asked:g}; for "
                      f"perplexity {asked:g} {fix}")

    def warnings(self) -> list[str]:
        """Choices that differ from the request for a reason the user should hear about."""
        perplexity = self.choices.get("perplexity")
        return [perplexity.reason] if perplexity is not None and perplexity.value != perplexity.requested else []

    def choice(self, name: str) -> Any:
        """The resolved value of ``engine``, ``knn``, ``initialization`` or ``learning_rate``.

        Raises
        ------
        RuntimeError
            Before :meth:`for_items`.
        """
        if name not in self.choices:
            raise RuntimeError(f"{name} is resolved once the item count is known (Plan.for_items)")
        return self.choices[name].value

    def resolved(self) -> dict[str, Any]:
        """The resolved choices (for the store and ``info``): name -> requested, value, reason."""
        return {"k": self.k, "n_items": self.n_items, "n_dims": self.n_dims,
                **{name: choice.as_dict() for name, choice in self.choices.items()}}


def coerce_config(config: Config | dict[str, Any] | str) -> Config:
    """A validated Config from a Config, a dict of settings, or a config file path.

    In-memory inputs are normalised: ids given as a list, tuple or Series become
    an array, and vectors given as a DataFrame become its array of values.

    Raises
    ------
    ConfigError
        For bad settings; TypeError for anything that is not a config.
    """
    if isinstance(config, str):
        config = build_config(read_config_file(config))
    elif isinstance(config, dict):
        config = build_config(config)
    elif not isinstance(config, Config):
        raise TypeError(f"config must be a Config, dict or file path, not {type(config).__name__}")
    if isinstance(config.vectors, pd.DataFrame):
        config.vectors = config.vectors.to_numpy()
    elif isinstance(config.vectors, (list, tuple)):
        config.vectors = np.asarray(config.vectors)
    if isinstance(config.ids, (list, tuple, pd.Series, pd.Index)):
        config.ids = np.asarray(config.ids)
    return config.validate()


def make_plan(config: Config | dict[str, Any] | str) -> Plan:
    """Check a run's request and resolve what can be resolved before reading data.

    Parameters
    ----------
    config : Config, dict or str
        Settings, or a YAML/TOML path.

    Returns
    -------
    Plan
        Without size-dependent choices (see :meth:`Plan.for_items`).

    Raises
    ------
    tsne_dist.errors.UserError
        For bad settings, a missing input, an output location that cannot be
        used, or an engine / kNN backend that cannot run here.
    """
    config = coerce_config(config)
    out = Location(config.out, config.storage_options).url  # a URL no installed fsspec serves fails here
    path = INTERACTIONS if config.interactions is not None else VECTORS
    with storage_options_applied(config.storage_options, [config.out, *_source_urls(config)]):
        _require_inputs(config, path)
    check_vector_columns_named(config)
    # e.g. engine cupy without a GPU, or barnes-hut on the GPU engine, fails before any work
    resolve_repulsion(config.repulsion, choose_engine(config.engine, repulsion=config.repulsion)[0], 0)
    check_cluster_request(config.cluster, config.kubernetes)  # e.g. kubernetes without its extra
    if config.knn == "cuml" and (path == VECTORS or config.embed_dim is not None):
        rapids_search()  # knn cuml without cuML or cuVS fails before any work
    schedule = Schedule(**{name: getattr(config, name) for name in Schedule.names()})
    previous = None
    if config.init_from is not None:
        if normalise_location(config.init_from).rstrip("/") == out.rstrip("/"):
            raise ConfigError(f"init_from {config.init_from} is this run's own `out`",
                              "write each run to its own folder (e.g. maps/2026-12-01) and set `init_from` to the "
                              "previous one")
        with storage_options_applied(config.storage_options, [config.init_from]):
            previous = read_previous(config.init_from, config.storage_options)
        check_same_kind(previous, config.to_dict())
    return Plan(config=config, out=out, path=path, identity=_identity(config), k=config.k, schedule=schedule,
                cluster=config.cluster, previous=previous)


def _source_urls(config: Config) -> list[str]:
    sources = (config.vectors, config.ids, config.metadata, config.interactions)
    return [source for source in sources if isinstance(source, str)]


def _require_inputs(config: Config, path: str) -> None:
    if path == VECTORS:
        require_exists(config.vectors, "vectors file")
    elif isinstance(config.interactions, str) and not any(char in config.interactions for char in "*?["):
        require_exists(config.interactions, "interactions file")
    for source, what in ((config.ids, "ids file"), (config.metadata, "metadata file")):
        if source is not None and not is_in_memory(source):
            require_exists(source, what)


def _identity(config: Config) -> dict[str, Any]:
    """What makes two runs comparable: the vectors' (or interactions') source."""
    identity = {"vectors": _normalise_source(config.vectors)}
    if config.interactions is not None:
        source = config.interactions
        identity["interactions"] = _normalise_source(source) if isinstance(source, str) else "in-memory"
    return identity


def _normalise_source(source: object) -> str | None:
    if is_in_memory(source):
        return "in-memory"
    if source is None or "://" in source:
        return source
    return os.path.abspath(source)

