"""tsne_dist: trustworthy t-SNE maps of large item catalogs."""

__version__ = "0.1.0"

from .config import Config  # noqa: E402
from .errors import ConfigError, InputError, StoreError, UserError  # noqa: E402
from .estimator import TSNE  # noqa: E402
from .pipeline import Result, run  # noqa: E402
from .runinfo import open_run  # noqa: E402

__all__ = ["Config", "ConfigError", "InputError", "Result", "StoreError", "TSNE", "UserError", "__version__",
           "open_run", "run"]
