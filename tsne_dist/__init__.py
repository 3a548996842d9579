"""tsne_dist: trustworthy t-SNE maps of large item catalogs."""

from .config import Config
from .errors import ConfigError, InputError, StoreError, UserError
from .estimator import TSNE
from .pipeline import Result, open_run, run
from .version import __version__

__all__ = ["Config", "ConfigError", "InputError", "Result", "StoreError", "TSNE", "UserError", "__version__",
           "open_run", "run"]
