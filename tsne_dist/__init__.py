"""tsne_dist: trustworthy t-SNE maps of large item catalogs."""

from .jit import configure_numba_cache

configure_numba_cache()  # before any module defines a cached numba function

from .config import Config  # noqa: E402
from .errors import ConfigError, DivergedError, InputError, StoreError, UserError  # noqa: E402
from .estimator import TSNE  # noqa: E402
from .pipeline import Result, open_run, run  # noqa: E402
from .pipeline.transform import transform  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["Config", "ConfigError", "DivergedError", "InputError", "Result", "StoreError", "TSNE", "UserError", "__version__",
           "open_run", "run", "transform"]
