"""Initial layouts: PCA (default) or random, scaled to standard deviation 1e-4."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger("tsne_dist")

INIT_STD = 1e-4
INITIALIZATIONS = ("pca", "random")


def random_init(n_items: int, seed: int) -> np.ndarray:
    """Gaussian layout with standard deviation 1e-4."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, INIT_STD, size=(n_items, 2))


def pca_init(vectors: np.ndarray, seed: int) -> np.ndarray:
    """First two principal components, first axis scaled to standard deviation 1e-4.

    Falls back to :func:`random_init` (with a log line) when the vectors have
    no variance along two directions (e.g. all identical), where PCA is undefined.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) item vectors.
    seed : int
        Seed for the randomized SVD and the fallback.

    Returns
    -------
    np.ndarray
        (N, 2) float64.
    """
    from sklearn.decomposition import PCA  # scikit-learn loads in 2 s: only where used
    n_items, n_dims = vectors.shape
    if n_dims < 2:
        logger.info("PCA init needs two dimensions; using random init")
        return random_init(n_items, seed)
    solver = "randomized" if n_items * n_dims > 5_000_000 else "full"
    with np.errstate(all="ignore"):
        layout = PCA(n_components=2, svd_solver=solver, random_state=seed).fit_transform(vectors.astype(np.float64))
    scale = layout[:, 0].std()
    if not np.isfinite(layout).all() or scale <= 0 or layout[:, 1].std() <= 1e-12 * max(scale, 1e-300):
        logger.info("the vectors have no spread along two directions; using random init")
        return random_init(n_items, seed)
    return layout / scale * INIT_STD


def initial_layout(initialization: str, n_items: int, seed: int, vectors: np.ndarray | None = None) -> np.ndarray:
    """The (N, 2) starting layout for a resolved ``initialization``.

    Parameters
    ----------
    initialization : str
        ``pca`` (needs ``vectors``) or ``random``.
    n_items : int
        Items to place.
    seed : int
        Seed.
    vectors : np.ndarray, optional
        (N, D) vectors for ``pca``.

    Raises
    ------
    ValueError
        For ``pca`` without vectors, or an unknown initialization.
    """
    if initialization == "pca":
        if vectors is None:
            raise ValueError("initialization 'pca' needs the vectors")
        return pca_init(vectors, seed)
    if initialization == "random":
        return random_init(n_items, seed)
    raise ValueError(f"initialization must be one of {', '.join(INITIALIZATIONS)}, got {initialization!r}")
