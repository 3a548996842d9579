"""The vector path: vectors -> knn -> affinities -> layout -> metrics -> outputs."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..affinity import check_item_count
from ..config import Config
from ..io.sources import describe_source, source_name
from ..neighbors.metric import check_defined
from ..store import RunStore, fingerprint
from .finish import Result, write_outputs
from .inputs import joined_metadata, metadata_table, read_vector_inputs
from .plan import Plan
from .runner import StageRunner, check_location, start_runner, stored_marker
from .shared_stages import knn_stage, map_from_neighbours

logger = logging.getLogger("tsne_dist")


def run_vectors(plan: Plan) -> Result:
    """Make a map from item vectors (see :func:`tsne_dist.pipeline.run`)."""
    config = plan.config
    # Everything is checked before the store is touched: a user error changes nothing.
    replace = check_location(plan)
    params = vectors_params(config)
    marker = None if replace else stored_marker(plan, "vectors")
    vectors_done = (marker or {}).get("fingerprint") == fingerprint("vectors", params, [])
    inputs = None if vectors_done else read_vector_inputs(config)
    if inputs is not None:
        check_defined(inputs[0], config.metric, source_name(config.vectors))
    if inputs is not None:
        ids, (n_items, n_dims) = inputs[1], inputs[0].shape
    else:
        stored = RunStore.open(plan.out)
        ids, (n_items, n_dims) = stored.read_ids(), stored.shape("vectors", "vectors")
    check_item_count(n_items, config.perplexity, plan.k)
    if plan.previous is not None:
        plan.previous.shared_with(ids, "the vectors' ids")  # under 3 shared items: refused before anything is written
    metadata = joined_metadata(config, ids, metadata_table(config))
    runner = start_runner(plan)
    runner.resolve(n_items, n_dims)
    vectors_stage(runner, params, inputs)
    knn_stage(runner)
    map_from_neighbours(runner, metadata)
    return write_outputs(runner, ids, metadata)


def vectors_params(config: Config) -> dict[str, Any]:
    """What the ``vectors`` stage depends on: the sources and how they are read."""
    return {
        "source": describe_source(config.vectors),
        "ids": describe_source(config.ids) if config.ids is not None else None,
        "vector_col": config.vector_col, "vector_cols": config.vector_cols, "id_col": config.id_col,
    }


def vectors_stage(runner: StageRunner, params: dict[str, Any],
                  inputs: tuple[np.ndarray, np.ndarray] | None) -> None:
    """``vectors`` (and ``items``): the checked vectors and ids, copied into the store."""
    def compute(group):
        vectors, ids = inputs
        runner.store.write(runner.store.begin("items"), "ids", ids)
        runner.store.write(group, "vectors", vectors)
        logger.info("%d items x %d dimensions", *vectors.shape)
        return {"n_items": int(vectors.shape[0]), "n_dims": int(vectors.shape[1])}

    runner.stage("vectors", params, (), compute)
