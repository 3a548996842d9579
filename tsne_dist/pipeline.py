"""Wires the stages: decides what is done, runs the rest, times them, writes outputs.

Stages never call each other. Each reads what earlier stages stored, writes one
group of the run store, then its marker. A stage's fingerprint hashes its
parameters and its upstream fingerprints, so a changed parameter recomputes that
stage and everything after it, and a finished stage with the same fingerprint is
skipped.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import zarr

from . import __version__
from .affinity import joint_probabilities
from .config import Config, build_config, read_config_file
from .errors import ConfigError
from .io.sources import describe_source, is_in_memory, require_exists, source_name
from .io.tables import check_columns, check_ids, join_metadata, read_ids, read_table
from .io.vectors import check_item_count, check_vectors, read_vectors
from .metrics import collapse_check, neighbour_quality, silhouettes
from .neighbors import choose_backend, gpu_free_bytes, graph_recall, nearest_neighbors
from .neighbors.gpu import rapids_search
from .outputs import layout_table, prepare_out_dir, remove_outputs, write_layout, write_map, write_metrics
from .progress import StageTimings
from .store import STORE_NAME, RunStore, fingerprint, needs_replacing, read_csr, stored_marker, write_array, write_csr
from .tsne import choose_engine, optimize_layout, pca_init, random_init

logger = logging.getLogger("tsne_dist")

STAGES = ("vectors", "knn", "affinities", "layout", "metrics")


@dataclass
class Result:
    """What a run produced.

    Attributes
    ----------
    out : str
        Output folder.
    layout : pd.DataFrame
        ``id, x, y`` and metadata columns (as in ``layout.parquet``).
    metrics : dict
        As in ``metrics.json``.
    stages_run, stages_skipped : list of str
        Stages computed by this call, and those found already done.
    """

    out: str
    layout: pd.DataFrame
    metrics: dict[str, Any]
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)


class _Runner:
    """One run: the store, the fingerprints so far, and the timings."""

    def __init__(self, config: Config, out: str) -> None:
        self.config = config
        self.out = out
        self.timings = StageTimings()
        self.fingerprints: dict[str, str] = {}
        self.stages_run: list[str] = []
        self.stages_skipped: list[str] = []
        self.store = RunStore(out, _identity(config), config.to_dict(), overwrite=config.overwrite)
        if config.overwrite:
            remove_outputs(out)

    def _fingerprint(self, name: str, params: dict[str, Any], upstream: tuple[str, ...]) -> str:
        return fingerprint(name, params, [self.fingerprints[up] for up in upstream])

    def stage(self, name: str, params: dict[str, Any], upstream: tuple[str, ...], compute) -> bool:
        """Run ``compute(group, params)`` unless the stage is done; True if it ran."""
        stage_fp = self._fingerprint(name, params, upstream)
        self.fingerprints[name] = stage_fp
        if self.store.is_done(name, stage_fp):
            logger.info("stage %s: already done with these settings, skipped", name)
            self.stages_skipped.append(name)
            return False
        start = time.perf_counter()
        with self.timings.stage(name):
            group = self.store.begin(name)
            extra = compute(group, params) or {}
        self.store.finish(name, stage_fp, params, time.perf_counter() - start,
                          {"peak_memory_mb": self.timings.peak_memory_mb[name], **extra})
        self.stages_run.append(name)
        return True


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


def coerce_config(config: Config | dict[str, Any] | str) -> Config:
    """A validated Config from a Config, a dict of settings, or a config file path.

    In-memory inputs are normalised: ids given as a list, tuple or Series become
    an array, and vectors given as a DataFrame become its array of values.
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


def run(config: Config | dict[str, Any] | str) -> Result:
    """Make a map: vectors -> kNN -> affinities -> t-SNE layout -> metrics -> outputs.

    Parameters
    ----------
    config : Config, dict or str
        Settings (see :class:`tsne_dist.config.Config`), or a YAML/TOML path.

    Returns
    -------
    Result

    Raises
    ------
    tsne_dist.errors.UserError
        For bad input or settings; no stage is marked done by a failed call.
    """
    config = coerce_config(config)
    if config.interactions is not None:
        from .cooccurrence.stages import run_interactions

        return run_interactions(config)
    _require_inputs(config)
    choose_engine(config.engine)  # e.g. --engine cupy without a GPU fails before any work
    if config.knn == "cuml":
        rapids_search()  # --knn cuml without cuML or cuVS fails before any work
    out = prepare_out_dir(config.out)
    logger.info("tsne_dist %s: run in %s", __version__, out)
    # Everything is checked before the store is touched: a user error changes nothing.
    replace = needs_replacing(out, _identity(config), config.overwrite)
    params = _vectors_params(config)
    vectors_done = not replace and (stored_marker(out, "vectors") or {}).get("fingerprint") == fingerprint(
        "vectors", params, [])
    inputs = None if vectors_done else _read_inputs(config)
    if inputs is not None:
        ids, (n_items, n_dims) = inputs[1], inputs[0].shape
    else:
        ids, (n_items, n_dims) = _stored_items(out)
    check_item_count(n_items, config.perplexity, config.k)
    metadata = _load_metadata(config, ids)
    runner = _Runner(config, out)
    _vectors_stage(runner, params, inputs)
    _knn_stage(runner, n_items, n_dims)
    _affinity_stage(runner)
    _layout_stage(runner, n_items)
    _metrics_stage(runner, metadata)
    return _write_outputs(runner, ids, metadata)


def _require_inputs(config: Config) -> None:
    require_exists(config.vectors, "vectors file")
    for url, what in ((config.ids, "ids file"), (config.metadata, "metadata file")):
        if url is not None:
            require_exists(url, what)


def _vectors_params(config: Config) -> dict[str, Any]:
    return {
        "source": describe_source(config.vectors),
        "ids": describe_source(config.ids) if config.ids is not None else None,
        "vector_col": config.vector_col, "id_col": config.id_col,
    }


def _read_inputs(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate vectors and ids; nothing is written yet."""
    raw, file_ids = read_vectors(config.vectors, config.vector_col, config.id_col)
    vectors = check_vectors(raw, source_name(config.vectors))
    ids_source = config.ids if config.ids is not None else config.vectors
    ids = check_ids(read_ids(config.ids, config.id_col) if config.ids is not None else file_ids, len(vectors),
                    source_name(ids_source))
    return vectors, ids


def _vectors_stage(runner: _Runner, params: dict[str, Any], inputs: tuple[np.ndarray, np.ndarray] | None) -> None:
    def compute(group, params):
        vectors, ids = inputs
        write_array(runner.store.begin("items"), "ids", ids)
        write_array(group, "vectors", vectors)
        logger.info("%d items x %d dimensions", *vectors.shape)
        return {"n_items": int(vectors.shape[0]), "n_dims": int(vectors.shape[1])}

    runner.stage("vectors", params, (), compute)


def metadata_table(config: Config) -> pd.DataFrame | None:
    """The metadata table with its id column and requested columns checked (not yet joined)."""
    if config.metadata is None:
        check_columns(None, {"color-by": config.color_by, "label": config.label})
        return None
    table = read_table(config.metadata, "metadata file")
    if config.id_col not in table.columns:
        raise ConfigError(
            f"metadata {source_name(config.metadata)} has no id column {config.id_col!r} (columns: {', '.join(map(str, table.columns))})",
            "pass --id-col NAME",
        )
    check_columns(table.drop(columns=[config.id_col]), {"color-by": config.color_by, "label": config.label})
    return table


def _load_metadata(config: Config, ids: np.ndarray) -> pd.DataFrame | None:
    table = metadata_table(config)
    return None if table is None else join_metadata(ids, table, config.id_col, source_name(config.metadata))


def _stored_items(out: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Ids and (N, D) of a finished vectors stage, read-only."""
    root = zarr.open_group(os.path.join(out, STORE_NAME), mode="r")
    ids = root["items"]["ids"][...]
    return (ids if ids.dtype.kind in "iu" else ids.astype(object)), tuple(root["vectors"]["vectors"].shape)


def _vectors(runner: _Runner) -> np.ndarray:
    return runner.store.group("vectors")["vectors"][...]


def _knn_stage(runner: _Runner, n_items: int, n_dims: int) -> None:
    config = runner.config
    backend, _ = choose_backend(config.knn, n_items, n_dims, gpu_free_bytes=gpu_free_bytes())
    params = {"backend": backend, "k": config.k, "metric": config.metric, "seed": config.seed}
    if backend == "pynndescent":
        params["shards"] = config.knn_shards

    def compute(group, params):
        vectors = _vectors(runner)  # read from the store once for the search and the recall estimate
        result = nearest_neighbors(vectors, config.k, backend=config.knn, metric=config.metric,
                                   seed=config.seed, n_jobs=config.n_jobs, cluster=config.cluster,
                                   n_shards=config.knn_shards)
        write_array(group, "indices", result.indices)
        write_array(group, "distances", result.distances)
        extra = {"reason": result.reason}
        if backend != "bruteforce":
            recall = graph_recall(vectors, result.indices, metric=config.metric, seed=config.seed)
            extra["graph_recall"] = round(recall, 5)
            logger.info("kNN graph recall@%d on a 1,000-item sample: %.4f", config.k, recall)
        return extra

    runner.stage("knn", params, ("vectors",), compute)


def _affinity_stage(runner: _Runner) -> None:
    params = {"perplexity": runner.config.perplexity, "method": "gaussian-perplexity"}

    def compute(group, params):
        knn = runner.store.group("knn")
        matrix = joint_probabilities(knn["indices"][...], knn["distances"][...], runner.config.perplexity)
        write_csr(group, matrix)
        return {"nnz": int(matrix.nnz)}

    runner.stage("affinities", params, ("knn",), compute)


def _layout_stage(runner: _Runner, n_items: int) -> None:
    config = runner.config
    engine, _ = choose_engine(config.engine, n_items)
    params = {
        "engine": engine, "n_iter": config.n_iter, "early_exaggeration_iter": config.early_exaggeration_iter,
        "early_exaggeration": config.early_exaggeration, "exaggeration": config.exaggeration,
        "dof": config.dof, "learning_rate": config.learning_rate, "initialization": config.initialization, "seed": config.seed,
    }

    def compute(group, params):
        P = read_csr(runner.store.group("affinities"))
        if config.initialization == "pca" and "vectors" in runner.fingerprints:
            init = pca_init(_vectors(runner), config.seed)
        else:
            init = random_init(P.shape[0], config.seed)
        result = optimize_layout(
            P, init, engine=config.engine, n_iter=config.n_iter, early_exaggeration_iter=config.early_exaggeration_iter,
            early_exaggeration=config.early_exaggeration, exaggeration=config.exaggeration,
            learning_rate=config.learning_rate, seed=config.seed, n_jobs=config.n_jobs, dof=config.dof,
        )
        write_array(group, "layout", result.layout)
        group.attrs.update({"engine": result.engine, "iterations": config.n_iter,
                            "kl_divergence": result.kl_divergence, "kl_history": result.kl_history})
        logger.info("layout: KL divergence %.4f after %d iterations", result.kl_divergence, config.n_iter)
        return {"engine": result.engine, "reason": result.reason}

    runner.stage("layout", params, ("affinities",), compute)


def _metrics_stage(runner: _Runner, metadata: pd.DataFrame | None) -> None:
    config = runner.config
    labels = metadata[config.label] if (metadata is not None and config.label) else None
    params = {
        "sample": config.metrics_sample, "seed": config.seed, "label": config.label, "metric": config.metric,
        "metadata": describe_source(config.metadata) if (config.metadata is not None and config.label) else None,
    }

    def compute(group, params):
        vectors = _vectors(runner)
        layout = runner.store.group("layout")["layout"][...]
        quality = neighbour_quality(vectors, layout, k=10, sample=config.metrics_sample, seed=config.seed,
                                    metric=config.metric)
        collapse, warnings = collapse_check(vectors, sample=config.metrics_sample, seed=config.seed)
        figures: dict[str, Any] = {
            "knn_recall@10": round(quality.recall, 5), "trustworthiness@10": round(quality.trustworthiness, 5),
            "metrics_sample": quality.n_sampled, "collapse": collapse,
        }
        if labels is not None:
            scores = silhouettes(vectors, layout, labels, sample=config.metrics_sample, seed=config.seed,
                                 metric=config.metric)
            if scores is None:
                warnings.append(f"silhouette of {config.label!r} is undefined (needs at least two labels)")
            else:
                figures.update({key: round(value, 5) for key, value in scores.items()})
        for warning in warnings:
            logger.warning(warning)
        group.attrs.update({"figures": figures, "warnings": warnings})
        return {}

    runner.stage("metrics", params, ("layout",), compute)


def _write_outputs(runner: _Runner, ids: np.ndarray, metadata: pd.DataFrame | None) -> Result:
    config = runner.config
    store = runner.store
    layout = store.group("layout")["layout"][...]
    layout_attrs = store.group("layout").attrs.asdict()
    metrics_attrs = store.group("metrics").attrs.asdict()
    with runner.timings.stage("outputs"):
        table = layout_table(ids, layout, metadata)
        write_layout(runner.out, table)
        values = metadata[config.color_by] if (metadata is not None and config.color_by) else None
        title = f"t-SNE of {len(ids):,} items" + (f", coloured by {config.color_by}" if config.color_by else "")
        write_map(runner.out, layout, values, title, config.top_categories)
    metrics = _metrics_document(runner, len(ids), layout_attrs, metrics_attrs)
    write_metrics(runner.out, metrics)
    _export_viewer(runner.out)
    logger.info("map written to %s (recall@10 %.3f, trustworthiness@10 %.3f)", runner.out,
                metrics["knn_recall@10"], metrics["trustworthiness@10"])
    return Result(out=runner.out, layout=table, metrics=metrics, stages_run=runner.stages_run,
                  stages_skipped=runner.stages_skipped)


def _export_viewer(out: str) -> None:
    """Write OUT/viewer/ (the browser map); only warn when the bundle was not built into this install."""
    from .viz.export import bundle_available, export_viewer

    if not bundle_available():
        logger.warning("viewer not written: its bundle is not installed (reinstall tsne-dist with npm on PATH)")
        return
    export_viewer(out)


def _metrics_document(runner: _Runner, n_items: int, layout_attrs: dict, metrics_attrs: dict) -> dict[str, Any]:
    store = runner.store
    names = [name for name in ("items", "cooccurrence") if store.marker(name)] + list(STAGES)  # interactions path
    markers = {name: store.marker(name) or {} for name in names}
    timings = {name: markers[name].get("seconds") for name in names}
    timings["outputs"] = runner.timings.seconds.get("outputs")
    memory = {name: markers[name].get("peak_memory_mb") for name in names}
    memory["outputs"] = runner.timings.peak_memory_mb.get("outputs")
    figures = metrics_attrs["figures"]
    return {
        "n_items": n_items,
        "n_dims": markers["vectors"].get("n_dims"),
        "knn_recall@10": figures["knn_recall@10"],
        "trustworthiness@10": figures["trustworthiness@10"],
        **{key: figures[key] for key in ("silhouette_2d", "silhouette_hd") if key in figures},
        "kl_divergence": layout_attrs.get("kl_divergence"),
        "engine": layout_attrs.get("engine"),
        "knn_backend": markers["knn"].get("params", {}).get("backend"),
        "knn_graph_recall": markers["knn"].get("graph_recall", 1.0),
        "perplexity": runner.config.perplexity,
        "n_neighbors": runner.config.k,
        "metrics_sample": figures["metrics_sample"],
        "collapse": figures["collapse"],
        "warnings": metrics_attrs.get("warnings", []),
        "timings": timings,
        "peak_memory_mb": memory,
        "stages_run": runner.stages_run,
        "stages_skipped": runner.stages_skipped,
        "tsne_dist_version": __version__,
    }
