"""Sharded kNN on Dask: the same recall for 1, 4 and 8 shards on a real scheduler with two
worker processes started here on 127.0.0.1, and through the CLI on that scheduler."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from tsne_dist.cluster import dask_client
from tsne_dist.datasets import synthetic_catalog
from tsne_dist.errors import ConfigError
from tsne_dist.neighbors import graph_recall
from tsne_dist.neighbors.locality import spatial_order
from tsne_dist.neighbors.sharded import build_shard_index, query_shard, sharded_knn
from tsne_dist.store import RunStore

from conftest import FAST, read_metrics, run_cli


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return synthetic_catalog(4000, 16, n_categories=8, n_subcategories=3, seed=2)[0]


def _check(indices: np.ndarray, distances: np.ndarray, vectors: np.ndarray) -> float:
    assert indices.shape == (len(vectors), 15) and indices.dtype == np.int32
    assert not (indices == np.arange(len(vectors))[:, None]).any()
    assert (np.diff(distances, axis=1) >= 0).all()
    return graph_recall(vectors, indices, sample=4000)


@pytest.mark.slow
def test_recall_is_the_same_for_1_4_and_8_shards_on_a_real_two_worker_cluster(dask_scheduler, vectors):
    with dask_client(dask_scheduler) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        results = {shards: sharded_knn(client, vectors, 15, n_shards=shards, query_block=1000)
                   for shards in (1, 4, 8)}
        again = sharded_knn(client, vectors, 15, n_shards=4, query_block=1000)
    recalls = {shards: _check(*result, vectors) for shards, result in results.items()}
    print(f"recall@15 by shards: {recalls}")
    assert min(recalls.values()) >= 0.99
    assert max(recalls.values()) - min(recalls.values()) <= 0.005
    np.testing.assert_array_equal(again[0], results[4][0])  # seeded shards: a rerun is identical


def test_the_cli_runs_sharded_knn_on_a_real_scheduler_and_stores_the_vector_format(dask_scheduler, tmp_path,
                                                                                    catalog_files, capsys):
    out = str(tmp_path / "map")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--knn", "pynndescent",
                           "--cluster", dask_scheduler, "--out", out, *FAST)
    assert code == 0, err
    knn = zarr.open_group(os.path.join(out, "run.zarr"), mode="r")["knn"]
    assert knn["indices"].dtype == np.int32 and knn["distances"].dtype == np.float32
    assert knn["indices"].shape == (600, 30)
    assert RunStore.open(out).marker("knn")["params"]["shards"] == 0  # automatic: one shard per worker
    metrics = read_metrics(out)
    assert metrics["knn_backend"] == "pynndescent"
    assert metrics["knn_graph_recall"] >= 0.99


def test_explicit_knn_shards_match_a_single_index(dask_scheduler, tmp_path, catalog_files, capsys):
    recalls = {}
    for shards, cluster in (("0", "local"), ("3", dask_scheduler)):  # 0 with the local cluster: one index here
        out = str(tmp_path / f"map{shards}")
        code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--knn", "pynndescent",
                               "--knn-shards", shards, "--cluster", cluster, "--out", out, *FAST)
        assert code == 0, err
        recalls[shards] = read_metrics(out)["knn_graph_recall"]
    assert min(recalls.values()) >= 0.99
    assert abs(recalls["0"] - recalls["3"]) <= 0.005


def test_query_blocks_hold_neighbouring_rows_and_answers_land_on_their_rows(vectors):
    order = spatial_order(vectors, seed=0)
    assert sorted(order.tolist()) == list(range(len(vectors)))
    labels = synthetic_catalog(4000, 16, n_categories=8, n_subcategories=3, seed=2)[1]["category"].to_numpy()
    runs = np.count_nonzero(labels[order][1:] != labels[order][:-1]) + 1
    assert runs < 400  # the order walks category by category: 221 runs (a random order: about 3,500)

    half = len(vectors) // 2
    shard_order = np.concatenate([order[order < half], order[order >= half]])  # rows as the workers read them
    stored = zarr.open_group(zarr.storage.MemoryStore()).create_array("rows", data=vectors[shard_order])
    index = build_shard_index(stored, 0, half, shard_order[:half], 15, seed=0)
    own, own_distances = query_shard(index, stored, 0, 500, 15)
    np.testing.assert_array_equal(own[:, 0], shard_order[:500])  # each row finds itself first
    assert (own_distances[:, 0] == 0).all()
    rows = shard_order[half:half + 500]
    others, _ = query_shard(index, stored, half, half + 500, 15)
    items, queries = vectors[:half].astype(np.float64), vectors[rows].astype(np.float64)
    squared = (queries ** 2).sum(1)[:, None] - 2 * queries @ items.T + (items ** 2).sum(1)[None, :]
    exact = np.argsort(squared, axis=1, kind="stable")[:, :16]
    hits = np.mean([len(np.intersect1d(found, true)) / 16 for found, true in zip(others, exact)])
    assert hits >= 0.99 and others.shape == (500, 16) and others.max() < half


def test_a_scheduler_without_workers_is_a_user_error(vectors):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        with Client(cluster) as client, pytest.raises(ConfigError, match="has no workers"):
            sharded_knn(client, vectors, 15, n_shards=2)


def test_an_unreachable_scheduler_is_a_user_error():
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        with dask_client("tcp://127.0.0.1:9", connect_timeout=2):
            pass
    with pytest.raises(ConfigError, match="local' or tcp://"):
        with dask_client("http://example"):
            pass
