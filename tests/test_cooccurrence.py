"""The co-occurrence matrix built on Dask equals a scipy reference exactly, for 1, 3 and 7
input partitions, with unit, product and time-decay weights and with collection caps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from tsne_dist.cluster import dask_client
from tsne_dist.cooccurrence.matrix import build_cooccurrence
from tsne_dist.cooccurrence.pairs import PairSpec, cap_collection, collection_key
from tsne_dist.cooccurrence.vocabulary import build_vocabulary, item_counts
from tsne_dist.io.interactions import InteractionColumns, read_interactions
from tsne_dist.arrays import read_csr
from tsne_dist.storage import Location


def random_interactions(seed: int = 0, n_rows: int = 4000, n_users: int = 150, n_items: int = 260) -> pd.DataFrame:
    """Users with skewed item choices, repeated (user, item) rows, dyadic weights, timestamps."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=n_rows, p=popularity / popularity.sum())
    users = rng.zipf(1.6, size=n_rows) % n_users  # a few long collections, so caps bite
    return pd.DataFrame({
        "user": [f"u{u}" for u in users],
        "item": items.astype(np.int64) * 7 + 3,  # ids that are not row numbers
        "rating": rng.choice([0.5, 1.0, 1.5, 2.0, 4.0], size=n_rows),  # sums of these are exact in float64
        "ts": rng.integers(0, 10_000, size=n_rows).astype(np.float64),
    })


def reference_matrix(df: pd.DataFrame, *, min_count: int, max_items: int | None, max_size: int,
                     weighted: bool = False, tau: float | None = None, seed: int = 0,
                     combine: str = "product") -> tuple[np.ndarray, sp.csr_matrix]:
    """B^T B off the diagonal, collection counts on it, with the same filters and caps.

    Independent of the Dask code: pandas group-bys, one loop per collection, scipy products.
    The cap's choice comes from the same pure function (`cap_collection`), keyed by the
    collection id's hash, which is what makes it reproducible across partitionings.
    """
    merged = df.groupby(["user", "item"]).agg(rating=("rating", "sum"), ts=("ts", "max")).reset_index()
    counts = merged.groupby("item").size()
    kept = counts[counts >= min_count]
    if max_items is not None:
        kept = kept.reset_index(name="n").sort_values(["n", "item"], ascending=[False, True]).head(max_items)
        kept = kept.set_index("item")["n"]
    ids = np.sort(kept.index.to_numpy())
    position = {item: i for i, item in enumerate(ids)}
    rows, cols, weights, times, pair_blocks = [], [], [], [], []
    n_collections = 0
    for user, group in merged[merged["item"].isin(position)].groupby("user"):
        group = group.assign(idx=group["item"].map(position)).sort_values("idx")
        if len(group) < 2:
            continue
        idx, w, t = group["idx"].to_numpy(), group["rating"].to_numpy(), group["ts"].to_numpy()
        keep = cap_collection(idx, t if tau else None, collection_key(user), max_size, seed)
        idx, w, t = idx[keep], w[keep], t[keep]
        rows += [n_collections] * len(idx)
        cols += list(idx)
        weights += list(w)
        times.append((idx, w, t))
        n_collections += 1
    n = len(ids)
    binary = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_collections, n))
    if tau or combine != "product":
        pair = {"product": np.multiply, "min": np.minimum, "mean": lambda a, b: (a + b) / 2}[combine]
        total = sp.csr_matrix((n, n))
        for idx, w, t in times:
            block = pair(w[:, None], w[None, :])
            if tau:
                block = block * np.exp(-np.abs(t[:, None] - t[None, :]) / tau)
            total = total + sp.coo_matrix((block.ravel(), (np.repeat(idx, len(idx)), np.tile(idx, len(idx)))),
                                          shape=(n, n)).tocsr()
    else:
        b = sp.csr_matrix((np.asarray(weights) if weighted else np.ones(len(rows)), (rows, cols)),
                          shape=(n_collections, n))
        total = (b.T @ b).tocsr()
    total = total - sp.diags(total.diagonal()) + sp.diags((binary.T @ binary).diagonal())
    total = sp.csr_matrix(total, dtype=np.float64)
    total.eliminate_zeros()
    total.sort_indices()
    return ids, total.astype(np.float32)


@pytest.fixture(scope="module")
def client():
    with dask_client("local", n_workers=2) as client:
        yield client


def build(client, df, tmp_path, *, partitions: int, min_count: int, max_items: int | None, spec: PairSpec,
          columns: InteractionColumns, block_rows: int = 40):
    import dask.dataframe as dd

    frame = read_interactions(dd.from_pandas(df, npartitions=partitions, sort=False), columns)
    assert frame.npartitions == partitions
    counts, _ = item_counts(frame)
    vocabulary = build_vocabulary(counts, min_count, max_items)
    group = zarr.open_group(str(tmp_path / f"p{partitions}.zarr"), mode="w", zarr_format=3).create_group("cooc")
    stats = build_cooccurrence(client, frame, vocabulary.ids, spec, group, Location(str(tmp_path)).scratch("parts"),
                               block_rows=block_rows)
    return vocabulary, read_csr(group), group, stats


def assert_same(stored: sp.csr_matrix, reference: sp.csr_matrix, group=None) -> None:
    assert stored.shape == reference.shape
    if group is not None:  # the on-disk dtypes of anndata's encoding (scipy may narrow indptr when reading)
        assert (group["data"].dtype, group["indices"].dtype, group["indptr"].dtype) == (
            np.float32, np.int32, np.int64)
    assert stored.has_sorted_indices
    np.testing.assert_array_equal(stored.indptr, reference.indptr)
    np.testing.assert_array_equal(stored.indices, reference.indices)
    np.testing.assert_array_equal(stored.data, reference.data)


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_unit_weights_equal_scipy_exactly(client, tmp_path, partitions):
    df = random_interactions()
    ids, reference = reference_matrix(df, min_count=2, max_items=None, max_size=12)
    vocabulary, stored, group, stats = build(client, df, tmp_path, partitions=partitions, min_count=2,
                                             max_items=None, spec=PairSpec(max_collection_size=12),
                                             columns=InteractionColumns("user", "item"))
    np.testing.assert_array_equal(vocabulary.ids.to_numpy(), ids)
    assert stats["capped"] > 0  # the cap was exercised
    assert_same(stored, reference, group)
    np.testing.assert_array_equal(group["diagonal"][:], reference.diagonal())
    assert reference.nnz > 3 * reference.shape[0]


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_product_weights_and_max_items_equal_scipy_exactly(client, tmp_path, partitions):
    df = random_interactions(seed=1)
    ids, reference = reference_matrix(df, min_count=3, max_items=80, max_size=15, weighted=True)
    vocabulary, stored, _, _ = build(client, df, tmp_path, partitions=partitions, min_count=3, max_items=80,
                                     spec=PairSpec(weight_combine="product", max_collection_size=15),
                                     columns=InteractionColumns("user", "item", weight_col="rating"))
    assert len(ids) == 80
    np.testing.assert_array_equal(vocabulary.ids.to_numpy(), ids)
    assert_same(stored, reference)


@pytest.mark.parametrize("partitions", [1, 7])
def test_time_decay_keeps_the_most_recent_items_and_matches_scipy(client, tmp_path, partitions):
    df = random_interactions(seed=2)
    ids, reference = reference_matrix(df, min_count=2, max_items=None, max_size=10, weighted=True, tau=2000.0)
    _, stored, _, stats = build(client, df, tmp_path, partitions=partitions, min_count=2, max_items=None,
                                spec=PairSpec(weight_combine="product", tau=2000.0, max_collection_size=10,
                                              use_time=True),
                                columns=InteractionColumns("user", "item", weight_col="rating", time_col="ts"))
    assert stats["capped"] > 0
    np.testing.assert_array_equal(stored.indptr, reference.indptr)
    np.testing.assert_array_equal(stored.indices, reference.indices)
    # exp() weights are not dyadic: partial sums in another order may differ in the last float32 bit
    np.testing.assert_allclose(stored.data, reference.data, rtol=1e-6)


@pytest.mark.parametrize(("combine", "partitions"), [("min", 3), ("mean", 7)])
def test_min_and_mean_weight_combinations_equal_the_reference(client, tmp_path, combine, partitions):
    df = random_interactions(seed=6)
    ids, reference = reference_matrix(df, min_count=2, max_items=None, max_size=12, weighted=True, combine=combine)
    _, stored, _, _ = build(client, df, tmp_path, partitions=partitions, min_count=2, max_items=None,
                            spec=PairSpec(weight_combine=combine, max_collection_size=12),
                            columns=InteractionColumns("user", "item", weight_col="rating"))
    assert_same(stored, reference)


def test_cap_sampling_is_a_pure_function_of_the_collection_id_and_seed():
    items = np.arange(100, 160)
    first = cap_collection(items, None, collection_key("user-7"), 20, seed=0)
    assert len(first) == 20 and np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(first, cap_collection(items, None, collection_key("user-7"), 20, seed=0))
    assert not np.array_equal(first, cap_collection(items, None, collection_key("user-8"), 20, seed=0))
    assert not np.array_equal(first, cap_collection(items, None, collection_key("user-7"), 20, seed=1))
    times = np.arange(60, dtype=np.float64)[::-1]  # the first entries are the most recent
    np.testing.assert_array_equal(cap_collection(items, times, 0, 5, seed=0), np.arange(5))


def test_the_synthetic_log_has_power_law_popularity_and_planted_categories():
    from tsne_dist.datasets import synthetic_interactions

    items, parts = synthetic_interactions(2000, 5000, 40_000, n_categories=10, n_subcategories=4, seed=3,
                                          partitions=3)
    log = pd.concat(list(parts), ignore_index=True)
    assert 36_000 < len(log) < 44_000 and log["user"].nunique() == 2000
    counts = log["item"].value_counts()
    assert counts.iloc[0] > 20 * counts.median()  # a heavy head: power-law popularity
    joined = log.merge(items, on="item")
    pairs = joined.merge(joined, on="user")
    pairs = pairs[pairs["item_x"] != pairs["item_y"]]
    same_sub = (pairs["subcategory_x"] == pairs["subcategory_y"]).mean()
    same_cat = (pairs["category_x"] == pairs["category_y"]).mean()
    assert same_sub > 0.4 and same_cat > same_sub + 0.05  # chance would be 1/40 and 1/10
    again = pd.concat(list(synthetic_interactions(2000, 5000, 40_000, n_categories=10, n_subcategories=4, seed=3,
                                                  partitions=3)[1]), ignore_index=True)
    pd.testing.assert_frame_equal(log, again)
