"""The interactions path of a run: items -> cooccurrence -> knn (similarity top-k).

``items`` builds the vocabulary (and checks every filter leaves something),
``cooccurrence`` writes the CSR matrix on Dask, ``knn`` writes each item's
similarity top-k in the vector path's format, so the affinity and layout stages
run unchanged. With ``embed_dim`` the ``vectors`` stage holds PPMI-SVD vectors
instead and the whole vector path follows.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import ExitStack
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..config import Config
from ..errors import InputError
from ..io.interactions import InteractionColumns, check_stats, clean_partition, read_interactions
from ..io.sources import describe_source, is_in_memory, require_exists, source_name
from ..io.vectors import check_item_count
from ..store import write_array
from .embedding import ppmi_svd_vectors
from .matrix import build_cooccurrence, collection_stats, read_spilled
from .pairs import PairSpec
from .quality import graph_quality
from .similarity import top_k_neighbours
from .vocabulary import build_vocabulary, item_counts

logger = logging.getLogger("tsne_dist")

SCRATCH_DIR = ".cooccurrence-parts"
SPILL_DIR = ".cooccurrence-log"  # the cleaned log, shuffled by collection once, read by the later passes


def columns_of(config: Config) -> InteractionColumns:
    """The interaction column names of a config."""
    return InteractionColumns(collection_col=config.collection_col, item_col=config.item_col,
                              weight_col=config.weight_col, time_col=config.time_col, list_col=config.list_col)


def pair_spec(config: Config) -> PairSpec:
    """Pair weighting and caps of a config."""
    return PairSpec(weight_combine=config.weight_combine if config.weight_col else None, tau=config.tau,
                    max_collection_size=config.max_collection_size, seed=config.seed,
                    use_time=config.time_col is not None)


def describe_interactions(source: Any) -> dict[str, Any]:
    """Identity and version of the interactions for fingerprints (in-memory tables are hashed)."""
    import dask.dataframe as dd

    if isinstance(source, dd.DataFrame):
        from dask.base import tokenize

        return {"url": "in-memory dask DataFrame", "token": tokenize(source)}
    if isinstance(source, str) and any(char in source for char in "*?["):
        from ..io.sources import open_fs

        fs, path = open_fs(source)
        return {"url": source, "files": [describe_source(fs.unstrip_protocol(name)) for name in sorted(fs.glob(path))]}
    return describe_source(source)


def run_interactions(config: Config):
    """Make a map from an interactions table; see :func:`tsne_dist.pipeline.run`."""
    from .. import pipeline
    from ..outputs import prepare_out_dir
    from ..store import needs_replacing
    from ..tsne import choose_engine

    if isinstance(config.interactions, str) and not any(char in config.interactions for char in "*?["):
        require_exists(config.interactions, "interactions file")
    if config.metadata is not None and not is_in_memory(config.metadata):
        require_exists(config.metadata, "metadata file")
    choose_engine(config.engine)
    # dask's p2p shuffle logs every shuffle's start and end at WARNING; they are routine here
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    out = prepare_out_dir(config.out)
    logger.info("tsne_dist %s: run in %s (interactions %s)", __version__, out, source_name(config.interactions))
    needs_replacing(out, pipeline._identity(config), config.overwrite)  # refuses a foreign store before any work
    frame = read_interactions(config.interactions, columns_of(config))  # missing columns fail here
    table = pipeline.metadata_table(config)
    runner = pipeline._Runner(config, out)
    with ExitStack() as stack:
        clients: list = []

        def client():
            if not clients:
                from ..cluster import dask_client

                clients.append(stack.enter_context(dask_client(config.cluster)))
            return clients[0]

        ids, metadata = _items_stage(runner, frame, table, client)
        _cooccurrence_stage(runner, frame, ids, client)
    n_items = len(ids)
    if config.embed_dim is not None:
        _svd_stage(runner)
        pipeline._knn_stage(runner, n_items, config.embed_dim)
    else:
        _similarity_stage(runner)
    pipeline._affinity_stage(runner)
    pipeline._layout_stage(runner, n_items)
    if config.embed_dim is not None:
        pipeline._metrics_stage(runner, metadata)
    else:
        _graph_metrics_stage(runner, metadata)
    return pipeline._write_outputs(runner, ids, metadata)


def _join(config: Config, ids: np.ndarray, table: pd.DataFrame | None) -> pd.DataFrame | None:
    from ..io.tables import join_metadata

    if table is None:
        return None
    return join_metadata(ids, table, config.id_col, source_name(config.metadata))


def _items_params(config: Config) -> dict[str, Any]:
    return {
        "source": describe_interactions(config.interactions), "collection_col": config.collection_col,
        "item_col": config.item_col, "list_col": config.list_col, "weight_col": config.weight_col,
        "time_col": config.time_col, "min_count": config.min_count, "max_items": config.max_items,
        "max_collection_size": config.max_collection_size, "seed": config.seed,
    }


def _items_stage(runner, frame, table, client) -> tuple[np.ndarray, pd.DataFrame | None]:
    config = runner.config
    spec = pair_spec(config)

    def compute(group, params):
        client()
        spill = os.path.join(runner.out, SPILL_DIR)
        counts, stats = item_counts(frame, spill)
        check_stats(stats, config.interactions, columns_of(config))
        vocabulary = build_vocabulary(counts, config.min_count, config.max_items)
        filters = {"rows": stats["rows"], "rows_dropped_missing_id": stats["null_collection"] + stats["null_item"],
                   "collections": stats["collections"], **vocabulary.filters}
        if len(vocabulary.ids) == 0:
            raise InputError(_nothing_left(filters, config), "lower --min-count")
        spilled = read_spilled(spill, clean_partition(frame._meta)[0])
        collections = collection_stats(frame if spilled is None else spilled, vocabulary.ids, spec)
        with open(os.path.join(spill, "_fingerprint"), "w") as handle:
            handle.write(runner.fingerprints["items"])
        filters.update({"collections_kept": collections["kept"], "collections_capped": collections["capped"]})
        if collections["kept"] == 0:
            raise InputError(_nothing_left(filters, config), "lower --min-count or check --collection-col")
        ids = _id_array(vocabulary.ids)
        check_item_count(len(ids), config.perplexity, config.k)
        _join(config, ids, table)  # items without metadata fail before the stage is marked
        write_array(group, "ids", ids)
        write_array(group, "collection_counts", vocabulary.counts)
        group.attrs["filters"] = filters
        logger.info("items: %s", ", ".join(f"{key} {value:,}" for key, value in filters.items()))
        if collections["capped"]:
            logger.info("items: %d collections longer than %d items were capped", collections["capped"],
                        config.max_collection_size)
        return {"n_items": int(len(ids)), "filters": filters}

    runner.stage("items", _items_params(config), (), compute)
    ids = runner.store.group("items")["ids"][...]
    ids = ids if ids.dtype.kind in "iu" else ids.astype(object)
    return ids, _join(config, ids, table)


def _nothing_left(filters: dict[str, int], config: Config) -> str:
    return ("nothing left after filtering the interactions: "
            f"{filters['rows']:,} rows ({filters['rows_dropped_missing_id']:,} without an id), "
            f"{filters['collections']:,} collections, {filters['items_seen']:,} items, "
            f"{filters['items_min_count']:,} in at least {config.min_count} collections, "
            f"{filters['items_kept']:,} kept" + (
                f", {filters['collections_kept']:,} collections with at least 2 kept items"
                if "collections_kept" in filters else ""))


def _id_array(ids: pd.Index) -> np.ndarray:
    values = ids.to_numpy()
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0):
        return values.astype(np.int64)
    return values.astype(str).astype(object)


def _cooccurrence_stage(runner, frame, ids: np.ndarray, client) -> None:
    config = runner.config
    spec = pair_spec(config)
    params = {"weight_combine": spec.weight_combine, "tau": spec.tau, "use_time": spec.use_time}

    def compute(group, params):
        vocabulary = pd.Index(runner.store.group("items")["ids"][...])
        if vocabulary.dtype == object:
            vocabulary = _vocabulary_like(frame, vocabulary)
        spill = os.path.join(runner.out, SPILL_DIR)
        source = frame
        if _read_text(os.path.join(spill, "_fingerprint")) == runner.fingerprints["items"]:
            spilled = read_spilled(spill, clean_partition(frame._meta)[0])
            source = frame if spilled is None else spilled
            if spilled is not None:
                logger.info("co-occurrence: reading the log the items stage spilled (already grouped by collection)")
        stats = build_cooccurrence(client(), source, vocabulary, spec, group, os.path.join(runner.out, SCRATCH_DIR))
        shutil.rmtree(spill, ignore_errors=True)
        logger.info("co-occurrence: %d x %d, %s non-zeros from %s ordered pairs of %s collections "
                    "(%d capped at %d items)", len(vocabulary), len(vocabulary), f"{stats['nnz']:,}",
                    f"{stats['pairs']:,}", f"{stats['kept']:,}", stats["capped"], config.max_collection_size)
        return {key: stats[key] for key in ("nnz", "pairs", "kept", "capped", "interactions", "n_blocks")}

    runner.stage("cooccurrence", params, ("items",), compute)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _vocabulary_like(frame, stored: pd.Index) -> pd.Index:
    """Stored ids (text) in the dtype the table's item column has, so lookups match."""
    dtype = frame["item"].dtype
    if dtype.kind in "iuf":
        return pd.Index(stored.astype(dtype))
    return stored


def _similarity_params(config: Config) -> dict[str, Any]:
    return {"backend": f"cooccurrence-{config.similarity}", "k": config.k, "similarity": config.similarity,
            "ppmi_shift": config.ppmi_shift if config.similarity == "ppmi" else None}


def _similarity_stage(runner) -> None:
    config = runner.config

    def compute(group, params):
        cooc = runner.store.group("cooccurrence")
        top = top_k_neighbours(cooc, config.k, config.similarity, int(cooc.attrs.get("n_collections", 1)),
                               config.ppmi_shift)
        write_array(group, "indices", top.indices)
        write_array(group, "distances", top.distances)
        write_array(group, "n_real", top.n_real)
        return {"reason": f"similarity top-k on the co-occurrence matrix ({config.similarity})",
                "n_padded": top.n_padded, "n_isolated": top.n_isolated}

    runner.stage("knn", _similarity_params(config), ("cooccurrence",), compute)


def _svd_stage(runner) -> None:
    config = runner.config

    def compute(group, params):
        vectors = ppmi_svd_vectors(runner.store.group("cooccurrence"), config.embed_dim, seed=config.seed)
        write_array(group, "vectors", vectors)
        return {"n_items": int(vectors.shape[0]), "n_dims": int(vectors.shape[1]), "source": "ppmi-svd"}

    runner.stage("vectors", {"embed_dim": config.embed_dim, "method": "ppmi-randomized-svd", "seed": config.seed},
                 ("cooccurrence",), compute)


def _graph_metrics_stage(runner, metadata: pd.DataFrame | None) -> None:
    config = runner.config
    labels = metadata[config.label] if (metadata is not None and config.label) else None
    params = {"sample": config.metrics_sample, "seed": config.seed, "label": config.label,
              "against": "similarity graph",
              "metadata": describe_source(config.metadata) if (config.metadata is not None and config.label) else None}

    def compute(group, params):
        cooc = runner.store.group("cooccurrence")
        figures = graph_quality(cooc, runner.store.group("knn")["indices"][...],
                                runner.store.group("layout")["layout"][...], kind=config.similarity,
                                n_collections=int(cooc.attrs.get("n_collections", 1)), ppmi_shift=config.ppmi_shift,
                                sample=config.metrics_sample, seed=config.seed, labels=labels)
        figures = {key: (round(value, 5) if isinstance(value, float) else value) for key, value in figures.items()}
        figures["collapse"] = None  # no vectors to check on this path
        warnings: list[str] = []
        knn_marker = runner.store.marker("knn") or {}
        if knn_marker.get("n_padded"):
            warnings.append(f"{knn_marker['n_padded']} items have fewer than {config.k} co-occurring neighbours "
                            f"({knn_marker.get('n_isolated', 0)} have none); their lists were padded")
        if labels is not None and "silhouette_2d" not in figures:
            warnings.append(f"silhouette of {config.label!r} is undefined (needs at least two labels)")
        for warning in warnings:
            logger.warning(warning)
        group.attrs.update({"figures": figures, "warnings": warnings})
        return {}

    runner.stage("metrics", params, ("layout",), compute)
