"""The one table of run settings: name, type, constraint, default, help.

Everything else is derived from :data:`SETTINGS`: the fields and validation of
:class:`tsne_dist.config.Config`, the ``tsne-dist run`` flags and their ``--help``,
the config-file keys, and the README's settings table
(``tsne-dist settings`` prints it; a test fails when the README differs).
Vocabularies (engines, metrics, similarities, ...) are imported from the module
that implements them, never restated here.

Errors raised here name the setting as the Python API and config files spell it,
and write its name in backticks in the fix (``set `perplexity` ...``); the CLI
replaces backticked names with their flags (:func:`flag_text`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cooccurrence.pairs import COMBINATIONS
from .cooccurrence.similarity import SIMILARITIES
from .errors import ConfigError
from .neighbors.api import KNN_BACKENDS
from .neighbors.metric import METRICS
from .tsne.engine import ENGINES
from .tsne.optimizer import BARNES_HUT_MAX_ITEMS, REPULSION_METHODS
from .tsne.initialization import INITIALIZATIONS

SIZE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$"  # bytes: 8GB, 6GiB, 512MB, 1000000
KINDS = ("int", "float", "text", "bool", "source", "rate", "mapping")


def neighbours_for(perplexity: float, n_neighbors: int | None) -> int:
    """Neighbours per item: ``n_neighbors``, or ``3 * perplexity`` (openTSNE's rule)."""
    return int(n_neighbors) if n_neighbors is not None else int(round(3 * perplexity))


@dataclass(frozen=True)
class Setting:
    """One setting of a run.

    Attributes
    ----------
    name : str
        Python and config-file name (``n_neighbors``).
    kind : str
        ``int``, ``float``, ``text``, ``bool``, ``source`` (a path, URL or in-memory
        data), ``rate`` (a positive number or ``"auto"``) or ``mapping`` (a dict; JSON
        text on the command line).
    default : object
        Value when not given; None means "not set".
    help : str
        One line for ``--help`` (the default is appended there).
    group : str
        ``input``, ``interactions``, ``map``, ``cluster`` or ``output``: where the
        README lists it.
    choices : tuple of str, optional
        Allowed values, imported from the owning module.
    minimum, maximum : float, optional
        Smallest and largest allowed values (inclusive).
    positive : bool
        The value must be > 0.
    excluded : tuple, optional
        Values that are not allowed although in range (``n_jobs`` 0).
    pattern : str, optional
        A regular expression text values must match, with ``pattern_text``
        saying in words what it allows.
    flag : str, optional
        The CLI flag when it is not ``--`` + the name with dashes.
    default_text : str, optional
        How docs show the default when ``repr`` would mislead (``3 x perplexity``).
    details : str, optional
        Longer explanation for the README (``help`` is used without it).
    """

    name: str
    kind: str
    default: Any
    help: str
    group: str = "map"
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    excluded: tuple[Any, ...] = ()
    pattern: str | None = None
    pattern_text: str | None = None
    flag: str | None = None
    default_text: str | None = None
    details: str | None = None

    @property
    def cli_flag(self) -> str:
        """The ``tsne-dist run`` flag of this setting."""
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def help_line(self) -> str:
        """``help``, followed by the choices when there are any."""
        return self.help + (": " + " | ".join(self.choices) if self.choices else "")

    @property
    def shown_default(self) -> str:
        """The default as docs and ``--help`` show it."""
        if self.default_text is not None:
            return self.default_text
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


SETTINGS: tuple[Setting, ...] = (
    # inputs
    Setting("out", "text", None, "output folder, or an fsspec URL (s3://bucket/maps/a)", group="output",
            default_text="required"),
    Setting("vectors", "source", None, "item vectors: .npy, .parquet or .zarr (path or fsspec URL)", group="input",
            default_text="–", details="item vectors (exactly one of `--vectors` and `--interactions`); see Inputs"),
    Setting("ids", "source", None, "item ids, one per vector row (.npy, .txt, .parquet, .csv)", group="input",
            default_text="–", details="see Inputs"),
    Setting("metadata", "source", None, "metadata table (.parquet or .csv) joined by `id_col`", group="input",
            default_text="–", details="see Inputs"),
    Setting("id_col", "text", "id", "id column in Parquet/CSV inputs", group="input"),
    Setting("vector_col", "text", None, "Parquet: the list column holding the vectors", group="input",
            default_text="–"),
    Setting("vector_cols", "text", None,
            "Parquet: a pattern naming the numeric dimension columns, e.g. 'dim_*' (fnmatch)", group="input",
            default_text="–",
            details="Parquet: a pattern naming the numeric dimension columns, e.g. `dim_*` (shell-style). Without "
                    "it or `vector_col`, the one list column, else every numeric column but the id column, is the "
                    "vector (the log names the columns used). Needed when the same file is also `metadata`: "
                    "vector columns are never copied into the outputs"),
    Setting("color_by", "text", None, "metadata column that colours map.png", group="output",
            default_text="none (one colour)",
            details="metadata column for `map.png`: categories get a legend of the top `--top-categories` + "
                    "\"other\"; numbers a colour bar"),
    Setting("label", "text", None, "metadata column for silhouette scores", group="output"),
    Setting("top_categories", "int", 20, "categories named in the map legend; the rest are 'other'",
            group="output", minimum=1),
    # the map
    Setting("perplexity", "float", 30.0, "t-SNE perplexity", positive=True,
            details="t-SNE perplexity; needs at least 3P + 1 items"),
    Setting("n_neighbors", "int", None, "neighbours per item", minimum=2, default_text="3 x perplexity"),
    Setting("knn", "text", "auto", "kNN backend", choices=KNN_BACKENDS,
            details="`bruteforce` (exact, blocked; on the GPU when CuPy sees one, blocks sized from free GPU "
                    "memory), `hnsw` (faiss's HNSW index, approximate; built on one thread so it is deterministic, "
                    "searched on `n_jobs`), `pynndescent` (approximate; sharded on Dask) or `cuml` (cuML's, else "
                    "cuVS's, GPU brute force; an error if neither is installed). `auto`: exact on the GPU when CuPy "
                    "sees a device with room for the vectors, else exact on the CPU while N² (D + 20) < 2.5e10 "
                    "(about 5,000 items at 784 dims), else `hnsw` in the run's process, or `pynndescent` when the "
                    "search is sharded on Dask (`--cluster` other than local, or `--knn-shards` above 1; `hnsw` asked for "
                    "by name ignores both, with a warning). The log, "
                    "`info` and `metrics.json` (`resolved`) say what was picked and why"),
    Setting("metric", "text", "euclidean", "distance between vectors", choices=METRICS,
            details="`euclidean`, `cosine` (distance 1 - cosine similarity) or `inner_product` (neighbours are "
                    "the largest dot products, as in two-tower retrieval; items are lifted to "
                    "[x, sqrt(M² - |x|²)] and queries to [q, 0], M the largest norm, and the stored distance "
                    "is sqrt(|q|² + M² - 2 q·x), so each row's affinities are a softmax of its dot products; "
                    "an item is excluded from its own neighbours even where a longer vector outscores it)"),
    Setting("engine", "text", "auto", "t-SNE engine", choices=ENGINES,
            details="`numpy`: our engine on the CPU; `cupy`: the same code on a CUDA GPU "
                    "(`pip install \"tsne-dist[gpu]\"`); `opentsne`: openTSNE's optimiser fed with our "
                    "affinities. `auto` is `cupy` when CuPy sees a GPU (unless `repulsion` is barnes-hut), else `numpy`; "
                    "the engine that ran is recorded"),
    Setting("repulsion", "text", "auto", "how the repulsive forces are computed (auto: Barnes-Hut on the CPU "
            f"below {BARNES_HUT_MAX_ITEMS:,} items, else the FFT grid)", choices=REPULSION_METHODS,
            details="`barnes-hut`: a quadtree (van der Maaten 2014; CPU engines only); `fft`: the FIt-SNE "
                    "interpolation grid (Linderman et al. 2019). `auto` is `barnes-hut` on the CPU below "
                    f"{BARNES_HUT_MAX_ITEMS:,} items (10,000 with `opentsne`, openTSNE's rule) and `fft` from there "
                    "and on the GPU: the faster of the two on 2 cores, at equal or lower KL (benchmarks/README.md); "
                    "`metrics.json` records the one that ran"),
    Setting("dof", "float", 1.0, "degrees of freedom of the t kernel; < 1 for heavier tails", positive=True),
    Setting("n_iter", "int", 750, "total iterations, early exaggeration included", minimum=0),
    Setting("early_exaggeration_iter", "int", 250, "iterations with early exaggeration (momentum 0.5)",
            minimum=0),
    Setting("early_exaggeration", "float", 12.0, "exaggeration factor of the early phase", positive=True),
    Setting("exaggeration", "float", 1.0, "exaggeration after the early phase (momentum 0.8)", positive=True),
    Setting("learning_rate", "rate", "auto", "step size, or 'auto' = max(N / exaggeration, 50) per phase",
            details="`auto` = max(N / exaggeration, 50) in each phase; the values used are recorded"),
    Setting("initialization", "text", "pca", "initial layout", choices=INITIALIZATIONS, flag="--init",
            details="`pca` (scaled to std 1e-4; random if the vectors have no 2-D spread) or `random`; the "
                    "interactions path without `embed_dim` has no vectors and starts from `random` (recorded as such)"),
    Setting("init_from", "text", None, "a finished run's output folder or URL to warm-start from",
            flag="--init-from",
            details="a finished run (path or URL) of the same catalog, path and metric: items it holds (matched "
                    "on id) start where they were, scaled by sqrt(N / N_previous); new items start at the "
                    "affinity-weighted median of their placed neighbours; then `warm_start_iter` iterations "
                    "without early exaggeration, at an `auto` learning rate of max(N / 64, 50). metrics.json "
                    "gains the map's stability against it"),
    Setting("warm_start_iter", "int", 100, "iterations after `init_from` (no early exaggeration)", minimum=0,
            details="measured on a 20k-item catalog: 100 iterations reach a fresh run's recall and trustworthiness "
                    "while shared items move under one median map-neighbour distance; more iterations let the "
                    "map drift (benchmarks/README.md)"),
    Setting("affinity_neighbors", "int", None, "P from only each item's nearest this many kNN neighbours",
            minimum=2, default_text="all k",
            details="at most `n_neighbors`; lets several perplexities share one kNN graph (`tsne-dist sweep`)"),
    Setting("seed", "int", 0, "random seed", minimum=0, maximum=2**32 - 1,
            details="same seed and input, identical `layout.parquet` on the CPU engines (the CuPy engine sums "
                    "with GPU atomics, so its layouts agree only to rounding); 0 to 2³² - 1"),
    Setting("n_jobs", "int", -1, "threads, -1 for all cores", minimum=-1, excluded=(0,),
            details="threads for the kNN search and the t-SNE layout, ours and openTSNE's (-1: all cores); the "
                    "other numba steps (affinities, metrics) and the FFT grid's transforms use every core"),
    Setting("metrics_sample", "int", 5000, "items sampled for recall, trustworthiness and silhouettes",
            group="output", minimum=10),
    # interactions
    Setting("interactions", "source", None,
            "instead of vectors: interactions table (.parquet file/folder or .csv)", group="interactions",
            default_text="–", details="interaction log instead of `--vectors` (exactly one of the two); see Inputs"),
    Setting("collection_col", "text", "collection", "collection (user/session/basket) id column",
            group="interactions"),
    Setting("item_col", "text", "item", "item id column", group="interactions"),
    Setting("weight_col", "text", None, "weight column (non-negative)", group="interactions"),
    Setting("time_col", "text", None, "timestamp column (seconds or dates)", group="interactions"),
    Setting("list_col", "text", None, "one list column of item ids per collection", group="interactions"),
    Setting("weight_combine", "text", "product", "pair weight from the two items' weights",
            group="interactions", choices=COMBINATIONS,
            details="pair weight from the two items' weights: `product` (w_i w_j, the weighted BᵀB), `min` or "
                    "`mean`"),
    Setting("tau", "float", None, "with `time_col`: pairs weigh exp(-|t_i - t_j| / tau), tau in seconds",
            group="interactions", positive=True),
    Setting("min_count", "int", 10, "drop items held by fewer than this many collections", group="interactions", minimum=1),
    Setting("max_items", "int", None, "keep only this many of the most frequent items (ties: smaller id)",
            group="interactions", minimum=2),
    Setting("max_collection_size", "int", 500, "cap on items per collection", group="interactions", minimum=2,
            details="longer collections keep their N most recent items (with `--time-col`), else N items "
                    "sampled with a seed made from a hash of the collection id and `--seed`"),
    Setting("similarity", "text", "cosine", "similarity of two items from their co-occurrence",
            group="interactions", choices=SIMILARITIES,
            details="`count`, `jaccard`, `lift`, `ppmi`, `cosine` or `inv_log` (see Co-occurrence)"),
    Setting("ppmi_shift", "float", 0.0, "subtracted from the PMI before clipping at 0", group="interactions"),
    Setting("embed_dim", "int", None, "map D-dim PPMI-SVD item vectors instead of the similarity graph",
            group="interactions", minimum=2),
    # cluster
    Setting("cluster", "text", "local", "Dask: local | local-cuda | kubernetes | tcp://HOST:PORT", group="cluster",
            pattern=r"^(local|local-cuda|kubernetes|tcp://\S+)$",
            pattern_text="'local', 'local-cuda', 'kubernetes' or tcp://HOST:PORT",
            details="Dask for the co-occurrence (and sharded kNN): `local` starts a LocalCluster on 127.0.0.1 "
                    "with one worker process per core (one in-process worker with a thread per core when the "
                    "interaction log is a single Dask partition, e.g. one CSV under 64 MB or one small Parquet "
                    "file: worker processes take longer to start than such a log takes); `local-cuda` a dask-cuda "
                    "LocalCUDACluster, one worker per GPU (extra `gpu`); `kubernetes` a DaskCluster made for the "
                    "run by the dask-kubernetes operator from the `kubernetes` section and deleted after it, also "
                    "on error (extra `k8s`; see deploy/README.md); `tcp://HOST:PORT` a running scheduler whose "
                    "workers reach `out` (a shared folder, or object storage: then they need only its URL and "
                    "credentials). The dashboard link is logged"),
    Setting("kubernetes", "mapping", None, "the DaskCluster of `cluster` kubernetes (config file section)",
            group="cluster",
            details="with `--cluster kubernetes`: `image` (required), `namespace`, `name`, `n_workers`, "
                    "`worker_resources`, `gpu_workers`, `gpu_resources`, `env_from_secret` (a Secret with the "
                    "object-store credentials, given to scheduler and workers); see deploy/README.md"),
    Setting("knn_shards", "int", 0, "approximate kNN shards on Dask (0 = automatic)", group="cluster", minimum=0,
            details="pynndescent shards on Dask (`--cluster`): one index per shard, each built and queried on "
                    "one worker; each query block asks every other shard for k + 1 candidates, a tree reduction "
                    "merges them to the global top-k, then one local-join pass refines the graph. 0: one "
                    "in-process index with `--cluster local`, one shard per worker with a scheduler address"),
    Setting("storage_options", "mapping", None, "fsspec options for the URLs of `out` and the inputs (JSON)",
            group="output",
            details="options for the fsspec filesystem of every URL the run reads or writes (`s3://`, `gs://`, "
                    "...), e.g. `endpoint_url`, `key`, `secret` for s3fs: a mapping in the config file, or JSON "
                    "text. Without it the usual variables apply (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, "
                    "`AWS_SECRET_ACCESS_KEY`, ...). Credentials are never written to the run store"),
    Setting("max_memory", "text", None, "memory the run process may use, e.g. 6GiB (default: detected)",
            group="output", pattern=SIZE_PATTERN, pattern_text="a size such as 8GB, 6GiB or 512MB",
            details="the run is refused, before its kNN stage (and by `--dry-run`), when the memory model "
                    "(benchmarks/README.md) expects more; default: the container's cgroup limit, else the "
                    "machine's memory"),
    Setting("overwrite", "bool", False, "replace a run in `out` made from other input (only our own files)",
            group="output"),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
ALIASES = {"init": "initialization", "random_state": "seed"}


def canonical_name(name: str) -> str:
    """A setting's name as the table spells it: dashes become underscores, aliases resolve."""
    name = name.replace("-", "_")
    return ALIASES.get(name, name)


def coerce(setting: Setting, value: Any, name: str | None = None) -> Any:
    """``value`` turned into the setting's type and checked against its constraint.

    Parameters
    ----------
    setting : Setting
        The setting.
    value : object
        As given (config files give text or numbers; None means "not set").
    name : str, optional
        The name to use in errors (e.g. ``random_state`` for the estimator).

    Returns
    -------
    object
        The typed value (None stays None).

    Raises
    ------
    ConfigError
        When the value has the wrong type or breaks the constraint.
    """
    name = name or setting.name
    if value is None:
        if setting.default is not None:
            raise ConfigError(f"{name} must be set (default {setting.shown_default})",
                              f"set `{name}`, or leave it out for the default")
        return None
    if setting.kind == "int":
        value = _as_int(name, value)
    elif setting.kind == "float":
        value = _as_float(name, value)
    elif setting.kind == "bool":
        value = _as_bool(name, value)
    elif setting.kind == "rate":
        value = value if value == "auto" else _positive_rate(name, value)
    elif setting.kind == "mapping":
        value = _as_mapping(name, value)
    elif setting.kind == "text" and not isinstance(value, str):
        raise ConfigError(f"{name} must be text, got {value!r}", f"set `{name}` to a text value")
    _check_constraint(setting, name, value)
    return value


def check_schedule(n_iter: int, early_exaggeration_iter: int) -> None:
    """Raise :class:`ConfigError` when the early phase is longer than the whole run."""
    if early_exaggeration_iter > n_iter:
        raise ConfigError(f"early_exaggeration_iter ({early_exaggeration_iter}) exceeds n_iter ({n_iter})",
                          "lower `early_exaggeration_iter` or raise `n_iter`")


def _check_constraint(setting: Setting, name: str, value: Any) -> None:
    if setting.choices is not None and value not in setting.choices:
        raise ConfigError(f"{name} must be one of {', '.join(setting.choices)}, got {value!r}",
                          f"set `{name}` to one of {', '.join(setting.choices)}")
    if setting.pattern is not None and not re.match(setting.pattern, value):
        raise ConfigError(f"{name} must be {setting.pattern_text}, got {value!r}",
                          f"set `{name}` to {setting.pattern_text}")
    if setting.positive and not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}", f"set `{name}` to a number above 0")
    low, high = setting.minimum, setting.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = f"between {_number(low)} and {_number(high)}" if high is not None else f"at least {_number(low)}"
        raise ConfigError(f"{name} must be {allowed}, got {value}", f"set `{name}` to {allowed}")
    if value in setting.excluded:
        raise ConfigError(f"{name} must not be {value}", f"set `{name}` to another value")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, got {value!r}", f"set `{name}` to a whole number")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}", f"set `{name}` to a whole number") from None


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}", f"set `{name}` to a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}", f"set `{name}` to a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", f"set `{name}` to a finite number")
    return number


def _as_mapping(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name} is not valid JSON ({exc.msg} at character {exc.pos})",
                              f'set `{name}` to JSON text such as {{"endpoint_url": "http://host:9000"}}') from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a mapping of option names to values",
                          f'set `{name}` to a mapping in the config file, or to JSON text such as '
                          '{"endpoint_url": "http://host:9000"}')
    return value


def _positive_rate(name: str, value: Any) -> float:
    try:
        number = _as_float(name, value)
    except ConfigError:
        raise ConfigError(f"{name} must be a number or 'auto', got {value!r}", f"set `{name}` to auto") from None
    if number <= 0:
        raise ConfigError(f"{name} must be a positive number or 'auto', got {number}", f"set `{name}` to auto")
    return number


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}", f"set `{name}` to true or false")


def flag_text(message: str, from_file: dict[str, str] | None = None) -> str:
    """``message`` with every backticked setting name replaced by its CLI flag.

    ``from_file`` maps settings a config file gave (and no flag overrode) to the
    file's name; those read ``perplexity in run.yaml`` instead of ``--perplexity``.
    """
    def replace(match: re.Match) -> str:
        name = canonical_name(match.group(1))
        setting = BY_NAME.get(name)
        if setting is None:
            return match.group(0)
        return f"{name} in {from_file[name]}" if from_file and name in from_file else setting.cli_flag

    return re.sub(r"`([a-z_]+)`", replace, message)


README_GROUPS = (("input", "Inputs"), ("map", "The map"), ("interactions", "Interactions (co-occurrence)"),
                 ("cluster", "Cluster"), ("output", "Outputs and the run"))


def readme_table() -> str:
    """The README's settings table (Markdown), generated from :data:`SETTINGS`."""
    lines = ["| flag | config key | default | meaning |", "|---|---|---|---|"]
    for group, title in README_GROUPS:
        lines.append(f"| **{title}** | | | |")
        for setting in SETTINGS:
            if setting.group != group:
                continue
            meaning = flag_text(setting.details or setting.help)
            if setting.choices and not setting.details:
                meaning += ": " + ", ".join(f"`{choice}`" for choice in setting.choices)
            meaning = meaning.replace("|", "\\|")
            lines.append(f"| `{setting.cli_flag}` | `{setting.name}` | {_default_cell(setting)} | {meaning} |")
    return "\n".join(lines)


def _default_cell(setting: Setting) -> str:
    shown = setting.shown_default
    return shown if setting.default_text is not None or setting.default is None else f"`{shown}`"

