"""Item vectors from the PPMI matrix by randomized truncated SVD, read in row blocks.

The PPMI matrix (see :mod:`.similarity`, diagonal left out) is never formed as a
whole: every product A @ X streams the stored co-occurrence in row blocks and
turns each block into PPMI on the fly. Halko, Martinsson & Tropp's range finder
with a few power iterations gives Q (N x (D + oversampling)); the SVD of the
small Q^T A gives the top D singular triplets, and the vectors are U sqrt(S)
(the symmetric split used for word vectors).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import zarr

from .similarity import similarity_blocks

logger = logging.getLogger("tsne_dist")


def _row_blocks(group: zarr.Group):
    """Yield (start, PPMI block as CSR) over the stored matrix."""
    n_items = int(group.attrs["shape"][0])
    n_collections = int(group.attrs.get("n_collections", 1))
    for part in similarity_blocks(group, "ppmi", n_collections):
        values = part.values
        values[part.columns == part.rows] = 0.0
        block = sp.csr_matrix((values, part.columns, part.indptr), shape=(part.stop - part.start, n_items))
        block.eliminate_zeros()
        yield part.start, block


def _multiply(group: zarr.Group, x: np.ndarray) -> np.ndarray:
    """PPMI @ x, streamed by row blocks."""
    out = np.empty((x.shape[0], x.shape[1]), dtype=np.float64)
    for start, block in _row_blocks(group):
        out[start:start + block.shape[0]] = block @ x
    return out


def ppmi_svd_vectors(group: zarr.Group, dim: int, *, seed: int = 0, oversampling: int = 10,
                     power_iterations: int = 3) -> np.ndarray:
    """D-dimensional item vectors from the stored co-occurrence matrix.

    Parameters
    ----------
    group : zarr.Group
        The ``cooccurrence`` group (attrs ``n_collections``).
    dim : int
        D, the vector dimension (below the number of items).
    seed : int
        Seed of the random test matrix.
    oversampling, power_iterations : int
        Extra columns of the range finder and passes over the matrix.

    Returns
    -------
    np.ndarray
        (N, D) float32 vectors U sqrt(S); signs fixed so each column's largest
        entry is positive (deterministic).
    """
    n_items = int(group.attrs["shape"][0])
    width = min(n_items, dim + oversampling)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(_multiply(group, rng.standard_normal((n_items, width))))
    for _ in range(power_iterations):
        # PPMI is symmetric, so A^T Q = A Q
        q, _ = np.linalg.qr(_multiply(group, q))
    small = _multiply(group, q).T  # (Q^T A) = (A Q)^T for symmetric A
    u_small, singular, _ = np.linalg.svd(small, full_matrices=False)
    u = q @ u_small[:, :dim]
    singular = singular[:dim]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    vectors = u * signs * np.sqrt(singular)
    logger.info("PPMI SVD: %d x %d vectors, top singular values %s", n_items, dim,
                np.array2string(singular[:5], precision=2))
    return vectors.astype(np.float32)
