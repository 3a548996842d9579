"""Runs: the plan, the stages of each path, and the outputs.

The only code that knows the config, the run store and the output folder:
``cli -> pipeline.run -> plan -> (vector_path | interaction_path) -> shared_stages
-> algorithm packages``, with every store access through :class:`tsne_dist.store.RunStore`.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from .finish import Result
from .info import RunInfo, describe, open_run
from .interaction_path import run_interactions
from .plan import Plan, make_plan
from .vector_path import run_vectors

__all__ = ["Plan", "Result", "RunInfo", "describe", "make_plan", "open_run", "run"]


def run(config: Config | dict[str, Any] | str) -> Result:
    """Make a map: inputs -> kNN -> affinities -> t-SNE layout -> metrics -> outputs.

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
    plan = make_plan(config)
    if plan.path == "interactions":
        return run_interactions(plan)
    return run_vectors(plan)
