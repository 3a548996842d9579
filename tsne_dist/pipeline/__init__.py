"""Runs: the plan, the stages of each path, and the outputs.

The only code that knows the config, the run store and the output folder:
``cli -> pipeline.run -> plan -> (vector_path | interaction_path) -> shared_stages
-> algorithm packages``, with every store access through :class:`tsne_dist.store.RunStore`.
"""

from __future__ import annotations

import os
from typing import Any

from ..cluster import cluster_for_run
from ..config import Config
from ..errors import UserError
from ..progress import verbose_logging
from ..storage import storage_options_applied
from .finish import Result
from .info import RunInfo, describe, open_run
from .interaction_path import run_interactions
from .plan import Plan, make_plan
from .vector_path import run_vectors

__all__ = ["Plan", "Result", "RunInfo", "describe", "make_plan", "open_run", "run"]


def run(config: Config | dict[str, Any] | str, *, verbose: bool = False) -> Result:
    """Make a map: inputs -> kNN -> affinities -> t-SNE layout -> metrics -> outputs.

    Parameters
    ----------
    config : Config, dict or str
        Settings (see :class:`tsne_dist.config.Config`), or a YAML/TOML path.
    verbose : bool
        Log progress and each stage's time and memory to stderr, as the CLI does
        (unless the application has configured the ``tsne_dist`` logger itself).

    Returns
    -------
    Result

    Raises
    ------
    tsne_dist.errors.UserError
        For bad input or settings; no stage is marked done by a failed call, except the
        interactions path's ``items`` stage (its vocabulary), which is kept when a later
        check (``init_from``'s shared ids) fails.
    """
    with verbose_logging(verbose):
        plan = make_plan(config)
        existed = plan.location.is_local and os.path.exists(plan.out)
        try:
            with storage_options_applied(plan.config.storage_options, plan.urls()), \
                    cluster_for_run(plan.cluster, plan.config.kubernetes) as address:
                plan = plan.with_cluster(address)
                return run_interactions(plan) if plan.path == "interactions" else run_vectors(plan)
        except UserError:
            if plan.location.is_local and not existed and os.path.isdir(plan.out) and not os.listdir(plan.out):
                os.rmdir(plan.out)  # the folder this failed run made, still empty: leave no clutter
            raise
