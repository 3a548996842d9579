"""One typed configuration for a run, from a YAML/TOML file and/or CLI flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from typing import Any

import yaml

from .errors import ConfigError

ENGINES = ("auto", "numpy", "cupy", "opentsne")
KNN_BACKENDS = ("auto", "pynndescent", "bruteforce")
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
        ``auto``, ``pynndescent`` or ``bruteforce``.
    metric : str
        ``euclidean`` or ``cosine``.
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
    metrics_sample : int
        Items sampled for recall, trustworthiness and silhouette.
    top_categories : int
        Categories shown by name in the map legend; the rest are "other".
    overwrite : bool
        Replace an existing, incompatible run in ``out``.
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
    metrics_sample: int = 5000
    top_categories: int = 20
    overwrite: bool = False

    @property
    def k(self) -> int:
        """Neighbours per item: ``n_neighbors`` or ``3 * perplexity``."""
        if self.n_neighbors is not None:
            return int(self.n_neighbors)
        return int(round(3 * self.perplexity))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (JSON-serialisable)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("vectors", "ids", "metadata"):
            if values[key] is not None and not isinstance(values[key], str):
                values[key] = f"in-memory {type(values[key]).__name__} {tuple(getattr(values[key], 'shape', ()))}"
        return values

    def validate(self) -> "Config":
        """Check every setting on its own; raise :class:`ConfigError` if one is bad."""
        if not self.out:
            raise ConfigError("no output folder given", "pass --out DIR")
        if self.vectors is None:
            raise ConfigError("no input given", "pass --vectors PATH (or vectors: in the config file)")
        _check_choice("knn", self.knn, KNN_BACKENDS)
        _check_choice("engine", self.engine, ENGINES)
        _check_choice("metric", self.metric, ("euclidean", "cosine"))
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
            if self.learning_rate <= 0:
                raise ConfigError("learning_rate must be positive")
        if not self.dof > 0:
            raise ConfigError(f"dof must be positive, got {self.dof}", "use e.g. --dof 1 (standard t-SNE)")
        if self.metrics_sample < 10:
            raise ConfigError("metrics_sample must be at least 10")
        return self


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
    return {str(key).replace("-", "_"): value for key, value in raw.items()}


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
