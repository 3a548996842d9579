"""The t-SNE gradient, written once against the array module ``xp`` (NumPy or CuPy).

Attraction: the sum over the sparse symmetric P of p_ij w_ij (y_i - y_j), with
w_ij = (1 + |y_i - y_j|^2 / dof)^-1, by edge list and segment sums.

Repulsion (FIt-SNE, Linderman et al. 2019): charges q = [1, y_x, y_y, |y|^2] are
spread onto an equispaced grid with ``p`` Lagrange nodes per box, convolved by FFT
with the kernel K(d) = (1 + d^2 / dof)^-(dof + 1) in a circulant embedding of twice
the grid, and gathered back as phi_1..phi_4. Then

    Z = sum_i [(1 + |y_i|^2/dof) phi_1 - 2/dof (y_x phi_2 + y_y phi_3) + phi_4/dof] - N
    repulsion_i = (y_i phi_1 - (phi_2, phi_3)) / Z

The gradient is ``exaggeration * attraction - repulsion`` (openTSNE's scale, without
the factor 4), and KL(P || Q) = sum p log p - dof * sum p log w + log Z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import DivergedError
from ..xp import get_array_module

MIN_BOXES = 50
MAX_BOXES = 500
EDGE_CHUNK = 8_000_000


@dataclass
class EdgeList:
    """P as flat edge arrays (rows, cols: int32, values: float32) for segment sums, plus
    the CSR row pointer; 12 bytes per edge (about 1.5 GB for 1M points at perplexity 30)."""

    rows: object
    cols: object
    values: object
    indptr: object
    n_items: int
    sum_p_log_p: float


def edge_list(P, xp=np) -> EdgeList:
    """Flatten a CSR P (scipy) into edge arrays on the device of ``xp``."""
    P = P.tocsr()
    counts = np.diff(P.indptr)
    rows = np.repeat(np.arange(P.shape[0], dtype=np.int32), counts)
    values = P.data.astype(np.float32)  # as stored; products are formed in float64
    positive = values[values > 0].astype(np.float64)
    return EdgeList(
        rows=xp.asarray(rows), cols=xp.asarray(P.indices.astype(np.int32)), values=xp.asarray(values),
        indptr=xp.asarray(P.indptr.astype(np.int64)), n_items=P.shape[0],
        sum_p_log_p=float((positive * np.log(positive)).sum()),
    )


def attraction(y, edges: EdgeList, dof: float = 1.0, with_kl: bool = False):
    """Attractive forces sum_j p_ij w_ij (y_i - y_j) and, if asked, sum p_ij log w_ij.

    Processed in chunks of edges so memory stays bounded at any N.
    """
    xp = get_array_module(y)
    n_items = y.shape[0]
    forces = xp.zeros((n_items, 2), dtype=y.dtype)
    log_w_sum = 0.0
    n_edges = edges.rows.shape[0]
    for start in range(0, n_edges, EDGE_CHUNK):
        rows = edges.rows[start:start + EDGE_CHUNK]
        cols = edges.cols[start:start + EDGE_CHUNK]
        values = edges.values[start:start + EDGE_CHUNK]
        diff = y[rows] - y[cols]
        sq = (diff * diff).sum(axis=1)
        w = 1.0 / (1.0 + sq / dof)
        strength = values * w
        forces[:, 0] += xp.bincount(rows, weights=strength * diff[:, 0], minlength=n_items)
        forces[:, 1] += xp.bincount(rows, weights=strength * diff[:, 1], minlength=n_items)
        if with_kl:
            log_w_sum += float((values * xp.log(w)).sum())
    return forces, dof * log_w_sum


@numba.njit(parallel=True, cache=True)
def _attraction_csr(y, indptr, cols, values, dof, with_kl):  # pragma: no cover - compiled
    n_items = y.shape[0]
    forces = np.zeros((n_items, 2))
    log_w = np.zeros(n_items)
    for i in numba.prange(n_items):
        fx = 0.0
        fy = 0.0
        lw = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            j = cols[e]
            dx = y[i, 0] - y[j, 0]
            dy = y[i, 1] - y[j, 1]
            w = 1.0 / (1.0 + (dx * dx + dy * dy) / dof)
            s = values[e] * w
            fx += s * dx
            fy += s * dy
            if with_kl:
                lw += values[e] * np.log(w)
        forces[i, 0] = fx
        forces[i, 1] = fy
        log_w[i] = lw
    return forces, log_w.sum()


def attraction_numba(y: np.ndarray, edges: EdgeList, dof: float = 1.0, with_kl: bool = False):
    """CPU twin of :func:`attraction` (numba, one pass over CSR rows); same results."""
    forces, log_w_sum = _attraction_csr(y, edges.indptr, edges.cols, edges.values, float(dof), with_kl)
    return forces, dof * log_w_sum if with_kl else 0.0


@dataclass
class Grid:
    """The interpolation grid of one iteration."""

    n_boxes: int
    n_nodes: int
    lower: object
    spacing: float


def choose_boxes(span: float, min_boxes: int = MIN_BOXES, max_boxes: int = MAX_BOXES,
                 boxes_per_unit: float = 1.0) -> int:
    """Boxes per side: one per unit of the map's span, at least ``min_boxes``, capped."""
    wanted = int(np.ceil(span * boxes_per_unit))
    return int(min(max(wanted, min_boxes), max_boxes))


def fast_box_count(n_boxes: int, p: int) -> int:
    """The smallest count >= n_boxes whose FFT length 2 * p * count has only factors 2, 3, 5."""
    count = n_boxes
    while True:
        length = 2 * p * count
        for factor in (2, 3, 5):
            while length % factor == 0:
                length //= factor
        if length == 1:
            return count
        count += 1


def _fft_module(xp):
    """scipy.fft (multi-threaded) for NumPy, else the array module's own fft."""
    if xp is np:
        import scipy.fft

        return scipy.fft, {"workers": -1}
    return xp.fft, {}


def _lagrange_weights(t, p: int):
    """Weights of the ``p`` nodes at local positions 0.5, 1.5, ... for points at ``t`` in [0, p)."""
    xp = get_array_module(t)
    nodes = np.arange(p) + 0.5
    weights = []
    for j in range(p):
        w = xp.ones_like(t)
        for m in range(p):
            if m != j:
                w = w * (t - nodes[m]) / (nodes[j] - nodes[m])
        weights.append(w)
    return weights


def _kernel_fft(xp, n_nodes: int, spacing: float, dof: float, power: float | None = None):
    """FFT of K(d) = (1 + d^2/dof)^-power (default power dof + 1) on the circulant embedding (2n x 2n)."""
    power = dof + 1.0 if power is None else power
    fft, options = _fft_module(xp)
    offsets = xp.arange(2 * n_nodes, dtype=np.float64)
    offsets = xp.where(offsets <= n_nodes, offsets, offsets - 2 * n_nodes) * spacing
    offsets[n_nodes] = 0.0  # the unused middle of the embedding
    sq = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernel = (1.0 + sq / dof) ** (-power)
    kernel[n_nodes, :] = 0.0
    kernel[:, n_nodes] = 0.0
    return fft.rfft2(kernel, **options)


@numba.njit(cache=True)
def _spread_numba(indices, weights, charges, n_cells):  # pragma: no cover - compiled
    grid = np.zeros((charges.shape[0], n_cells))
    for point in range(indices.shape[1]):
        for node in range(indices.shape[0]):
            cell = indices[node, point]
            w = weights[node, point]
            for c in range(charges.shape[0]):
                grid[c, cell] += w * charges[c, point]
    return grid


@numba.njit(parallel=True, cache=True)
def _gather_numba(indices, weights, potentials):  # pragma: no cover - compiled
    n_charges = potentials.shape[0]
    n_points = indices.shape[1]
    phi = np.zeros((n_charges, n_points))
    for point in numba.prange(n_points):
        for node in range(indices.shape[0]):
            cell = indices[node, point]
            w = weights[node, point]
            for c in range(n_charges):
                phi[c, point] += w * potentials[c, cell]
    return phi


def _spread_xp(indices, weights, charges, n_cells):
    xp = get_array_module(indices)
    flat = indices.ravel()
    return xp.stack([xp.bincount(flat, weights=(weights * charges[c][None, :]).ravel(), minlength=n_cells)
                     for c in range(charges.shape[0])])


def _gather_xp(indices, weights, potentials):
    return (weights[None] * potentials[:, indices]).sum(axis=1)


def interpolation_nodes(y, lower, spacing: float, n_boxes: int, p: int):
    """The p x p grid nodes around each point and their Lagrange weights.

    Parameters
    ----------
    y : xp.ndarray
        (N, 2) positions inside the grid (``lower`` to ``lower + n_boxes * p * spacing``).
    lower : xp.ndarray
        (2,) grid corner.
    spacing : float
        Distance between nodes.
    n_boxes, p : int
        Boxes per side and nodes per box and side.

    Returns
    -------
    indices : xp.ndarray
        (p*p, N) int64 flat node numbers (row-major on the n_boxes*p square).
    weights : xp.ndarray
        (p*p, N) float64 interpolation weights.
    """
    xp = get_array_module(y)
    n_nodes = n_boxes * p
    local = (y - lower) / spacing  # in node units, [0, n_nodes]
    box = xp.minimum(xp.floor(local / p), n_boxes - 1)
    t = local - box * p
    wx = _lagrange_weights(t[:, 0], p)
    wy = _lagrange_weights(t[:, 1], p)
    base_x = (box[:, 0] * p).astype(np.int64)
    base_y = (box[:, 1] * p).astype(np.int64)
    indices = xp.stack([(base_x + jx) * n_nodes + (base_y + jy) for jx in range(p) for jy in range(p)])
    weights = xp.stack([wx[jx] * wy[jy] for jx in range(p) for jy in range(p)])
    return indices, weights


def grid_functions(xp, use_numba: bool):
    """(spread, gather): the compiled CPU twins on NumPy when asked, else the ``xp`` versions."""
    return (_spread_numba, _gather_numba) if (use_numba and xp is np) else (_spread_xp, _gather_xp)


def grid_potentials(charges_on_grid, n_nodes: int, spacing: float, dof: float, power: float | None = None):
    """Convolve charges spread on the n_nodes x n_nodes grid with the kernel
    (1 + d^2/dof)^-power (default dof + 1), by FFT on the circulant embedding.

    Parameters
    ----------
    charges_on_grid : xp.ndarray
        (C, n_nodes * n_nodes) spread charges.

    Returns
    -------
    xp.ndarray
        (C, n_nodes * n_nodes) potentials at the nodes.
    """
    xp = get_array_module(charges_on_grid)
    n_charges = charges_on_grid.shape[0]
    grid = xp.zeros((n_charges, 2 * n_nodes, 2 * n_nodes))
    grid[:, :n_nodes, :n_nodes] = charges_on_grid.reshape(n_charges, n_nodes, n_nodes)
    fft, options = _fft_module(xp)
    potentials = fft.irfft2(fft.rfft2(grid, **options) * _kernel_fft(xp, n_nodes, spacing, dof, power)[None],
                            s=(2 * n_nodes, 2 * n_nodes), **options)
    return xp.ascontiguousarray(potentials[:, :n_nodes, :n_nodes]).reshape(n_charges, -1)


def layout_bounds(y):
    """The lower corner of a layout and the side of a square just larger than it.

    Parameters
    ----------
    y : xp.ndarray
        (N, 2) layout.

    Returns
    -------
    lower : xp.ndarray
        (2,) smallest x and y.
    side : float
        The larger of the two extents, times 1 + 1e-9, and at least 1e-9 (a layout
        at one point).

    Raises
    ------
    DivergedError
        When a coordinate is NaN or infinite: the optimisation diverged.
    """
    lower = y.min(axis=0)
    span = float((y.max(axis=0) - lower).max())
    if not np.isfinite(span):
        raise DivergedError("the t-SNE layout diverged (NaN or infinite coordinates)",
                            "lower `learning_rate` or `early_exaggeration`, or check the affinities for "
                            "duplicate or extreme vectors")
    return lower, max(span * (1.0 + 1e-9), 1e-9)


def repulsion(y, dof: float = 1.0, n_interpolation_points: int = 3, min_boxes: int = MIN_BOXES,
              max_boxes: int = MAX_BOXES, boxes_per_unit: float = 1.0, use_numba: bool = False):
    """FFT-interpolated repulsive forces and the normalisation Z.

    Parameters
    ----------
    y : xp.ndarray
        (N, 2) float64 layout.
    dof : float
        Degrees of freedom of the t kernel (1: Cauchy).
    n_interpolation_points : int
        Lagrange nodes per box and side.
    min_boxes, max_boxes : int
        Bounds of the boxes per side.
    boxes_per_unit : float
        Boxes per unit of the map's span within those bounds (accuracy: the
        error falls with the cube of the box width).
    use_numba : bool
        NumPy only: spread and gather with the compiled CPU twins.

    Returns
    -------
    forces : xp.ndarray
        (N, 2) sum_j (1 + d^2/dof)^-(dof+1) (y_i - y_j) / Z.
    Z : float
        sum over i != j of (1 + d_ij^2/dof)^-dof.

    Raises
    ------
    DivergedError
        For a layout that holds NaN or infinite coordinates.
    """
    xp = get_array_module(y)
    p = n_interpolation_points
    n_items = y.shape[0]
    lower, span = layout_bounds(y)
    n_boxes = fast_box_count(choose_boxes(span, min_boxes, max_boxes, boxes_per_unit), p)
    n_nodes = n_boxes * p
    spacing = span / n_nodes
    indices, weights = interpolation_nodes(y, lower, spacing, n_boxes, p)
    sq_norm = (y * y).sum(axis=1)
    charges = xp.stack([xp.ones(n_items), y[:, 0], y[:, 1], sq_norm])  # (4, N)
    spread, gather = grid_functions(xp, use_numba)
    potentials = grid_potentials(spread(indices, weights, charges, n_nodes * n_nodes), n_nodes, spacing, dof)
    phi = gather(indices, weights, potentials)  # (4, N)
    z = ((1.0 + sq_norm / dof) * phi[0] - (2.0 / dof) * (y[:, 0] * phi[1] + y[:, 1] * phi[2])
         + phi[3] / dof).sum() - n_items
    z = float(z)
    forces = xp.stack([y[:, 0] * phi[0] - phi[1], y[:, 1] * phi[0] - phi[2]], axis=1) / z
    return forces, z


def exact_repulsion(y: np.ndarray, dof: float = 1.0) -> tuple[np.ndarray, float]:
    """O(N^2) reference of :func:`repulsion` (for tests on small N)."""
    diff = y[:, None, :] - y[None, :, :]
    sq = (diff ** 2).sum(axis=2)
    base = 1.0 + sq / dof
    np.fill_diagonal(base, np.inf)
    z = float((base ** -dof).sum())
    forces = ((base ** -(dof + 1.0))[:, :, None] * diff).sum(axis=1) / z
    return forces, z
