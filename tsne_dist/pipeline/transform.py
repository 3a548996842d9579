"""``tsne-dist transform``: new items placed into a finished map, which stays exactly as it was."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..affinity import conditional_probabilities
from ..config import build_config
from ..errors import ConfigError, InputError, StoreError
from ..metrics import neighbour_quality, sample_items
from ..neighbors.exact import exact_knn_between
from ..outputs import LAYOUT_FILE, layout_table, write_layout, write_map, write_metrics
from ..progress import StageTimings, verbose_logging
from ..storage import Location, storage_options_applied
from ..store import RunStore
from ..tsne.transform import TRANSFORM_ITER, transform_layout
from ..version import __version__
from ..xp import cupy_or_none
from .inputs import joined_metadata, metadata_table, read_vector_inputs
from .previous import PreviousMap, read_previous

logger = logging.getLogger("tsne_dist")

NEW_COLUMN = "transformed"
METRICS_K = 10


@dataclass
class TransformResult:
    """What ``transform`` wrote.

    Attributes
    ----------
    out : str
        Output location.
    layout : pd.DataFrame
        The reference items as they were, then the new items, with a bool ``transformed``
        column (as in ``layout.parquet``).
    metrics : dict
        As in ``metrics.json``.
    """

    out: str
    layout: pd.DataFrame
    metrics: dict[str, Any]


def transform(reference: str, vectors: Any, out: str, *, ids: Any = None, metadata: Any = None, id_col: str = "id",
              vector_col: str | None = None, vector_cols: str | None = None, perplexity: float | None = None,
              n_iter: int = TRANSFORM_ITER, color_by: str | None = None, top_categories: int = 20,
              metrics_sample: int = 5000, seed: int = 0, storage_options: dict[str, Any] | None = None,
              verbose: bool = False) -> TransformResult:
    """Place new items into the finished map in ``reference`` without moving its items.

    Each new item gets its k = 3 x perplexity exact nearest reference items (in the
    reference run's metric), perplexity-calibrated affinities to them, and a position
    that minimises its own KL divergence against the fixed map
    (:func:`tsne_dist.tsne.transform.transform_layout`; CuPy when a GPU is usable).

    Parameters
    ----------
    reference : str
        A finished run made from vectors (folder or URL).
    vectors : str or np.ndarray
        (M, D) new item vectors, D as in the reference (same inputs as ``run``).
    out : str
        Output folder or URL for ``layout.parquet``, ``map.png`` and ``metrics.json``;
        not a run's folder.
    ids, metadata, id_col, vector_col, vector_cols
        As for ``run``; the new ids must not be in the reference map.
    perplexity : float, optional
        Default: the reference run's.
    n_iter : int
        Optimisation steps per new item.
    color_by : str, optional
        Column of the combined table that colours ``map.png`` (default: the reference run's).
    top_categories, metrics_sample, seed
        As for ``run``; metrics score the new items (up to ``metrics_sample`` of them).
    storage_options : dict, optional
        fsspec options for URLs.
    verbose : bool
        Log progress to stderr.

    Returns
    -------
    TransformResult

    Raises
    ------
    StoreError
        When ``reference`` holds no finished run, or ``out`` holds a run.
    InputError
        For a reference made from interactions, vectors of another dimension, or ids the
        reference already holds.
    ConfigError
        For bad settings.
    """
    if n_iter < 0:
        raise ConfigError(f"n_iter must be at least 0, got {n_iter}", "pass `n_iter` 0 or more")
    with verbose_logging(verbose), storage_options_applied(storage_options, [reference, out] + (
            [vectors] if isinstance(vectors, str) else [])):
        timings = StageTimings()
        with timings.stage("read"):
            previous = read_previous(reference, storage_options, flag="reference", with_metadata=True)
            config = build_config({
                "vectors": vectors, "ids": ids, "metadata": metadata, "id_col": id_col, "vector_col": vector_col,
                "vector_cols": vector_cols, "out": out, "storage_options": storage_options,
                "perplexity": perplexity if perplexity is not None else previous.config.get("perplexity", 30.0),
                "metric": previous.config.get("metric", "euclidean"), "seed": seed, "metrics_sample": metrics_sample,
                "color_by": color_by, "top_categories": top_categories})
            location = _checked_output(config.out, storage_options, previous)
            reference_vectors = _reference_vectors(previous)
            new_vectors, new_ids = read_vector_inputs(config, require_ids=True)
            neighbours_needed = int(round(3 * config.perplexity))
            if len(reference_vectors) < neighbours_needed:
                raise ConfigError(f"the reference map in {previous.out} holds {len(reference_vectors):,} items, too "
                                  f"few for perplexity {config.perplexity:g} ({neighbours_needed} neighbours each)",
                                  f"pass `perplexity` {len(reference_vectors) // 3} or less")
            _check_new_items(previous, reference_vectors, new_vectors, new_ids)
            new_metadata = joined_metadata(config, new_ids, metadata_table(config))
            location.check_writable()  # every check passed: only now is the output folder made
        xp = cupy_or_none() or np
        k = min(int(round(3 * config.perplexity)), len(reference_vectors))
        with timings.stage("knn"):
            neighbours, distances = exact_knn_between(new_vectors, reference_vectors, k, config.metric, xp=xp)
        with timings.stage("layout"):
            affinities = conditional_probabilities(distances, config.perplexity)
            placed = transform_layout(previous.layout, neighbours, affinities, n_iter=n_iter,
                                      dof=float(previous.config.get("dof", 1.0)), xp=xp)
        with timings.stage("metrics"):
            figures = _new_item_quality(reference_vectors, new_vectors, previous.layout, placed, config)
        with timings.stage("outputs"):
            table = _combined_table(previous, layout_table(new_ids, placed, new_metadata))
            column = config.color_by or previous.config.get("color_by")
            values = table[column] if column in table else None
            write_layout(location, table)
            write_map(location, table[["x", "y"]].to_numpy(np.float64), values,
                      f"{len(previous.ids):,} reference items + {len(new_ids):,} placed by transform", top_categories)
        metrics = {
            "transform_of": previous.out, "n_reference": int(len(previous.ids)), "n_new": int(len(new_ids)),
            **figures, "perplexity": config.perplexity, "n_neighbors": k, "n_iter": n_iter, "metric": config.metric,
            "device": "cupy" if xp is not np else "numpy",
            "timings": timings.seconds, "peak_memory_mb": timings.peak_memory_mb, "tsne_dist_version": __version__,
        }
        write_metrics(location, metrics)
    logger.info("placed %d new items beside the map in %s (unchanged): recall@10 %.3f, trustworthiness@10 %.3f "
                "(new items); written to %s", len(new_ids), previous.out, figures["knn_recall@10"],
                figures["trustworthiness@10"], location.url)
    return TransformResult(out=location.url, layout=table, metrics=metrics)


def _checked_output(out: str, storage_options: dict[str, Any] | None, previous: PreviousMap) -> Location:
    location = Location(out, storage_options)
    if location.url.rstrip("/") == previous.out.rstrip("/"):
        raise StoreError(f"out {location.url} is the reference map's own folder; transform never changes it",
                         "pass another `out` folder")
    if RunStore(location.url, storage_options=storage_options).exists():
        raise StoreError(f"out {location.url} holds a tsne_dist run; its layout.parquet would no longer match it",
                         "pass a new `out` folder for the transform")
    return location


def _reference_vectors(previous: PreviousMap) -> np.ndarray:
    if previous.path != "vectors" or not previous.store.has("vectors", "vectors"):
        raise InputError(f"reference {previous.out} is a map of interactions, with no vectors to place new "
                         "vectors against", "transform into a map made with `vectors`, or rerun the interactions "
                         "with --init-from")
    vectors = previous.store.read("vectors", "vectors")
    if len(vectors) != len(previous.ids):
        raise StoreError(f"reference {previous.out} holds {len(vectors):,} vectors for {len(previous.ids):,} "
                         f"items in {LAYOUT_FILE}", "rerun the reference run to finish it")
    return vectors


def _check_new_items(previous: PreviousMap, reference_vectors: np.ndarray, new_vectors: np.ndarray,
                     new_ids: np.ndarray) -> None:
    if new_vectors.shape[1] != reference_vectors.shape[1]:
        raise InputError(f"the new vectors have {new_vectors.shape[1]} dimensions, the reference map's "
                         f"{reference_vectors.shape[1]}", "pass vectors from the same model as the reference run")
    known = pd.Index(pd.Series(previous.ids).astype(str))
    repeated = pd.Series(new_ids).astype(str)
    repeated = repeated[known.get_indexer(repeated) >= 0]
    if len(repeated):
        raise InputError(f"{len(repeated):,} of the new items' ids are already in the reference map "
                         f"(e.g. {repeated.iloc[0]!r})", "pass only new items, or remap everything with "
                         "tsne-dist run --init-from")


def _new_item_quality(reference_vectors: np.ndarray, new_vectors: np.ndarray, reference_xy: np.ndarray,
                      placed: np.ndarray, config) -> dict[str, Any]:
    """recall@10 and trustworthiness@10 of sampled new items, among all items (reference and new)."""
    n_reference = len(reference_vectors)
    queries = n_reference + sample_items(len(new_vectors), config.metrics_sample, config.seed)
    quality = neighbour_quality(np.concatenate([reference_vectors, new_vectors]),
                                np.concatenate([reference_xy, placed]), k=METRICS_K, metric=config.metric,
                                queries=queries)
    return {"knn_recall@10": round(quality.recall, 5), "trustworthiness@10": round(quality.trustworthiness, 5),
            "metrics_sample": quality.n_sampled}


def _combined_table(previous: PreviousMap, new_table: pd.DataFrame) -> pd.DataFrame:
    """The reference's ``layout.parquet`` unchanged, then the new rows; ``transformed`` tells them apart."""
    reference_table = previous.table.copy()
    reference_table[NEW_COLUMN] = False
    new_table[NEW_COLUMN] = True
    if reference_table["id"].dtype != new_table["id"].dtype:  # e.g. integer ids beside text ids: one type, text
        reference_table["id"] = reference_table["id"].astype(str)
        new_table["id"] = new_table["id"].astype(str)
    return pd.concat([reference_table, new_table], ignore_index=True)
