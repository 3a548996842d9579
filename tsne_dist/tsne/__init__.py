"""t-SNE optimisation: initialisation and engines."""

from .engine import OptimizeResult, choose_engine, optimize_layout
from .initialization import pca_init, random_init

__all__ = ["OptimizeResult", "choose_engine", "optimize_layout", "pca_init", "random_init"]
