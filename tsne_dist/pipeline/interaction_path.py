"""The interactions path: items -> cooccurrence -> knn (similarity top-k) -> shared stages.

``items`` builds the vocabulary (and checks every filter leaves something),
``cooccurrence`` writes the CSR matrix on Dask, ``knn`` writes each item's
similarity top-k in the vector path's format, so the affinity and layout stages
run unchanged. With ``embed_dim`` the ``vectors`` stage holds PPMI-SVD vectors
instead and the vector path's kNN follows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import numpy as np
import pandas as pd

from ..affinity import check_item_count
from ..config import Config
from ..cooccurrence.embedding import ppmi_svd_vectors
from ..cooccurrence.matrix import build_cooccurrence, collection_stats, read_spilled
from ..cooccurrence.pairs import PairSpec
from ..cooccurrence.similarity import top_k_neighbours
from ..cooccurrence.vocabulary import build_vocabulary, integer_ids, item_counts
from ..errors import InputError
from ..io.interactions import InteractionColumns, check_stats, clean_partition, read_interactions
from ..io.sources import describe_source, open_fs
from ..storage import remove_folder
from ..store import COOCCURRENCE_PARTS, SPILLED_LOG
from .finish import Result, write_outputs
from .inputs import joined_metadata, metadata_table
from .plan import Plan
from .runner import StageRunner, check_location, start_runner
from .shared_stages import knn_stage, map_from_neighbours

logger = logging.getLogger("tsne_dist")

ClientFactory = Callable[[], Any]


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
        fs, path = open_fs(source)
        return {"url": source, "files": [describe_source(fs.unstrip_protocol(name)) for name in sorted(fs.glob(path))]}
    return describe_source(source)


def run_interactions(plan: Plan) -> Result:
    """Make a map from an interactions table (see :func:`tsne_dist.pipeline.run`)."""
    config = plan.config
    # dask's p2p shuffle logs every shuffle's start and end at WARNING; they are routine here
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    check_location(plan)  # refuses a foreign store before any work
    frame = read_interactions(config.interactions, columns_of(config))  # missing columns fail here
    table = metadata_table(config)
    runner = start_runner(plan)
    with ExitStack() as stack:
        clients: list = []

        def client():
            if not clients:
                from ..cluster import dask_client

                # a one-partition log is processed faster than worker processes start
                clients.append(stack.enter_context(dask_client(plan.cluster, in_process=frame.npartitions == 1)))
            return clients[0]

        ids = items_stage(runner, frame, table, client)
        if plan.previous is not None:  # refused before the co-occurrence: the ids are known from here on
            plan.previous.shared_with(ids, "this log's items")
        metadata = joined_metadata(config, ids, table)
        cooccurrence_stage(runner, frame, client)
    if config.embed_dim is not None:
        runner.resolve(len(ids), config.embed_dim)
        svd_stage(runner)
        knn_stage(runner)
    else:
        runner.resolve(len(ids), None)
        similarity_stage(runner)
    map_from_neighbours(runner, metadata)
    return write_outputs(runner, ids, metadata)


def items_params(config: Config) -> dict[str, Any]:
    """What the ``items`` stage depends on: the log and the filters."""
    return {
        "source": describe_interactions(config.interactions), "collection_col": config.collection_col,
        "item_col": config.item_col, "list_col": config.list_col, "weight_col": config.weight_col,
        "time_col": config.time_col, "min_count": config.min_count, "max_items": config.max_items,
        "max_collection_size": config.max_collection_size, "seed": config.seed,
        "ids": "as written",  # CSV ids read as text since 0.1.0's stores: an older items stage is redone
    }


def items_stage(runner: StageRunner, frame, table: pd.DataFrame | None, client: ClientFactory) -> np.ndarray:
    """``items``: the vocabulary (ids in index order) and the filter counts; returns the ids."""
    config = runner.config
    spec = pair_spec(config)

    def compute(group):
        client()
        spill = runner.store.scratch(SPILLED_LOG)
        counts, stats = item_counts(frame, spill)
        check_stats(stats, config.interactions, columns_of(config))
        vocabulary = build_vocabulary(counts, config.min_count, config.max_items)
        filters = {"rows": stats["rows"], "rows_dropped_missing_id": stats["null_collection"] + stats["null_item"],
                   "collections": stats["collections"], **vocabulary.filters}
        if len(vocabulary.ids) == 0:
            raise InputError(_nothing_left(filters, config), "lower `min_count`")
        spilled = read_spilled(spill, clean_partition(frame._meta)[0])
        collections = collection_stats(frame if spilled is None else spilled, vocabulary.ids, spec)
        filters.update({"collections_kept": collections["kept"], "collections_capped": collections["capped"]})
        if collections["kept"] == 0:
            raise InputError(_nothing_left(filters, config), "lower `min_count` or check `collection_col`")
        ids = _id_array(vocabulary.ids)
        check_item_count(len(ids), config.perplexity, runner.plan.k)
        joined_metadata(config, ids, table, log_ignored=False)  # items without metadata fail before the marker
        runner.store.write(group, "ids", ids)
        runner.store.write(group, "collection_counts", vocabulary.counts)
        group.attrs["filters"] = filters
        logger.info("items: %s", ", ".join(f"{key} {value:,}" for key, value in filters.items()))
        if collections["capped"]:
            logger.info("items: %d collections longer than %d items were capped", collections["capped"],
                        config.max_collection_size)
        return {"n_items": int(len(ids)), "filters": filters, "spilled_log": spilled is not None}

    runner.stage("items", items_params(config), (), compute)
    return runner.store.read_ids()


def _nothing_left(filters: dict[str, int], config: Config) -> str:
    return ("nothing left after filtering the interactions: "
            f"{filters['rows']:,} rows ({filters['rows_dropped_missing_id']:,} without an id), "
            f"{filters['collections']:,} collections, {filters['items_seen']:,} items, "
            f"{filters['items_min_count']:,} in at least {config.min_count} collections, "
            f"{filters['items_kept']:,} kept" + (
                f", {filters['collections_kept']:,} collections with at least 2 kept items"
                if "collections_kept" in filters else ""))


def _id_array(ids: pd.Index) -> np.ndarray:
    """The vocabulary's ids as stored: integers as int64 (uint64 kept), integer text as int64, other text as text."""
    values = ids.to_numpy()
    if values.dtype.kind == "u" and values.dtype.itemsize == 8:
        return values
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0):
        return values.astype(np.int64)
    as_integers = integer_ids(values)
    return as_integers if as_integers is not None else values.astype(str).astype(object)


def cooccurrence_stage(runner: StageRunner, frame, client: ClientFactory) -> None:
    """``cooccurrence``: the item-item CSR matrix, built on Dask.

    Reads the log the ``items`` stage spilled (already grouped by collection) when
    that stage's marker says it spilled one and the spill is still complete.
    """
    config = runner.config
    spec = pair_spec(config)
    params = {"weight_combine": spec.weight_combine, "tau": spec.tau, "use_time": spec.use_time}

    def compute(group):
        vocabulary = _vocabulary_like(frame, pd.Index(runner.store.read("items", "ids")))
        spill = runner.store.scratch(SPILLED_LOG)
        source = frame
        if (runner.store.marker("items") or {}).get("spilled_log"):
            spilled = read_spilled(spill, clean_partition(frame._meta)[0])
            if spilled is not None:
                source = spilled
                logger.info("co-occurrence: reading the log the items stage spilled (already grouped by collection)")
        stats = build_cooccurrence(client(), source, vocabulary, spec, group,
                                   runner.store.scratch(COOCCURRENCE_PARTS))
        remove_folder(spill)
        logger.info("co-occurrence: %d x %d, %s non-zeros from %s ordered pairs of %s collections "
                    "(%d capped at %d items)", len(vocabulary), len(vocabulary), f"{stats['nnz']:,}",
                    f"{stats['pairs']:,}", f"{stats['kept']:,}", stats["capped"], config.max_collection_size)
        return {key: stats[key] for key in ("nnz", "pairs", "kept", "capped", "interactions", "n_blocks")}

    runner.stage("cooccurrence", params, ("items",), compute)


def _vocabulary_like(frame, stored: pd.Index) -> pd.Index:
    """Stored ids in the dtype the table's item column has, so lookups match (integer ids
    of a CSV, read as text, are looked up as the text they were)."""
    dtype = frame["item"].dtype
    if dtype.kind in "iuf":
        return pd.Index(stored.astype(dtype)) if stored.dtype != dtype else stored
    if stored.dtype.kind in "iu":
        return pd.Index(stored.astype(str), dtype=object)
    return stored


def similarity_stage(runner: StageRunner) -> None:
    """``knn`` from the co-occurrence: each item's top-k by similarity, padded to k."""
    config, plan = runner.config, runner.plan
    params = {"backend": plan.choice("knn"), "k": plan.k, "similarity": config.similarity,
              "ppmi_shift": config.ppmi_shift if config.similarity == "ppmi" else None}

    def compute(group):
        cooccurrence = runner.store.group("cooccurrence")
        top = top_k_neighbours(cooccurrence, plan.k, config.similarity,
                               int(cooccurrence.attrs.get("n_collections", 1)), config.ppmi_shift)
        runner.store.write(group, "indices", top.indices)
        runner.store.write(group, "distances", top.distances)
        runner.store.write(group, "n_real", top.n_real)
        return {"reason": plan.choices["knn"].reason, "n_padded": top.n_padded, "n_isolated": top.n_isolated}

    runner.stage("knn", params, ("cooccurrence",), compute)


def svd_stage(runner: StageRunner) -> None:
    """``vectors`` from the co-occurrence: PPMI-SVD item vectors of ``embed_dim`` dimensions."""
    config = runner.config

    def compute(group):
        vectors = ppmi_svd_vectors(runner.store.group("cooccurrence"), config.embed_dim, seed=config.seed)
        runner.store.write(group, "vectors", vectors)
        return {"n_items": int(vectors.shape[0]), "n_dims": int(vectors.shape[1]), "source": "ppmi-svd"}

    runner.stage("vectors", {"embed_dim": config.embed_dim, "method": "ppmi-randomized-svd", "seed": config.seed},
                 ("cooccurrence",), compute)
