"""Where numba keeps compiled code: a user cache folder, never inside the installed package.

numba writes the machine code of ``cache=True`` functions (ours, and most of
pynndescent's) next to their source by default, i.e. into ``site-packages``; a
reinstall can then leave stale files behind, and a read-only install cannot cache
at all. :func:`configure_numba_cache` points numba at
``$XDG_CACHE_HOME/tsne_dist/numba`` (``~/.cache/tsne_dist/numba``) unless the user
chose a folder with ``NUMBA_CACHE_DIR``. The variable is exported, so Dask workers
and subprocesses started by the run use the same folder and compile each function
once per machine, not once per process.
"""

from __future__ import annotations

import os
import sys


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/tsne_dist/numba``, or ``~/.cache/tsne_dist/numba``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tsne_dist", "numba")


def configure_numba_cache() -> str:
    """Make numba cache compiled functions in the user cache folder; return that folder.

    Must run before the first ``@numba.njit(cache=True)`` function is defined
    (``tsne_dist/__init__`` calls it first thing). ``NUMBA_CACHE_DIR``, when set,
    wins. Numba reads the variable when it is first imported; if it already was,
    its ``config.CACHE_DIR`` is set too.
    """
    folder = os.environ.setdefault("NUMBA_CACHE_DIR", default_cache_dir())
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.config.CACHE_DIR = folder
    return folder
