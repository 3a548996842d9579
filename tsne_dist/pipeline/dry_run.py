"""``tsne-dist run --dry-run``: check a request, resolve its plan and print it, writing nothing."""

from __future__ import annotations

from typing import Any

from ..cluster import dask_client
from ..config import Config
from ..io.vectors import read_vectors
from ..storage import storage_options_applied
from .memory import check_fits, expected_memory, format_bytes, memory_limit
from .plan import RESOLVED_ORDER, make_plan


def plan_report(config: Config | dict[str, Any] | str) -> str:
    """The resolved plan of a run and its expected peak memory, as text; nothing is written.

    Everything a run checks before its first stage is checked (settings, inputs,
    output location, engine, kNN backend, cluster extras). The vectors are read to
    learn N and D; for interactions N is known only after the ``items`` stage, so the
    memory is modelled for ``max_items`` when it is set.

    Raises
    ------
    tsne_dist.errors.UserError
        For anything the run would refuse, and when the expected peak memory exceeds
        the memory the run may use (``max_memory`` or the detected limit).
    """
    plan = make_plan(config)
    config = plan.config
    with storage_options_applied(config.storage_options, plan.urls()):
        if plan.path == "vectors":
            vectors, _ = read_vectors(config.vectors, config.vector_col, config.id_col, config.vector_cols)
            n_items, n_dims = vectors.shape
        else:
            n_items, n_dims = config.max_items, config.embed_dim
    if plan.cluster.startswith("tcp://"):
        with dask_client(plan.cluster, connect_timeout=10):  # an unreachable scheduler fails here, in one line
            pass
    lines = [f"plan: {plan.path} -> {plan.out}", f"cluster: {plan.cluster}", f"neighbours per item (k): {plan.k}"]
    if n_items is None:
        lines += ["items: known after the items stage; the engine, repulsion, kNN, initialization and learning rates are "
                  "resolved then, and the memory is modelled then (set max_items to model it now)",
                  "dry run: nothing was written"]
        return "\n".join(lines)
    plan = plan.for_items(int(n_items), None if n_dims is None else int(n_dims))
    lines.append(f"items: {n_items:,}" + (f" x {n_dims} dimensions" if n_dims else " (similarity graph)"))
    for name in (name for name in RESOLVED_ORDER if name in plan.choices):  # warm_start only with init_from
        choice = plan.choices[name]
        lines.append(f"  {name:<15} {choice.requested} -> {choice.value}  ({choice.reason})")
    estimate = expected_memory(int(n_items), n_dims)
    limit, source = memory_limit(config.max_memory)
    lines.append(f"expected peak memory: {format_bytes(estimate.peak)} (stage {estimate.peak_stage}); "
                 f"limit {format_bytes(limit)} ({source})")
    lines.extend(f"  {stage:<12} {format_bytes(value)}" for stage, value in estimate.by_stage.items())
    check_fits(estimate, config.max_memory)
    lines.append("dry run: nothing was written")
    return "\n".join(lines)
