"""Gradient descent with momentum and gains (openTSNE's schedule), on ``xp`` arrays.

:class:`Embedding` keeps P, the update and the gains, so a layout can be optimised
further (more iterations, another exaggeration) without starting over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from .barnes_hut import repulsion_barnes_hut
from .gradient import EdgeList, attraction, attraction_numba, edge_list, repulsion

logger = logging.getLogger("tsne_dist")

Callback = Callable[[int, float, float], None]
REPULSION_METHODS = ("auto", "barnes-hut", "fft")
# Below this many items the Barnes-Hut tree beats the FFT grid on 2 cores, at equal or lower KL, on
# both data sets measured: 750 iterations took 11.7 s against 43.5 s on a 20k catalog, 45 s
# against 50 s on 50k GloVe words; at 100k the tree was still faster on the catalog (80 s against
# 94 s) but not on GloVe (100 s against 82 s), where the map is one dense blob (benchmarks/README.md,
# "bench_engine.py": Barnes-Hut against the FFT grid).
BARNES_HUT_MAX_ITEMS = 50_000


def choose_repulsion(method: str, n_items: int, xp=np) -> str:
    """The repulsion an :class:`Embedding` runs: ``barnes-hut`` (CPU only) or ``fft``.

    ``auto`` is ``barnes-hut`` on NumPy below :data:`BARNES_HUT_MAX_ITEMS` items, else
    ``fft`` (a run resolves its choice once, with its reason, by
    :func:`tsne_dist.tsne.resolve_repulsion`).

    Parameters
    ----------
    method : str
        ``auto``, ``barnes-hut`` or ``fft``.
    n_items : int
        Points in the layout.
    xp : module
        The array module of the layout (``numpy`` or ``cupy``).

    Returns
    -------
    str
        ``barnes-hut`` or ``fft``.

    Raises
    ------
    ValueError
        For an unknown method, or ``barnes-hut`` on a GPU array module.
    """
    if method not in REPULSION_METHODS:
        raise ValueError(f"repulsion must be one of {', '.join(REPULSION_METHODS)}, got {method!r}")
    if method == "auto":
        return "barnes-hut" if xp is np and n_items < BARNES_HUT_MAX_ITEMS else "fft"
    if method == "barnes-hut" and xp is not np:
        raise ValueError("barnes-hut repulsion runs on NumPy only; use fft on a GPU")
    return method


def learning_rate_for(n_items: int, exaggeration: float, learning_rate: float | str) -> float:
    """The step size: openTSNE's 'auto' is max(N / exaggeration, 50)."""
    if learning_rate == "auto":
        return max(n_items / exaggeration, 50.0)
    return float(learning_rate)


class Embedding:
    """A 2-D t-SNE layout under optimisation.

    Parameters
    ----------
    init : array
        (N, 2) initial layout.
    P : scipy.sparse.csr_matrix
        Symmetric affinities summing to 1.
    xp : module
        ``numpy`` or ``cupy``: where the arrays live and the gradient runs.
    dof : float
        Degrees of freedom of the t kernel (1: standard t-SNE; < 1: heavier tails).
    use_numba : bool
        On NumPy, use the compiled CPU twins of the attraction and the grid
        spreading/gathering (same results, faster on CPU).
    repulsion : str
        ``barnes-hut`` (:mod:`tsne_dist.tsne.barnes_hut`, NumPy only), ``fft``
        (:func:`tsne_dist.tsne.gradient.repulsion`) or ``auto`` (see :func:`choose_repulsion`).
    n_interpolation_points, min_boxes, max_boxes, boxes_per_unit
        Interpolation grid settings of ``fft``.

    Attributes
    ----------
    iteration : int
        Iterations done so far (over all :meth:`optimize` calls).
    kl_divergence : float
        KL(P || Q) at the last evaluation.
    history : list of (iteration, kl, seconds)
        KL divergence every ``callback_every`` iterations.
    repulsion : str
        The repulsion that runs (``barnes-hut`` or ``fft``).
    """

    def __init__(self, init, P, *, xp=np, dof: float = 1.0, use_numba: bool = True, repulsion: str = "auto",
                 n_interpolation_points: int = 3, min_boxes: int = 50, max_boxes: int = 500,
                 boxes_per_unit: float = 1.0) -> None:
        self.xp = xp
        self.y = xp.asarray(init, dtype=np.float64).copy()
        self.edges: EdgeList = edge_list(P, xp)
        self.dof = float(dof)
        self.use_numba = use_numba and xp is np
        self.repulsion = choose_repulsion(repulsion, self.y.shape[0], xp)
        self.grid_settings = {"n_interpolation_points": n_interpolation_points, "min_boxes": min_boxes,
                              "max_boxes": max_boxes, "boxes_per_unit": boxes_per_unit}
        self.update = xp.zeros_like(self.y)
        self.gains = xp.ones_like(self.y)
        self.iteration = 0
        self.kl_divergence = float("nan")
        self.history: list[tuple[int, float, float]] = []
        self._seconds = 0.0

    def gradient(self, exaggeration: float, with_kl: bool = False) -> tuple[object, float]:
        """The gradient at the current layout and, if asked, KL(P || Q)."""
        attract = attraction_numba if self.use_numba else attraction
        attractive, log_w_sum = attract(self.y, self.edges, self.dof, with_kl)
        if self.repulsion == "barnes-hut":
            repulsive, z = repulsion_barnes_hut(self.y, self.dof)
        else:
            repulsive, z = repulsion(self.y, self.dof, use_numba=self.use_numba, **self.grid_settings)
        kl = self.edges.sum_p_log_p - log_w_sum + np.log(z) if with_kl else float("nan")
        return exaggeration * attractive - repulsive, float(kl)

    def optimize(self, n_iter: int, *, exaggeration: float = 1.0, momentum: float = 0.8,
                 learning_rate: float | str = "auto", max_step_norm: float | None = 5.0, min_gain: float = 0.01,
                 callback: Callback | None = None, callback_every: int = 50) -> "Embedding":
        """Run ``n_iter`` more iterations in place; returns self.

        Parameters
        ----------
        n_iter : int
            Iterations to run.
        exaggeration : float
            Factor on the attractive forces.
        momentum : float
            Weight of the previous update.
        learning_rate : float or "auto"
            "auto" is max(N / exaggeration, 50).
        max_step_norm : float, optional
            Largest step a point may take in one iteration.
        min_gain : float
            Lower bound of the per-coordinate gains.
        callback : callable, optional
            Called as ``callback(iteration, kl, seconds)`` every ``callback_every``
            iterations, with the KL divergence evaluated there.
        callback_every : int
            Iterations between KL evaluations.
        """
        xp = self.xp
        n_items = self.y.shape[0]
        rate = learning_rate_for(n_items, exaggeration, learning_rate)
        start = time.perf_counter()
        for _ in range(n_iter):
            self.iteration += 1
            evaluate = self.iteration % callback_every == 0
            gradient, kl = self.gradient(exaggeration, with_kl=evaluate)
            flipped = xp.sign(self.update) != xp.sign(gradient)
            self.gains = xp.where(flipped, self.gains + 0.2, self.gains * 0.8 + min_gain)
            self.update = momentum * self.update - rate * self.gains * gradient
            if max_step_norm is not None:
                norms = xp.sqrt((self.update * self.update).sum(axis=1, keepdims=True))
                self.update = xp.where(norms > max_step_norm, self.update / xp.maximum(norms, 1e-300) * max_step_norm,
                                       self.update)
            self.y += self.update
            self.y -= self.y.mean(axis=0)
            if evaluate:
                self.kl_divergence = kl
                seconds = self._seconds + time.perf_counter() - start
                self.history.append((self.iteration, kl, round(seconds, 3)))
                if callback is not None:
                    callback(self.iteration, kl, seconds)
        self._seconds += time.perf_counter() - start
        return self

    @property
    def layout(self) -> np.ndarray:
        """The current layout as a NumPy array."""
        return self.y.get() if hasattr(self.y, "get") else np.asarray(self.y)
