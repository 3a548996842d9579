"""Sharded kNN on Dask: the same recall for 1, 4 and 8 shards, on a local cluster and on a
real scheduler with two worker processes started here on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from tsne_dist.cluster import dask_client
from tsne_dist.datasets import synthetic_catalog
from tsne_dist.errors import ConfigError
from tsne_dist.neighbors import graph_recall
from tsne_dist.neighbors.sharded import sharded_knn


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return synthetic_catalog(4000, 16, n_categories=8, n_subcategories=3, seed=2)[0]


def _check(indices: np.ndarray, distances: np.ndarray, vectors: np.ndarray) -> float:
    assert indices.shape == (len(vectors), 15) and indices.dtype == np.int32
    assert not (indices == np.arange(len(vectors))[:, None]).any()
    assert (np.diff(distances, axis=1) >= 0).all()
    return graph_recall(vectors, indices, sample=4000)


@pytest.mark.slow
def test_recall_is_the_same_for_1_4_and_8_shards_on_a_local_cluster(vectors):
    with dask_client("local", n_workers=2) as client:
        results = {shards: sharded_knn(client, vectors, 15, n_shards=shards, query_block=1000)
                   for shards in (1, 4, 8)}
        again = sharded_knn(client, vectors, 15, n_shards=4, query_block=1000)
    recalls = {shards: _check(*result, vectors) for shards, result in results.items()}
    print(f"recall@15 by shards: {recalls}")
    assert min(recalls.values()) >= 0.99
    assert max(recalls.values()) - min(recalls.values()) <= 0.005
    np.testing.assert_array_equal(again[0], results[4][0])  # seeded shards: a rerun is identical


@pytest.mark.slow
def test_a_real_scheduler_and_two_workers_give_the_same_recall(tmp_path, vectors):
    scheduler_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(200):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--host",
                 "127.0.0.1", "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with dask_client(address) as client:
            client.wait_for_workers(2, timeout=60)
            cluster_recall = _check(*sharded_knn(client, vectors, 15, n_shards=4, query_block=1000), vectors)
            one_shard_recall = _check(*sharded_knn(client, vectors, 15, n_shards=1, query_block=1000), vectors)
        print(f"recall@15 on the two-worker cluster: 4 shards {cluster_recall:.4f}, 1 shard {one_shard_recall:.4f}")
        assert cluster_recall >= 0.99
        assert abs(cluster_recall - one_shard_recall) <= 0.005
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_an_unreachable_scheduler_is_a_user_error():
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        with dask_client("tcp://127.0.0.1:9"):
            pass
    with pytest.raises(ConfigError, match="local' or tcp://"):
        with dask_client("http://example"):
            pass
