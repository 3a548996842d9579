"""t-SNE engines behind one call, all with openTSNE's optimiser schedule.

- ``numpy`` / ``cupy``: our engine (:mod:`tsne_dist.tsne.optimizer`), one
  implementation on the array module; its repulsion is a Barnes-Hut tree on the CPU
  below ``BARNES_HUT_MAX_ITEMS`` items, else the FIt-SNE grid.
- ``opentsne``: openTSNE's optimiser fed with our affinities and initialisation.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError
from ..progress import Progress
from ..xp import cupy_or_none
from . import optimizer
from .optimizer import REPULSION_METHODS, Embedding, learning_rate_for

logger = logging.getLogger("tsne_dist")

CALLBACK_EVERY = 50
ENGINES = ("auto", "numpy", "cupy", "opentsne")
# Warm start (init_from) on a 20k-item catalog, day 2 = day 1 -5 % +5 % with 20 % moved: N/64 for
# 100 iterations moved shared items 0.71 median map-neighbour distances at fresh-run recall;
# N/16 moved them 1.0 and the full N 1.4 (benchmarks/README.md, "bench_stable.py").
WARM_START_RATE_DIVISOR = 64
OPENTSNE_BARNES_HUT_MAX_ITEMS = 10_000  # openTSNE's negative_gradient_method="auto"


@dataclass
class OptimizeResult:
    """A finished layout and how it got there.

    Attributes
    ----------
    layout : np.ndarray
        (N, 2) float32 coordinates.
    kl_divergence : float
        KL(P || Q) at the last iteration.
    kl_history : list of (iteration, kl, seconds)
        Every ``CALLBACK_EVERY`` iterations.
    engine : str
        Engine that ran.
    repulsion : str
        How the repulsive forces were computed: ``barnes-hut`` or ``fft``.
    """

    layout: np.ndarray
    kl_divergence: float
    engine: str
    repulsion: str
    kl_history: list[tuple[int, float, float]] = field(default_factory=list)


def choose_engine(requested: str, *, repulsion: str = "auto") -> tuple[str, str]:
    """The engine that runs for ``requested`` and why.

    ``auto`` is ``cupy`` when CuPy sees a usable CUDA device, else our ``numpy``
    engine (whose repulsion :func:`resolve_repulsion` picks by size); also ``numpy``
    when ``repulsion`` is ``barnes-hut``, which runs on the CPU only.

    Parameters
    ----------
    requested : str
        One of :data:`ENGINES`.
    repulsion : str
        The requested repulsion (``auto``, ``barnes-hut`` or ``fft``).

    Returns
    -------
    engine : str
        ``numpy``, ``cupy`` or ``opentsne``.
    reason : str
        Why, in words.

    Raises
    ------
    ConfigError
        For ``cupy`` without CuPy and a CUDA device, or an unknown engine.
    """
    if requested == "auto":
        if repulsion == "barnes-hut":
            return "numpy", "repulsion barnes-hut runs on the CPU"
        if cupy_or_none() is not None:
            return "cupy", "CuPy sees a CUDA device"
        return "numpy", "no usable GPU: our CPU engine"
    if requested == "cupy" and cupy_or_none() is None:
        raise ConfigError("engine cupy needs CuPy and a CUDA device, and none is usable here",
                          'pip install "tsne-dist[gpu]" on a GPU machine, or set `engine` to numpy')
    if requested in ENGINES:
        return requested, "requested"
    raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {requested!r}",
                      f"set `engine` to one of {', '.join(ENGINES)}")


def resolve_repulsion(requested: str, engine: str, n_items: int) -> tuple[str, str]:
    """The repulsion a resolved ``engine`` runs for ``n_items`` items, and why.

    ``auto`` is ``barnes-hut`` on the CPU below
    :data:`tsne_dist.tsne.optimizer.BARNES_HUT_MAX_ITEMS` items (openTSNE's own rule,
    10,000, for ``opentsne``) and ``fft`` otherwise and on the GPU.

    Parameters
    ----------
    requested : str
        ``auto``, ``barnes-hut`` or ``fft``.
    engine : str
        The resolved engine (:func:`choose_engine`).
    n_items : int
        Items to lay out.

    Returns
    -------
    repulsion : str
        ``barnes-hut`` or ``fft``.
    reason : str
        Why, in words.

    Raises
    ------
    ConfigError
        For an unknown method, or ``barnes-hut`` with the ``cupy`` engine.
    ValueError
        For an engine that is not resolved.
    """
    if requested not in REPULSION_METHODS:
        raise ConfigError(f"repulsion must be one of {', '.join(REPULSION_METHODS)}, got {requested!r}",
                          f"set `repulsion` to one of {', '.join(REPULSION_METHODS)}")
    if engine not in ("numpy", "cupy", "opentsne"):
        raise ValueError(f"engine must be resolved (numpy, cupy or opentsne), got {engine!r}")
    if requested == "barnes-hut" and engine == "cupy":
        raise ConfigError("repulsion barnes-hut runs on the CPU, and the engine is cupy",
                          "set `repulsion` to fft or auto, or `engine` to numpy or auto")
    if requested != "auto":
        return requested, "requested"
    if engine == "cupy":
        return "fft", "the GPU engine computes repulsion on the FFT grid"
    if engine == "opentsne":
        limit, whose = OPENTSNE_BARNES_HUT_MAX_ITEMS, "openTSNE's rule"
        method = "barnes-hut" if n_items < limit else "fft"
    else:
        limit, whose = optimizer.BARNES_HUT_MAX_ITEMS, "the faster on a CPU"
        method = optimizer.choose_repulsion("auto", n_items)
    if method == "barnes-hut":
        return method, f"Barnes-Hut below {limit:,} items: {whose}"
    return method, f"the FFT grid from {limit:,} items: {whose}"


@dataclass(frozen=True)
class Schedule:
    """How the layout is optimised: openTSNE's two-phase schedule and the t kernel.

    Field names are the run settings' names, so a Config or an estimator fills
    one with ``Schedule(**{name: getattr(source, name) for name in Schedule.names()})``.

    Attributes
    ----------
    n_iter : int
        Total iterations, early exaggeration included.
    early_exaggeration_iter, early_exaggeration : int, float
        Length and factor of the early-exaggeration phase (momentum 0.5).
    exaggeration : float
        Factor for the remaining iterations (momentum 0.8).
    learning_rate : float or "auto"
        Step size; "auto" is max(N / exaggeration, 50) in each phase (openTSNE's rule,
        after Belkina et al. 2019).
    dof : float
        Degrees of freedom of the t kernel (1: standard t-SNE; < 1: heavier tails,
        Kobak et al. 2019).
    """

    n_iter: int = 750
    early_exaggeration_iter: int = 250
    early_exaggeration: float = 12.0
    exaggeration: float = 1.0
    learning_rate: float | str = "auto"
    dof: float = 1.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names a schedule is made of."""
        return tuple(f.name for f in fields(cls))

    def for_warm_start(self, n_iter: int, n_items: int) -> "Schedule":
        """The gentle schedule of a warm start from a finished map: ``n_iter`` iterations of
        the main phase only (no early exaggeration), and an ``auto`` learning rate of
        max(N / WARM_START_RATE_DIVISOR, 50) instead of max(N / exaggeration, 50).

        A finished map's clusters are formed already; the full step size and more
        iterations only let them drift (benchmarks/README.md, "bench_stable.py").
        """
        rate = (max(n_items / WARM_START_RATE_DIVISOR, 50.0) if self.learning_rate == "auto"
                else self.learning_rate)
        return replace(self, n_iter=n_iter, early_exaggeration_iter=0, learning_rate=rate)

    def phases(self, n_items: int) -> list[Phase]:
        """The early and the main phase, each with its resolved learning rate."""
        return [Phase(self.early_exaggeration_iter, self.early_exaggeration, 0.5,
                      learning_rate_for(n_items, self.early_exaggeration, self.learning_rate)),
                Phase(self.n_iter - self.early_exaggeration_iter, self.exaggeration, 0.8,
                      learning_rate_for(n_items, self.exaggeration, self.learning_rate))]


@dataclass(frozen=True)
class Phase:
    """One phase of the schedule: iterations, exaggeration, momentum, step size."""

    n_iter: int
    exaggeration: float
    momentum: float
    learning_rate: float


def optimize_layout(P: sp.csr_matrix, init: np.ndarray, schedule: Schedule, *, engine: str, seed: int = 0,
                    n_jobs: int = -1, repulsion: str = "auto") -> OptimizeResult:
    """Optimise a 2-D t-SNE layout for the affinities ``P``.

    Parameters
    ----------
    P : scipy.sparse.csr_matrix
        (N, N) symmetric affinities summing to 1.
    init : np.ndarray
        (N, 2) initial layout (std ~1e-4).
    schedule : Schedule
        Iterations, exaggeration, learning rate and kernel.
    engine : str
        The resolved engine (see :func:`choose_engine`): ``numpy`` (ours, CPU),
        ``cupy`` (ours, GPU) or ``opentsne``.
    seed : int
        Seed for anything random in the engine.
    n_jobs : int
        Threads (-1: all cores).
    repulsion : str
        ``auto``, ``barnes-hut`` (CPU engines) or ``fft``; see :func:`resolve_repulsion`.

    Returns
    -------
    OptimizeResult

    Raises
    ------
    ValueError
        For an engine that is not resolved, or a repulsion the engine cannot run.
    """
    phases = schedule.phases(P.shape[0])
    if engine == "opentsne":
        return _optimize_opentsne(P, init, phases, schedule, seed, n_jobs, repulsion)
    if engine in ("numpy", "cupy"):
        return _optimize_ours(P, init, phases, schedule, engine, repulsion, n_jobs)
    raise ValueError(f"engine must be numpy, cupy or opentsne (resolved by choose_engine), got {engine!r}")


def _optimize_ours(P, init, phases: list[Phase], schedule: Schedule, engine: str, repulsion: str,
                   n_jobs: int) -> OptimizeResult:
    xp = np if engine == "numpy" else cupy_or_none()
    with numba_threads(n_jobs):
        return _optimize_embedding(Embedding(init, P, xp=xp, dof=schedule.dof, repulsion=repulsion), phases,
                                   schedule, engine)


@contextmanager
def numba_threads(n_jobs: int) -> Iterator[None]:
    """Run numba's parallel loops on ``n_jobs`` threads inside the ``with`` block.

    Parameters
    ----------
    n_jobs : int
        Threads; -1 for all of numba's (``NUMBA_NUM_THREADS``, the cores by default);
        more than that is capped.

    Yields
    ------
    None
        numba's previous thread count is restored on exit, also after an error.
    """
    import numba

    before = numba.get_num_threads()
    wanted = numba.config.NUMBA_NUM_THREADS if n_jobs == -1 else max(1, min(n_jobs, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(wanted)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _optimize_embedding(embedding: Embedding, phases: list[Phase], schedule: Schedule, engine: str) -> OptimizeResult:
    with Progress(schedule.n_iter, "t-SNE") as progress:
        def report(iteration: int, kl: float, seconds: float) -> None:
            progress.advance(CALLBACK_EVERY, note=f"KL {kl:.4f}")

        for phase in phases:
            if phase.n_iter > 0:
                embedding.optimize(phase.n_iter, exaggeration=phase.exaggeration, momentum=phase.momentum,
                                   learning_rate=phase.learning_rate, callback=report, callback_every=CALLBACK_EVERY)
    kl = embedding.kl_divergence
    if schedule.n_iter % CALLBACK_EVERY:
        kl = embedding.gradient(1.0, with_kl=True)[1]
    return OptimizeResult(layout=embedding.layout.astype(np.float32), kl_divergence=float(kl), engine=engine,
                          repulsion=embedding.repulsion, kl_history=embedding.history)


def _optimize_opentsne(P, init, phases: list[Phase], schedule: Schedule, seed: int, n_jobs: int,
                       repulsion: str) -> OptimizeResult:
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import Affinities

    affinities = Affinities()
    affinities.P = P.astype(np.float64).tocsr()
    threads = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    repulsion, _ = resolve_repulsion(repulsion, "opentsne", P.shape[0])
    method = "bh" if repulsion == "barnes-hut" else "fft"
    embedding = TSNEEmbedding(np.asarray(init, dtype=np.float64), affinities, negative_gradient_method=method,
                              dof=schedule.dof, random_state=seed, n_jobs=threads, verbose=False)
    history: list[tuple[int, float, float]] = []
    start = time.perf_counter()
    done = 0
    with Progress(schedule.n_iter, "t-SNE") as progress:
        for phase in phases:
            if phase.n_iter <= 0:
                continue

            def report(iteration: int, kl: float, _embedding: np.ndarray, offset: int = done) -> None:
                history.append((offset + iteration, float(kl), round(time.perf_counter() - start, 3)))
                progress.advance(CALLBACK_EVERY, note=f"KL {kl:.4f}")

            embedding = embedding.optimize(
                n_iter=phase.n_iter, exaggeration=phase.exaggeration, momentum=phase.momentum,
                learning_rate=phase.learning_rate, callbacks=[report], callbacks_every_iters=CALLBACK_EVERY,
                inplace=True,
            )
            done += phase.n_iter
    layout = np.asarray(embedding, dtype=np.float64)
    kl = float(embedding.kl_divergence) if embedding.kl_divergence is not None else float("nan")
    return OptimizeResult(layout=layout.astype(np.float32), kl_divergence=kl, engine="opentsne",
                          repulsion=repulsion, kl_history=history)
