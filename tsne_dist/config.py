"""One typed configuration for a run, from a YAML/TOML file and/or CLI flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import yaml

from .errors import ConfigError
from .neighbors.metric import METRICS

ENGINES = ("auto", "numpy", "cupy", "opentsne")
INT_SETTINGS = ("n_neighbors", "n_iter", "early_exaggeration_iter", "seed", "n_jobs", "metrics_sample",
                "top_categories", "knn_shards", "min_count", "max_items", "max_collection_size", "embed_dim")
FLOAT_SETTINGS = ("perplexity", "early_exaggeration", "exaggeration", "dof", "ppmi_shift")
TEXT_SETTINGS = ("out", "vector_col", "id_col", "color_by", "label", "knn", "metric", "engine", "initialization",
                 "cluster", "collection_col", "item_col", "weight_col", "time_col", "list_col", "similarity",
                 "weight_combine")
SIMILARITIES = ("count", "jaccard", "lift", "ppmi", "cosine", "inv_log")
WEIGHT_COMBINATIONS = ("product", "min", "mean")
ALIASES = {"init": "initialization", "random_state": "seed"}
KNN_BACKENDS = ("auto", "pynndescent", "bruteforce", "cuml")
INITIALIZATIONS = ("pca", "random")


@dataclass
class Config:
    """Everything a run needs; defaults follow openTSNE's.

    Parameters
    ----------
    out : str
        Output folder; holds ``run.zarr``, ``layout.parquet``, ``map.png``,
        ``metrics.json``.
    vectors : str or np.ndarray, optional
        Path or fsspec URL of the item vectors (.npy, .parquet, .zarr), or an
        in-memory (N, D) array (Python API).
    vector_col : str, optional
        For Parquet vectors: the one list/array column holding the vectors.
        Without it, every numeric column except the id column is a dimension.
    ids : str or array-like, optional
        Path or URL of the item ids (.npy, .parquet, .csv, .txt), or an array,
        one per row of the vectors. Without it, ids come from ``id_col`` of a Parquet vector
        file, else they are the row numbers.
    metadata : str or pd.DataFrame, optional
        Parquet or CSV table (or a DataFrame) joined to the items by ``id_col``.
    id_col : str
        Name of the id column in Parquet/CSV inputs.
    color_by : str, optional
        Metadata column that colours ``map.png``.
    label : str, optional
        Metadata column used for silhouette scores.
    perplexity : float
        t-SNE perplexity.
    n_neighbors : int, optional
        Neighbours per item; default ``3 * perplexity``.
    knn : str
        ``auto``, ``pynndescent``, ``bruteforce`` or ``cuml``.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product`` (see
        :mod:`tsne_dist.neighbors.metric`).
    engine : str
        t-SNE engine: ``auto``, ``numpy`` (ours, CPU), ``cupy`` (ours, GPU) or
        ``opentsne``.
    n_iter : int
        Total optimisation iterations, early exaggeration included.
    early_exaggeration_iter : int
        Iterations with early exaggeration.
    early_exaggeration : float
        Exaggeration factor during the early phase.
    exaggeration : float
        Exaggeration after the early phase.
    dof : float
        Degrees of freedom of the t kernel; below 1 gives heavier tails and
        tighter clusters.
    learning_rate : float or "auto"
        ``auto`` is ``max(N / exaggeration, 50)``.
    initialization : str
        ``pca`` or ``random``.
    seed : int
        Seed for every random choice in the run.
    n_jobs : int
        Threads for kNN and the optimizer; -1 means all cores.
    cluster : str
        Where Dask work runs: ``local`` (a LocalCluster on 127.0.0.1 sized to the
        machine) or ``tcp://HOST:PORT`` of a running scheduler.
    knn_shards : int
        Shards of the approximate kNN search on Dask (one pynndescent index each).
        0 (default) means one in-process index with ``cluster: local`` and one
        shard per worker with a scheduler address.
    metrics_sample : int
        Items sampled for recall, trustworthiness and silhouette.
    top_categories : int
        Categories shown by name in the map legend; the rest are "other".
    overwrite : bool
        Replace an existing, incompatible run in ``out``.
    interactions : str or DataFrame, optional
        Instead of ``vectors``: an interactions table (Parquet file or folder, CSV;
        path or fsspec URL; a pandas or dask DataFrame in the Python API), one row
        per (collection, item), or one row per collection with ``list_col``.
    collection_col, item_col : str
        Collection id (user, session, basket) and item id columns.
    weight_col, time_col : str, optional
        Interaction weight (non-negative) and timestamp columns.
    weight_combine : str
        How two items' weights make a pair weight: ``product`` (B^T B), ``min``
        or ``mean``.
    tau : float, optional
        With ``time_col``: pairs weigh exp(-|t_i - t_j| / tau) (seconds).
    list_col : str, optional
        One list column of item ids per collection.
    min_count : int
        Items held by fewer collections are dropped.
    max_items : int, optional
        Keep only the most frequent items.
    max_collection_size : int
        Longer collections keep their most recent items (with ``time_col``), else
        a sample seeded by a hash of the collection id.
    similarity : str
        ``count``, ``jaccard``, ``lift``, ``ppmi``, ``cosine`` or ``inv_log``.
    ppmi_shift : float
        Subtracted from the PMI before clipping at zero.
    embed_dim : int, optional
        Map PPMI-SVD vectors of this dimension through the vector path instead of
        the similarity graph.
    """

    out: str = ""
    vectors: Any = None
    vector_col: str | None = None
    ids: Any = None
    metadata: Any = None
    id_col: str = "id"
    color_by: str | None = None
    label: str | None = None
    perplexity: float = 30.0
    n_neighbors: int | None = None
    knn: str = "auto"
    metric: str = "euclidean"
    engine: str = "auto"
    n_iter: int = 750
    early_exaggeration_iter: int = 250
    early_exaggeration: float = 12.0
    exaggeration: float = 1.0
    dof: float = 1.0
    learning_rate: float | str = "auto"
    initialization: str = "pca"
    seed: int = 0
    n_jobs: int = -1
    cluster: str = "local"
    knn_shards: int = 0
    metrics_sample: int = 5000
    top_categories: int = 20
    overwrite: bool = False
    interactions: Any = None
    collection_col: str = "collection"
    item_col: str = "item"
    weight_col: str | None = None
    time_col: str | None = None
    weight_combine: str = "product"
    tau: float | None = None
    list_col: str | None = None
    min_count: int = 5
    max_items: int | None = None
    max_collection_size: int = 500
    similarity: str = "cosine"
    ppmi_shift: float = 0.0
    embed_dim: int | None = None

    @property
    def k(self) -> int:
        """Neighbours per item: ``n_neighbors`` or ``3 * perplexity``."""
        if self.n_neighbors is not None:
            return int(self.n_neighbors)
        return int(round(3 * self.perplexity))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (JSON-serialisable)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("vectors", "ids", "metadata", "interactions"):
            if values[key] is not None and not isinstance(values[key], str):
                values[key] = f"in-memory {type(values[key]).__name__} {tuple(getattr(values[key], 'shape', ()))}"
        return values

    def validate(self) -> "Config":
        """Check every setting on its own; raise :class:`ConfigError` if one is bad."""
        self._coerce_types()
        if not self.out:
            raise ConfigError("no output folder given", "pass --out DIR")
        if self.vectors is None and self.interactions is None:
            raise ConfigError("no input given", "pass --vectors PATH or --interactions PATH (or set it in the config file)")
        if self.vectors is not None and self.interactions is not None:
            raise ConfigError("both vectors and interactions given", "pass only one of --vectors and --interactions")
        if self.interactions is not None:
            self._validate_interactions()
        _check_choice("knn", self.knn, KNN_BACKENDS)
        _check_choice("engine", self.engine, ENGINES)
        _check_choice("metric", self.metric, METRICS)
        _check_choice("initialization", self.initialization, INITIALIZATIONS)
        if not self.perplexity > 0:
            raise ConfigError(f"perplexity must be positive, got {self.perplexity}", "use e.g. --perplexity 30")
        if self.n_neighbors is not None and self.n_neighbors < 2:
            raise ConfigError(f"n_neighbors must be at least 2, got {self.n_neighbors}")
        if self.n_iter < 0 or self.early_exaggeration_iter < 0:
            raise ConfigError("iteration counts must not be negative")
        if self.early_exaggeration_iter > self.n_iter:
            raise ConfigError(
                f"early_exaggeration_iter ({self.early_exaggeration_iter}) exceeds n_iter ({self.n_iter})",
                "lower early_exaggeration_iter or raise n_iter",
            )
        if self.learning_rate != "auto":
            try:
                self.learning_rate = float(self.learning_rate)
            except (TypeError, ValueError):
                raise ConfigError(f"learning_rate must be a number or 'auto', got {self.learning_rate!r}") from None
            if not np.isfinite(self.learning_rate) or self.learning_rate <= 0:
                raise ConfigError(f"learning_rate must be a positive number or 'auto', got {self.learning_rate}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be between 0 and 2**32 - 1, got {self.seed}")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(f"n_jobs must be -1 (all cores) or a positive count, got {self.n_jobs}")
        if not self.early_exaggeration > 0 or not self.exaggeration > 0:
            raise ConfigError("exaggeration factors must be positive")
        if self.top_categories < 1:
            raise ConfigError("top_categories must be at least 1")
        if not self.dof > 0:
            raise ConfigError(f"dof must be positive, got {self.dof}", "use e.g. --dof 1 (standard t-SNE)")
        if self.cluster != "local" and not self.cluster.startswith("tcp://"):
            raise ConfigError(f"cluster must be 'local' or tcp://HOST:PORT, got {self.cluster!r}",
                              "pass --cluster local or the scheduler's address")
        if self.knn_shards < 0:
            raise ConfigError(f"knn_shards must be 0 (automatic) or a positive count, got {self.knn_shards}")
        if self.metrics_sample < 10:
            raise ConfigError("metrics_sample must be at least 10")
        return self


    def _validate_interactions(self) -> None:
        """Check the co-occurrence settings."""
        _check_choice("similarity", self.similarity, SIMILARITIES)
        _check_choice("weight_combine", self.weight_combine, WEIGHT_COMBINATIONS)
        if self.min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {self.min_count}")
        if self.max_items is not None and self.max_items < 2:
            raise ConfigError(f"max_items must be at least 2, got {self.max_items}")
        if self.max_collection_size < 2:
            raise ConfigError(f"max_collection_size must be at least 2, got {self.max_collection_size}")
        if self.embed_dim is not None and self.embed_dim < 2:
            raise ConfigError(f"embed_dim must be at least 2, got {self.embed_dim}")
        if self.tau is not None:
            self.tau = _as_float("tau", self.tau)
            if self.tau <= 0:
                raise ConfigError(f"tau must be positive seconds, got {self.tau}")
            if self.time_col is None:
                raise ConfigError("tau needs a timestamp column", "pass --time-col NAME, or drop --tau")
        if self.ids is not None:
            raise ConfigError("ids cannot be given with interactions (item ids come from the table)",
                              "drop --ids")

    def _coerce_types(self) -> None:
        """Turn config-file values into their types (e.g. '30' -> 30.0); refuse what does not fit."""
        for name in INT_SETTINGS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _as_int(name, value))
        for name in FLOAT_SETTINGS:
            setattr(self, name, _as_float(name, getattr(self, name)))
        for name in TEXT_SETTINGS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be text, got {value!r}")
        self.overwrite = _as_bool("overwrite", self.overwrite)


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def read_config_file(path: str) -> dict[str, Any]:
    """Read settings from a YAML (.yaml/.yml) or TOML (.toml) file.

    Parameters
    ----------
    path : str
        Local path of the file.

    Returns
    -------
    dict
        Setting name -> value; dashes in names become underscores.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist", "check the path")
    try:
        with open(path, "rb") as handle:
            if path.endswith(".toml"):
                raw = tomllib.load(handle)
            else:
                raw = yaml.safe_load(handle) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} cannot be parsed: {first_line}", "fix its syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return {_canonical(str(key)): value for key, value in raw.items()}


def _canonical(name: str) -> str:
    """A setting's name as Config spells it: dashes become underscores, aliases resolve."""
    name = name.replace("-", "_")
    return ALIASES.get(name, name)


def build_config(file_values: dict[str, Any] | None = None, **overrides: Any) -> Config:
    """Merge file settings with overrides (non-None wins) into a validated Config.

    Parameters
    ----------
    file_values : dict, optional
        Settings read from a config file.
    **overrides
        Settings from flags or code; ``None`` means "not given".

    Returns
    -------
    Config
    """
    known = {f.name for f in fields(Config)}
    merged: dict[str, Any] = {}
    for source in (file_values or {}, overrides):
        for key, value in source.items():
            key = _canonical(key)
            if value is None:
                continue
            if key not in known:
                raise ConfigError(
                    f"unknown setting {key!r}",
                    f"known settings are: {', '.join(sorted(known))}",
                )
            merged[key] = value
    try:
        config = Config(**merged)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return config.validate()
