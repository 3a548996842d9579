"""Barnes-Hut repulsion on a quadtree, compiled with numba (CPU).

The repulsive forces of t-SNE, sum_j w_ij^((dof+1)/dof) (y_i - y_j) / Z with
w_ij = (1 + |y_i - y_j|^2 / dof)^-dof and Z = sum over i != j of w_ij, are
approximated as in van der Maaten (2014), "Accelerating t-SNE using tree-based
algorithms" (JMLR 15): a quadtree over the layout holds each cell's point count and
centre of mass, and a cell of width ``w`` at distance ``d`` from a point stands in
for all its points when ``w / d < theta``. The opening rule and the default
``theta = 0.5`` are openTSNE's (``quad_tree`` / ``_tsne``, Policar et al. 2024); its
cells are not compressed and it drops points at the query's own position, where we
count them in Z. On 2 cores this is faster than the FFT grid of
:func:`tsne_dist.tsne.gradient.repulsion` below 50,000 points on every map measured
(3.7x at 20k), and at a lower KL.

The tree is a compressed quadtree built from sorted Z-curve (Morton) keys: a sort
and one pass, with no per-point insertion. A leaf holds one point, or points closer
than span / 2^31; up to ``LEAF_EXACT`` of them are summed one by one (the point
itself left out), so theta = 0 is exact; a larger crowd counts as its centre of mass,
or, for one of its own points, as w = 1 and no force from each of the others (exact
to within that distance). The traversal runs on all cores, points in Z-curve order
(neighbouring points walk the same cells), and the per-point sums are added up in a
fixed order, so a result does not depend on the thread count.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from .gradient import layout_bounds

THETA = 0.5
LEVELS = 31  # quadtree levels: points in one cell of width span / 2^31 share a leaf
LEVELS_CELLS = 2 ** LEVELS
_STACK = 3 * LEVELS + 8  # depth-first: at most 3 siblings waiting per level, plus the 4 pushed last
_CHUNK = 256  # points per parallel task (one traversal stack each)
LEAF_EXACT = 16  # a leaf with more points (a crowd at one spot) is not summed pair by pair


@numba.njit(inline="always")
def _spread_bits(value):  # pragma: no cover - compiled
    """The low 31 bits of ``value`` moved to the even bit positions of a uint64."""
    v = np.uint64(value) & np.uint64(0x7FFFFFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
    v = (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)
    return v


@numba.njit(cache=True)
def _morton_keys(y, lower_x, lower_z, width):  # pragma: no cover - compiled
    """Z-curve keys (uint64, 2 x 31 bits) of the points of ``y`` in the square of side
    ``width`` whose lower corner is (lower_x, lower_z). One thread: a parallel region
    per iteration costs more than it saves (5 ms at 1M points), most of all when
    other processes hold the cores."""
    n_points = y.shape[0]
    keys = np.empty(n_points, dtype=np.uint64)
    scale = float(LEVELS_CELLS) / width
    top = LEVELS_CELLS - 1
    for i in range(n_points):
        qx = min(max(int((y[i, 0] - lower_x) * scale), 0), top)
        qz = min(max(int((y[i, 1] - lower_z) * scale), 0), top)
        keys[i] = (_spread_bits(qx) << np.uint64(1)) | _spread_bits(qz)
    return keys


@numba.njit(inline="always")
def _highest_digit(diff):  # pragma: no cover - compiled
    """The index j of the highest base-4 digit (bits 2j, 2j+1) that is set in ``diff`` > 0."""
    digit = 0
    for shift in (32, 16, 8, 4, 2):
        if diff >> np.uint64(shift):
            diff >>= np.uint64(shift)
            digit += shift // 2
    return digit


@numba.njit(inline="always")
def _first_at_least(keys, start, stop, digit, value):  # pragma: no cover - compiled
    """First index in [start, stop) whose base-4 ``digit`` is >= ``value`` (digits ascend there)."""
    shift = np.uint64(2 * digit)
    while start < stop:
        middle = (start + stop) // 2
        if (keys[middle] >> shift) & np.uint64(3) < value:
            start = middle + 1
        else:
            stop = middle
    return start


@numba.njit(cache=True)
def _tree_from_sorted_keys(keys, xs, zs, lower_x, lower_z, width):  # pragma: no cover - compiled
    n_points = keys.shape[0]
    sum_x = np.zeros(n_points + 1)  # prefix sums of positions relative to the lower corner
    sum_z = np.zeros(n_points + 1)
    for k in range(n_points):
        sum_x[k + 1] = sum_x[k] + (xs[k] - lower_x)
        sum_z[k + 1] = sum_z[k] + (zs[k] - lower_z)
    capacity = 2 * n_points
    cells = np.zeros((capacity, 4))
    links = np.empty(capacity, dtype=np.int64)
    n_children = np.zeros(capacity, dtype=np.int64)
    ranges = np.empty((capacity, 2), dtype=np.int64)
    ranges[0, 0] = 0
    ranges[0, 1] = n_points
    n_cells = 1
    pending = np.empty(_STACK, dtype=np.int64)
    pending[0] = 0
    top = 1
    bounds = np.empty(5, dtype=np.int64)
    while top > 0:
        top -= 1
        cell = pending[top]
        start, stop = ranges[cell, 0], ranges[cell, 1]
        size = stop - start
        cells[cell, 0] = lower_x + (sum_x[stop] - sum_x[start]) / size
        cells[cell, 1] = lower_z + (sum_z[stop] - sum_z[start]) / size
        cells[cell, 2] = size
        diff = keys[start] ^ keys[stop - 1]
        if size == 1 or diff == 0:  # a leaf: one point, or points in one finest cell
            links[cell] = -1 - start
            continue
        digit = _highest_digit(diff)  # the smallest quadtree cell holding the range splits on it
        cell_width = width * 2.0 ** (digit + 1 - LEVELS)
        cells[cell, 3] = cell_width * cell_width
        bounds[0] = start
        for value in range(1, 4):
            bounds[value] = _first_at_least(keys, bounds[value - 1], stop, digit, value)
        bounds[4] = stop
        links[cell] = n_cells
        for value in range(4):
            if bounds[value + 1] > bounds[value]:
                ranges[n_cells, 0] = bounds[value]
                ranges[n_cells, 1] = bounds[value + 1]
                n_cells += 1
        n_children[cell] = n_cells - links[cell]
        for child in range(n_cells - 1, links[cell] - 1, -1):  # depth-first, lowest key first
            pending[top] = child
            top += 1
    return cells[:n_cells], links[:n_cells], n_children[:n_cells]


class Quadtree(NamedTuple):
    """A compressed quadtree over a layout (see :func:`build_quadtree`).

    Attributes
    ----------
    cells : (M, 4) float64
        Per cell: centre of mass x, y, point count, squared cell width (0 for a
        leaf). M < 2N; cell 0 is the root.
    links : (M,) int64
        An inner cell's first child (its children are contiguous); for a leaf,
        ``-1 - first``, where ``first`` is its first point in tree order.
    n_children : (M,) int64
        Children of an inner cell (2 to 4), 0 for a leaf.
    order : (N,) int64
        Point indices in tree (Z-curve) order: a leaf's points are
        ``order[first:first + count]``.
    xs, zs : (N,) float64
        The coordinates in tree order.
    """

    cells: np.ndarray
    links: np.ndarray
    n_children: np.ndarray
    order: np.ndarray
    xs: np.ndarray
    zs: np.ndarray


def build_quadtree(y: np.ndarray) -> Quadtree:
    """Compressed quadtree of a 2-D layout, from sorted Z-curve (Morton) keys.

    Each point gets a key of 2 x 31 interleaved bits: its cell at the finest of
    ``LEVELS`` levels of the bounding square. After sorting, the points of any
    quadtree cell are one run of keys, split into quadrants by binary search, and a
    cell's centre of mass comes from prefix sums. A cell whose points all fall in one
    quadrant is not stored (the tree is compressed), so every inner cell has 2 to 4
    children and its width is that of the smallest quadtree cell holding its points.
    Points that share a finest cell (closer than span / 2^31) share a leaf.

    Parameters
    ----------
    y : np.ndarray
        (N, 2) float64 layout.

    Returns
    -------
    Quadtree

    Raises
    ------
    DivergedError
        For a layout that holds NaN or infinite coordinates.
    """
    lower, width = layout_bounds(y)
    keys = _morton_keys(y, float(lower[0]), float(lower[1]), width)
    order = np.argsort(keys)
    xs = np.ascontiguousarray(y[order, 0])
    zs = np.ascontiguousarray(y[order, 1])
    cells, links, n_children = _tree_from_sorted_keys(keys[order], xs, zs, float(lower[0]), float(lower[1]), width)
    return Quadtree(cells, links, n_children, order, xs, zs)


@numba.njit(inline="always")
def _kernel(d_sq, dof):  # pragma: no cover - compiled
    """(w, w^((dof+1)/dof)) for w = (1 + d^2/dof)^-dof."""
    base = 1.0 / (1.0 + d_sq / dof)
    if dof == 1.0:
        return base, base * base
    w = base ** dof
    return w, w * base


@numba.njit(parallel=True, cache=True)
def _repulsion_on_tree(cells, links, n_children, order, xs, zs, theta, dof):  # pragma: no cover - compiled
    n_points = xs.shape[0]
    forces = np.zeros((n_points, 2))
    z_parts = np.zeros(n_points)
    theta_sq = theta * theta
    n_chunks = (n_points + _CHUNK - 1) // _CHUNK
    for chunk in numba.prange(n_chunks):
        stack = np.empty(_STACK, dtype=np.int64)
        for k in range(chunk * _CHUNK, min((chunk + 1) * _CHUNK, n_points)):
            x = xs[k]
            z = zs[k]
            fx = 0.0
            fz = 0.0
            z_sum = 0.0
            stack[0] = 0
            top = 1
            while top > 0:
                top -= 1
                cell = stack[top]
                link = links[cell]
                c = cells[cell, 2]
                if link < 0:
                    first = -1 - link
                    if c <= LEAF_EXACT:  # its points one by one, the point itself left out
                        for m in range(first, first + int(c)):
                            if m != k:
                                dx = x - xs[m]
                                dz = z - zs[m]
                                w, kernel = _kernel(dx * dx + dz * dz, dof)
                                z_sum += w
                                fx += kernel * dx
                                fz += kernel * dz
                        continue
                    if first <= k < first + c:  # the point's own crowd: the others at distance ~0
                        z_sum += c - 1.0
                        continue
                dx = x - cells[cell, 0]
                dz = z - cells[cell, 1]
                d_sq = dx * dx + dz * dz
                if link < 0 or cells[cell, 3] < theta_sq * d_sq:  # the cell's points at their centre
                    w, kernel = _kernel(d_sq, dof)
                    z_sum += c * w
                    fx += c * kernel * dx
                    fz += c * kernel * dz
                else:
                    for child in range(link, link + n_children[cell]):
                        stack[top] = child
                        top += 1
            i = order[k]
            forces[i, 0] = fx
            forces[i, 1] = fz
            z_parts[i] = z_sum
    return forces, z_parts


def repulsion_barnes_hut(y: np.ndarray, dof: float = 1.0, theta: float = THETA) -> tuple[np.ndarray, float]:
    """Barnes-Hut repulsive forces and the normalisation Z (same contract as
    :func:`tsne_dist.tsne.gradient.repulsion`).

    Parameters
    ----------
    y : np.ndarray
        (N, 2) float64 layout (NumPy; this method has no GPU twin).
    dof : float
        Degrees of freedom of the t kernel (1: Cauchy).
    theta : float
        Opening angle: a cell of width w at distance d from a point summarises its
        points when w / d < theta (0 is exact; openTSNE's default 0.5). Below
        1 / sqrt(2) a cell never summarises a point inside it.

    Returns
    -------
    forces : np.ndarray
        (N, 2) float64: sum_j w_ij^((dof+1)/dof) (y_i - y_j) / Z.
    Z : float
        sum over i != j of w_ij.

    Raises
    ------
    DivergedError
        For a layout that holds NaN or infinite coordinates.
    ValueError
        For a layout that is not (N, 2).
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != 2:
        raise ValueError(f"Barnes-Hut repulsion needs an (N, 2) layout, got shape {y.shape}")
    tree = build_quadtree(y)
    forces, z_parts = _repulsion_on_tree(tree.cells, tree.links, tree.n_children, tree.order, tree.xs, tree.zs,
                                         float(theta), float(dof))
    z = float(np.sum(z_parts))
    return forces / z, z
