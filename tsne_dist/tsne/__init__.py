"""t-SNE optimisation: initialisation, the schedule and the engines."""

from .engine import ENGINES, OptimizeResult, Schedule, choose_engine, optimize_layout, resolve_repulsion
from .initialization import INITIALIZATIONS, initial_layout, pca_init, random_init

__all__ = ["ENGINES", "INITIALIZATIONS", "OptimizeResult", "Schedule", "choose_engine", "initial_layout",
           "optimize_layout", "pca_init", "random_init", "resolve_repulsion"]
