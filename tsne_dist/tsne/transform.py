"""Place new items into a finished map without moving it (t-SNE ``transform``), on ``xp``.

Each new item i has affinities p_j|i to its k nearest reference items (rows summing to
1, perplexity-calibrated) and minimises its own KL(P_i || Q_i), where q_j|i =
w_ij / Z_i, w = (1 + d^2 / dof)^-dof, over the fixed reference map only; new items do
not see each other (Poličar, Stražar & Zupan 2019, openTSNE's ``transform``). The
gradient is

    sum_j p_j|i (1 + d_ij^2/dof)^-1 (y_i - y_j)  -  sum_j (1 + d_ij^2/dof)^-(dof+1) (y_i - y_j) / Z_i.

The reference map is fixed, so its kernel sums (Z, and the repulsion's two sums) are a
field computed once on an interpolation grid by FFT (FIt-SNE's method, Linderman et al.
2019, with fixed sources) and interpolated at the new items' positions each iteration.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from ..xp import get_array_module
from .gradient import MAX_BOXES, fast_box_count, choose_boxes, grid_functions, grid_potentials, interpolation_nodes
from .initialization import place_by_neighbours

logger = logging.getLogger("tsne_dist")

FIELD_MARGIN = 0.1  # the field's grid reaches this share of the map's span beyond it on each side
TRANSFORM_ITER = 250
TRANSFORM_LEARNING_RATE = 1.0
TRANSFORM_MAX_STEP = 1.0


class ReferenceField:
    """Kernel sums of a fixed reference map, at any point, by FFT-interpolation.

    Parameters
    ----------
    reference : xp.ndarray
        (N, 2) float64 positions of the reference map.
    dof : float
        Degrees of freedom of the t kernel.
    n_interpolation_points : int
        Lagrange nodes per box and side.
    boxes_per_unit : float
        Boxes per unit of the grid's span (at most ``MAX_BOXES`` per side).
    use_numba : bool
        NumPy only: spread and gather with the compiled CPU twins.
    """

    def __init__(self, reference, dof: float = 1.0, *, n_interpolation_points: int = 3, boxes_per_unit: float = 1.0,
                 use_numba: bool = True) -> None:
        xp = get_array_module(reference)
        self.xp, self.dof, self.p = xp, float(dof), n_interpolation_points
        low, high = reference.min(axis=0), reference.max(axis=0)
        span = max(float((high - low).max()), 1e-9)
        self.lower = low - FIELD_MARGIN * span
        self.span = span * (1.0 + 2 * FIELD_MARGIN)
        self.n_boxes = fast_box_count(choose_boxes(self.span, max_boxes=MAX_BOXES, boxes_per_unit=boxes_per_unit),
                                       self.p)
        self.n_nodes = self.n_boxes * self.p
        self.spacing = self.span / self.n_nodes
        self.spread, self.gather = grid_functions(xp, use_numba)
        indices, weights = interpolation_nodes(reference, self.lower, self.spacing, self.n_boxes, self.p)
        charges = xp.stack([xp.ones(reference.shape[0]), reference[:, 0], reference[:, 1]])
        on_grid = self.spread(indices, weights, charges, self.n_nodes * self.n_nodes)
        z_field = grid_potentials(on_grid[:1], self.n_nodes, self.spacing, self.dof, power=self.dof)
        force_fields = grid_potentials(on_grid, self.n_nodes, self.spacing, self.dof)
        self.potentials = xp.concatenate([z_field, force_fields])  # Z, then sum K', sum K' y_x, sum K' y_y

    def repulsion(self, y):
        """The repulsive term sum_j K'_ij (y_i - y_j) / Z_i at each point.

        Parameters
        ----------
        y : xp.ndarray
            (M, 2) float64 positions; points outside the grid are read at its edge.

        Returns
        -------
        xp.ndarray
            (M, 2) float64.
        """
        xp = self.xp
        inside = xp.clip(y, self.lower, self.lower + self.span * (1 - 1e-9))
        indices, weights = interpolation_nodes(inside, self.lower, self.spacing, self.n_boxes, self.p)
        z, k_sum, k_x, k_y = self.gather(indices, weights, self.potentials)
        z = xp.maximum(z, 1e-300)
        return xp.stack([y[:, 0] * k_sum - k_x, y[:, 1] * k_sum - k_y], axis=1) / z[:, None]


def transform_layout(reference, neighbours: np.ndarray, affinities: np.ndarray, *, n_iter: int = TRANSFORM_ITER,
                     learning_rate: float = TRANSFORM_LEARNING_RATE, momentum: float = 0.8, dof: float = 1.0,
                     max_step: float = TRANSFORM_MAX_STEP, xp=np) -> np.ndarray:
    """Positions for new items in a fixed reference map.

    Parameters
    ----------
    reference : np.ndarray
        (N, 2) reference map (not changed).
    neighbours : np.ndarray
        (M, k) int rows of each new item's nearest reference items.
    affinities : np.ndarray
        (M, k) p_j|i for those neighbours, each row summing to 1.
    n_iter : int
        Gradient steps (momentum and per-coordinate gains, as in the main optimiser).
    learning_rate : float
        Step size (the per-item gradient is O(1) in map units, unlike the full
        map's, which carries a 1/N).
    momentum : float
        Weight of the previous update.
    dof : float
        Degrees of freedom of the t kernel (use the reference run's).
    max_step : float
        Largest move of an item in one iteration, in map units.
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    np.ndarray
        (M, 2) float64 positions; each starts at the affinity-weighted median of its
        neighbours' positions.
    """
    n_new, k = neighbours.shape
    reference_np = np.asarray(reference, dtype=np.float64)
    rows = np.repeat(np.arange(n_new), k)
    P = sp.csr_matrix((np.asarray(affinities, dtype=np.float64).ravel(), (rows, np.asarray(neighbours).ravel())),
                      shape=(n_new, len(reference_np)))
    start, _ = place_by_neighbours(P, reference_np, np.ones(len(reference_np), dtype=bool))
    start[~np.isfinite(start[:, 0])] = np.median(reference_np, axis=0)  # no usable weight: the map's centre
    if n_iter <= 0 or n_new == 0:
        return start
    ref = xp.asarray(reference_np)
    field = ReferenceField(ref, dof)
    y = xp.asarray(start)
    neighbour_xy = ref[xp.asarray(neighbours)]  # (M, k, 2)
    p = xp.asarray(affinities, dtype=np.float64)
    update, gains = xp.zeros_like(y), xp.ones_like(y)
    for _ in range(n_iter):
        offsets = y[:, None, :] - neighbour_xy
        attraction = ((p / (1.0 + (offsets * offsets).sum(axis=2) / dof))[:, :, None] * offsets).sum(axis=1)
        gradient = attraction - field.repulsion(y)
        flipped = xp.sign(update) != xp.sign(gradient)
        gains = xp.where(flipped, gains + 0.2, gains * 0.8 + 0.01)
        update = momentum * update - learning_rate * gains * gradient
        norms = xp.sqrt((update * update).sum(axis=1, keepdims=True))
        update = xp.where(norms > max_step, update / xp.maximum(norms, 1e-300) * max_step, update)
        y = y + update
    return y.get() if hasattr(y, "get") else np.asarray(y)
