"""Stages both paths share: kNN on vectors, affinities, layout, metrics.

Each takes the :class:`~tsne_dist.pipeline.runner.StageRunner`, reads the plan's
resolved choices and what earlier stages stored, and calls the algorithm packages
with arrays and resolved values only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..affinity import joint_probabilities
from ..cooccurrence.quality import graph_quality
from ..io.sources import describe_source
from ..metrics import (collapse_check, duplicate_rows, label_agreement, label_problem, neighbour_quality,
                       silhouettes)
from ..neighbors import graph_recall, nearest_neighbors
from ..stability import stability
from ..tsne import initial_layout, optimize_layout
from ..tsne.initialization import warm_start_layout
from .runner import StageRunner

logger = logging.getLogger("tsne_dist")

METRICS_K = 10
DUPLICATE_WARNING_SHARE = 0.05  # warn when this share of rows are exact copies


def knn_stage(runner: StageRunner) -> None:
    """``knn``: each item's k nearest neighbours among the stored vectors."""
    config, plan = runner.config, runner.plan
    backend = plan.choice("knn")
    params = {"backend": backend, "k": plan.k, "metric": config.metric, "seed": config.seed}
    if backend == "pynndescent":
        params["shards"] = config.knn_shards

    def compute(group):
        vectors = runner.store.read("vectors", "vectors")  # read once for the search and the recall estimate
        copies = duplicate_rows(vectors)  # counted once: the search's choice and the metrics stage use it
        result = nearest_neighbors(vectors, plan.k, backend=backend, metric=config.metric, seed=config.seed,
                                   n_jobs=config.n_jobs, cluster=plan.cluster, n_shards=config.knn_shards,
                                   scratch=group, reason=plan.choices["knn"].reason, n_copies=copies)
        runner.store.write(group, "indices", result.indices)
        runner.store.write(group, "distances", result.distances)
        extra = {"reason": result.reason, "ran": result.backend, "duplicate_rows": copies}
        if backend != "bruteforce":
            recall = graph_recall(vectors, result.indices, metric=config.metric, seed=config.seed)
            extra["graph_recall"] = round(recall, 5)
            logger.info("kNN graph recall@%d on a 1,000-item sample: %.4f", plan.k, recall)
        return extra

    runner.stage("knn", params, ("vectors",), compute)


def affinity_stage(runner: StageRunner) -> None:
    """``affinities``: the symmetric P from the kNN graph (perplexity calibration)."""
    perplexity = runner.plan.choice("perplexity")
    used = runner.config.affinity_neighbors  # None: every stored neighbour
    params = {"perplexity": perplexity, "method": "gaussian-perplexity"}
    if used is not None:
        params["neighbors_used"] = used

    def compute(group):
        indices, distances = runner.store.read("knn", "indices"), runner.store.read("knn", "distances")
        matrix = joint_probabilities(indices[:, :used], distances[:, :used], perplexity)
        runner.store.write_csr(group, matrix)
        return {"nnz": int(matrix.nnz)}

    runner.stage("affinities", params, ("knn",), compute)


def layout_stage(runner: StageRunner) -> None:
    """``layout``: the 2-D t-SNE layout, on the resolved engine."""
    config, plan = runner.config, runner.plan
    engine, initialization = plan.choice("engine"), plan.choice("initialization")
    schedule = plan.schedule
    params = {"engine": engine, "repulsion": plan.choice("repulsion"),
              **{name: getattr(schedule, name) for name in schedule.names()},
              "learning_rate": plan.choice("learning_rate"), "initialization": initialization,
              "seed": config.seed, "pca": "covariance eigenvectors"}  # the PCA code is part of what a layout is
    if plan.previous is not None:
        params["init_from"] = plan.previous.identity()

    def compute(group):
        P = runner.store.read_csr("affinities")
        init = _starting_layout(runner, P, initialization)
        logger.info("t-SNE engine: %s (%s); repulsion: %s (%s)", engine, plan.choices["engine"].reason,
                    plan.choice("repulsion"), plan.choices["repulsion"].reason)
        result = optimize_layout(P, init, schedule, engine=engine, seed=config.seed, n_jobs=config.n_jobs,
                                 repulsion=plan.choice("repulsion"))
        runner.store.write(group, "layout", result.layout)
        group.attrs.update({"engine": result.engine, "repulsion": result.repulsion, "iterations": schedule.n_iter,
                            "kl_divergence": result.kl_divergence, "kl_history": result.kl_history})
        logger.info("layout: KL divergence %.4f after %d iterations", result.kl_divergence, schedule.n_iter)
        return {"engine": result.engine, "repulsion": result.repulsion, "reason": plan.choices["engine"].reason}

    runner.stage("layout", params, ("affinities",), compute)


def _starting_layout(runner: StageRunner, P, initialization: str) -> np.ndarray:
    """The (N, 2) layout the optimiser starts from: PCA, random, or the previous map's."""
    seed = runner.config.seed
    if initialization != "previous":
        vectors = runner.store.read("vectors", "vectors") if initialization == "pca" else None
        return initial_layout(initialization, P.shape[0], seed, vectors)
    previous = runner.plan.previous
    shared = previous.shared_with(runner.store.read_ids(), "this run")
    positions = np.zeros((P.shape[0], 2))
    positions[shared.rows_a] = previous.layout[shared.rows_b]
    kept = np.zeros(P.shape[0], dtype=bool)
    kept[shared.rows_a] = True
    return warm_start_layout(P, positions, kept, seed, scale=float(np.sqrt(P.shape[0] / len(previous.ids))))


def map_from_neighbours(runner: StageRunner, metadata: pd.DataFrame | None) -> None:
    """The stages after ``knn`` on both paths: affinities, layout, metrics."""
    affinity_stage(runner)
    layout_stage(runner)
    metrics_stage(runner, metadata)


def metrics_stage(runner: StageRunner, metadata: pd.DataFrame | None) -> None:
    """``metrics``: neighbour recall, trustworthiness, silhouettes and warnings.

    The high-dimensional reference is the vectors when there are any, else the
    co-occurrence similarity graph.
    """
    config, plan = runner.config, runner.plan
    labels = metadata[config.label] if (metadata is not None and config.label) else None
    params = {"sample": config.metrics_sample, "seed": config.seed, "label": config.label,
              "metadata": describe_source(config.metadata) if (config.metadata is not None and config.label) else None}
    if plan.has_vectors:
        params["metric"] = config.metric
    else:
        params["against"] = "similarity graph"
    if plan.previous is not None:
        params["stability_against"] = plan.previous.identity()

    def compute(group):
        layout = runner.store.read("layout", "layout")
        problem = label_problem(labels, config.label) if labels is not None else None
        usable = None if problem else labels
        if plan.has_vectors:
            figures, warnings = _against_vectors(runner, layout, usable)
        else:
            figures, warnings = _against_graph(runner, layout, usable)
        if usable is not None:
            agreement = label_agreement(layout, usable, sample=config.metrics_sample, seed=config.seed)
            figures.update(_rounded(agreement or {}))
        if plan.previous is not None:
            figures["stability"] = _rounded(stability(plan.previous.ids, plan.previous.layout,
                                                      runner.store.read_ids(), layout))
        if problem:
            warnings.append(problem)
        elif labels is not None and "silhouette_2d" not in figures:
            warnings.append(f"silhouette of {config.label!r} is undefined on the sampled items")
        for warning in warnings:
            logger.warning(warning)
        group.attrs.update({"figures": figures, "warnings": plan.warnings() + warnings})  # the plan's were logged
        return {}

    runner.stage("metrics", params, ("layout",), compute)


def _against_vectors(runner: StageRunner, layout, labels) -> tuple[dict[str, Any], list[str]]:
    config = runner.config
    vectors = runner.store.read("vectors", "vectors")
    quality = neighbour_quality(vectors, layout, k=METRICS_K, sample=config.metrics_sample, seed=config.seed,
                                metric=config.metric)
    collapse, warnings = collapse_check(vectors, sample=config.metrics_sample, seed=config.seed)
    copies = (runner.store.marker("knn") or {}).get("duplicate_rows")
    if copies is None:  # a kNN stage stored before the count moved there
        copies = duplicate_rows(vectors)
    if copies >= DUPLICATE_WARNING_SHARE * len(vectors):
        warnings.append(f"{copies:,} of {len(vectors):,} rows ({copies / len(vectors):.0%}) are exact copies of "
                        "another row: copies are each other's nearest neighbours (ties), and the map stacks them")
    figures: dict[str, Any] = {
        "knn_recall@10": round(quality.recall, 5), "trustworthiness@10": round(quality.trustworthiness, 5),
        "metrics_sample": quality.n_sampled, "collapse": collapse, "duplicate_rows": copies,
    }
    if labels is not None:
        scores = silhouettes(vectors, layout, labels, sample=config.metrics_sample, seed=config.seed,
                             metric=config.metric)
        if scores is not None:
            figures.update({key: round(value, 5) for key, value in scores.items()})
    return figures, warnings


def _against_graph(runner: StageRunner, layout, labels) -> tuple[dict[str, Any], list[str]]:
    config, store = runner.config, runner.store
    cooccurrence = store.group("cooccurrence")
    figures = graph_quality(cooccurrence, layout, kind=config.similarity,
                            n_collections=int(cooccurrence.attrs.get("n_collections", 1)),
                            ppmi_shift=config.ppmi_shift, sample=config.metrics_sample, seed=config.seed,
                            labels=labels)
    figures = _rounded(figures)
    figures["collapse"] = None  # no vectors to check on this path
    warnings: list[str] = []
    knn_marker = store.marker("knn") or {}
    if knn_marker.get("n_padded"):
        warnings.append(f"{knn_marker['n_padded']} items have fewer than {runner.plan.k} co-occurring neighbours "
                        f"({knn_marker.get('n_isolated', 0)} have none); their lists were padded")
    return figures, warnings


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {key: (round(value, 5) if isinstance(value, float) else value) for key, value in figures.items()}
