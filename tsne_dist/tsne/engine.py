"""t-SNE engines behind one call, all with openTSNE's optimiser schedule.

- ``numpy`` / ``cupy``: our FIt-SNE engine (:mod:`tsne_dist.tsne.optimizer`), one
  implementation on the array module.
- ``opentsne``: openTSNE's optimiser fed with our affinities and initialisation.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError
from ..progress import Progress
from ..xp import cupy_or_none
from .optimizer import Embedding, learning_rate_for

logger = logging.getLogger("tsne_dist")

CALLBACK_EVERY = 50
ENGINES = ("auto", "numpy", "cupy", "opentsne")
NUMPY_ENGINE_MIN_ITEMS = 10_000


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
    reason : str
        Why it was chosen.
    """

    layout: np.ndarray
    kl_divergence: float
    engine: str
    reason: str
    kl_history: list[tuple[int, float, float]] = field(default_factory=list)


def choose_engine(requested: str, n_items: int | None = None) -> tuple[str, str]:
    """The engine that runs for ``requested`` and why.

    ``auto`` is ``cupy`` when CuPy sees a usable CUDA device. On a CPU it is our
    ``numpy`` engine from ``NUMPY_ENGINE_MIN_ITEMS`` items on (measured 3-13 %
    faster than openTSNE at equal KL on 2 cores, benchmarks/README.md), and
    ``opentsne`` below, where its Barnes-Hut gradient is faster than an FFT grid.
    """
    if requested == "auto":
        if cupy_or_none() is not None:
            return "cupy", "CuPy sees a CUDA device"
        if n_items is not None and n_items >= NUMPY_ENGINE_MIN_ITEMS:
            return "numpy", f"no usable GPU; our FFT engine is the faster CPU engine from {NUMPY_ENGINE_MIN_ITEMS:,} items"
        return "opentsne", f"no usable GPU; openTSNE's Barnes-Hut is the faster CPU engine below {NUMPY_ENGINE_MIN_ITEMS:,} items"
    if requested == "cupy" and cupy_or_none() is None:
        raise ConfigError("--engine cupy needs CuPy and a CUDA device, and none is usable here",
                          'pip install "tsne-dist[gpu]" on a GPU machine, or use --engine numpy')
    if requested in ENGINES:
        return requested, "requested"
    raise ConfigError(f"unknown engine {requested!r}", f"use one of {', '.join(ENGINES)}")


def optimize_layout(P: sp.csr_matrix, init: np.ndarray, *, engine: str = "auto", n_iter: int = 750,
                    early_exaggeration_iter: int = 250, early_exaggeration: float = 12.0,
                    exaggeration: float = 1.0, learning_rate: float | str = "auto", seed: int = 0,
                    n_jobs: int = -1, dof: float = 1.0) -> OptimizeResult:
    """Optimise a 2-D t-SNE layout for the affinities ``P``.

    Parameters
    ----------
    P : scipy.sparse.csr_matrix
        (N, N) symmetric affinities summing to 1.
    init : np.ndarray
        (N, 2) initial layout (std ~1e-4).
    engine : str
        ``auto``, ``numpy`` (ours, CPU), ``cupy`` (ours, GPU) or ``opentsne``.
    n_iter : int
        Total iterations, early exaggeration included.
    early_exaggeration_iter, early_exaggeration : int, float
        Length and factor of the early-exaggeration phase (momentum 0.5).
    exaggeration : float
        Factor for the remaining iterations (momentum 0.8).
    learning_rate : float or "auto"
        Step size; "auto" is max(N / exaggeration, 50) for each phase.
    seed : int
        Seed for anything random in the engine.
    n_jobs : int
        Threads (-1: all cores).
    dof : float
        Degrees of freedom of the t kernel (1: standard t-SNE; < 1: heavier tails).

    Returns
    -------
    OptimizeResult
    """
    chosen, reason = choose_engine(engine, P.shape[0])
    logger.info("t-SNE engine: %s (%s)", chosen, reason)
    schedule = (n_iter, early_exaggeration_iter, early_exaggeration, exaggeration, learning_rate)
    if chosen == "opentsne":
        return _optimize_opentsne(P, init, *schedule, seed, n_jobs, reason, dof)
    return _optimize_ours(P, init, *schedule, chosen, reason, dof)


def _phases(n_iter: int, early_iter: int, early_exaggeration: float, exaggeration: float):
    """(iterations, exaggeration, momentum) of the early and the main phase."""
    return [(early_iter, early_exaggeration, 0.5), (n_iter - early_iter, exaggeration, 0.8)]


def _optimize_ours(P, init, n_iter, early_iter, early_exaggeration, exaggeration, learning_rate, engine, reason,
                   dof) -> OptimizeResult:
    xp = np if engine == "numpy" else cupy_or_none()
    embedding = Embedding(init, P, xp=xp, dof=dof)
    with Progress(n_iter, "t-SNE") as progress:
        def report(iteration: int, kl: float, seconds: float) -> None:
            progress.advance(CALLBACK_EVERY, note=f"KL {kl:.4f}")

        for phase_iter, phase_exaggeration, momentum in _phases(n_iter, early_iter, early_exaggeration,
                                                                exaggeration):
            if phase_iter > 0:
                embedding.optimize(phase_iter, exaggeration=phase_exaggeration, momentum=momentum,
                                   learning_rate=learning_rate, callback=report, callback_every=CALLBACK_EVERY)
    kl = embedding.kl_divergence
    if n_iter % CALLBACK_EVERY:
        kl = embedding.gradient(1.0, with_kl=True)[1]
    return OptimizeResult(layout=embedding.layout.astype(np.float32), kl_divergence=float(kl), engine=engine,
                          reason=reason, kl_history=embedding.history)


def _optimize_opentsne(P, init, n_iter, early_iter, early_exaggeration, exaggeration, learning_rate,
                       seed, n_jobs, reason, dof) -> OptimizeResult:
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import Affinities

    affinities = Affinities()
    affinities.P = P.astype(np.float64).tocsr()
    threads = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    # openTSNE's own choice: Barnes-Hut below 10,000 points, FFT interpolation above.
    method = "bh" if P.shape[0] < 10_000 else "fft"
    embedding = TSNEEmbedding(np.asarray(init, dtype=np.float64), affinities, negative_gradient_method=method, dof=dof,
                              random_state=seed, n_jobs=threads, verbose=False)
    history: list[tuple[int, float, float]] = []
    start = time.perf_counter()
    phases = _phases(n_iter, early_iter, early_exaggeration, exaggeration)
    done = 0
    with Progress(n_iter, "t-SNE") as progress:
        for phase_iter, phase_exaggeration, momentum in phases:
            if phase_iter <= 0:
                continue

            def report(iteration: int, kl: float, _embedding: np.ndarray, offset: int = done) -> None:
                history.append((offset + iteration, float(kl), round(time.perf_counter() - start, 3)))
                progress.advance(CALLBACK_EVERY, note=f"KL {kl:.4f}")

            embedding = embedding.optimize(
                n_iter=phase_iter, exaggeration=phase_exaggeration, momentum=momentum,
                learning_rate=learning_rate_for(P.shape[0], phase_exaggeration, learning_rate),
                callbacks=[report], callbacks_every_iters=CALLBACK_EVERY, inplace=True,
            )
            done += phase_iter
    layout = np.asarray(embedding, dtype=np.float64)
    kl = float(embedding.kl_divergence) if embedding.kl_divergence is not None else float("nan")
    return OptimizeResult(layout=layout.astype(np.float32), kl_divergence=kl, engine="opentsne",
                          reason=reason, kl_history=history)
