"""Runs where the data lives: inputs and outputs on a real S3-compatible server (moto's server
mode, on 127.0.0.1) and a real `dask scheduler` with two `dask worker` processes that share no
local folder. The results match the same runs on local disk, also when a worker or the client
is killed mid-stage; bad locations are one-line errors that leave nothing marked done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml

from tsne_dist.datasets import synthetic_catalog, synthetic_interactions
from tsne_dist.store import RunStore

from conftest import BUCKET, dask_processes, run_cli

pytest.importorskip("s3fs")
pytest.importorskip("moto")

FAST_MAP = ["--n-iter", "150", "--early-exaggeration-iter", "50", "--perplexity", "10"]
SHARDED = ["--knn", "pynndescent", "--knn-shards", "2"]
# a closed loopback port, tried once (botocore would retry a refused connection for seconds)
UNREACHABLE = '{"endpoint_url": "http://127.0.0.1:9", "config_kwargs": {"retries": {"max_attempts": 1}}}'
LOG_FLAGS = ["--collection-col", "user", "--item-col", "item", "--min-count", "3", "--max-collection-size", "40"]


@pytest.fixture(scope="module")
def s3(s3_env):
    import fsspec

    return fsspec.filesystem("s3")


@pytest.fixture(scope="module")
def cluster(s3_env, tmp_path_factory):
    """Scheduler + two workers (their own local folders, the S3 variables, no shared path)."""
    with dask_processes(tmp_path_factory.mktemp("cluster"), env=s3_env) as address:
        yield address


@pytest.fixture(scope="module")
def inputs(s3, tmp_path_factory):
    """The same vectors and interaction log on local disk and on S3."""
    local = tmp_path_factory.mktemp("inputs")
    vectors = synthetic_catalog(3000, 16, n_categories=6, n_subcategories=3, seed=3)[0]
    np.save(local / "X.npy", vectors)
    log = local / "log"
    log.mkdir()
    _, parts = synthetic_interactions(3000, 800, 60_000, n_categories=6, seed=5, partitions=4)
    for number, part in enumerate(parts):
        part[["user", "item"]].to_parquet(log / f"part-{number}.parquet", index=False)
    s3.put(str(local / "X.npy"), f"{BUCKET}/in/X.npy")
    s3.put(str(log) + "/", f"{BUCKET}/in/log/", recursive=True)
    return {"local_vectors": str(local / "X.npy"), "s3_vectors": f"s3://{BUCKET}/in/X.npy",
            "local_log": str(log) + "/", "s3_log": f"s3://{BUCKET}/in/log/"}


def _layout(location: str, s3) -> pd.DataFrame:
    if location.startswith("s3://"):
        with s3.open(location + "/layout.parquet") as handle:
            return pd.read_parquet(handle)
    return pd.read_parquet(os.path.join(location, "layout.parquet"))


def _cooccurrence(location: str) -> dict[str, np.ndarray]:
    store = RunStore.open(location)
    return {name: store.read("cooccurrence", name) for name in ("indptr", "indices", "data", "diagonal")}


@pytest.fixture(scope="module")
def local_runs(inputs, cluster, tmp_path_factory):
    """The undisturbed runs on local disk, on the same cluster: the references."""
    from tsne_dist.cli import main

    folder = tmp_path_factory.mktemp("local-runs")
    vectors_out, log_out = str(folder / "vectors"), str(folder / "log")
    assert main(["run", "-q", "--vectors", inputs["local_vectors"], "--cluster", cluster, *SHARDED, *FAST_MAP,
                 "--out", vectors_out]) == 0
    assert main(["run", "-q", "--interactions", inputs["local_log"], *LOG_FLAGS, "--cluster", cluster, *FAST_MAP,
                 "--out", log_out]) == 0
    return {"vectors": vectors_out, "log": log_out}


def _our_keys(s3, prefix: str) -> list[str]:
    return [key for key in s3.find(f"{BUCKET}/{prefix}") if not key.endswith("/")]


def test_vectors_and_log_on_s3_give_the_maps_and_matrix_of_local_disk(s3, inputs, cluster, local_runs, capsys,
                                                                       tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written here (once a folder named "s3:" was)
    vectors_out = f"s3://{BUCKET}/runs/vectors"
    code, _, err = run_cli(capsys, "run", "--vectors", inputs["s3_vectors"], "--cluster", cluster, *SHARDED,
                           *FAST_MAP, "--out", vectors_out)
    assert code == 0, err
    pd.testing.assert_frame_equal(_layout(vectors_out, s3), _layout(local_runs["vectors"], s3), check_exact=True)
    knn = RunStore.open(vectors_out)
    assert knn.marker("knn")["params"]["shards"] == 2
    assert set(knn.group("knn").array_keys()) == {"indices", "distances"}  # the shard-ordered rows are gone

    log_out = f"s3://{BUCKET}/runs/log"
    code, _, err = run_cli(capsys, "run", "--interactions", inputs["s3_log"], *LOG_FLAGS, "--cluster", cluster,
                           *FAST_MAP, "--out", log_out)
    assert code == 0, err
    for name, expected in _cooccurrence(local_runs["log"]).items():
        np.testing.assert_array_equal(_cooccurrence(log_out)[name], expected, err_msg=name)
    pd.testing.assert_frame_equal(_layout(log_out, s3), _layout(local_runs["log"], s3), check_exact=True)

    keys = _our_keys(s3, "runs/log")
    assert not [key for key in keys if "/.cooccurrence" in key or ".write-check" in key]  # scratch removed
    for name in ("layout.parquet", "map.png", "metrics.json", "viewer/index.html", "viewer/data/manifest.json"):
        assert f"{BUCKET}/runs/log/{name}" in keys
    assert os.listdir(tmp_path) == []

    code, text, _ = run_cli(capsys, "info", log_out)
    assert code == 0 and "cooccurrence" in text and "knn_recall@10" in text
    s3.rm(f"{BUCKET}/runs/log/viewer", recursive=True)
    endpoint = json.dumps({"endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
    code, text, err = run_cli(capsys, "export", log_out, "--storage-options", endpoint)
    assert code == 0 and f"{log_out}/viewer" in text, err
    assert s3.exists(f"{BUCKET}/runs/log/viewer/data/manifest.json")
    from tsne_dist.viz.server import make_server, serve_until_interrupted, server_url

    server = make_server(log_out)  # downloads viewer/ to a temporary folder and serves it
    thread = threading.Thread(target=serve_until_interrupted, args=(server,), daemon=True)
    thread.start()
    try:
        manifest = json.loads(urllib.request.urlopen(server_url(server) + "data/manifest.json", timeout=10).read())
        assert manifest["n_items"] == len(_layout(log_out, s3))
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert not os.path.exists(server.downloaded)


def _kill_a_worker_when(cluster: str, prefixes: tuple[str, ...], stop: threading.Event, killed: list) -> None:
    """Kill (SIGKILL) the worker process that runs a task whose key starts with one of ``prefixes``."""
    from distributed import Client

    with Client(cluster, timeout=30) as client:
        while not stop.is_set() and not killed:
            for worker, keys in client.processing().items():
                running = [key for key in map(str, keys) if key.startswith(prefixes)]
                if running:
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((running[0], worker, pid))
                    return
            time.sleep(0.01)


MID_COOCCURRENCE = ("partition_pairs", "write_blocks", "write_chunk")
MID_SHARDED_KNN = ("build_shard_index", "query_shard", "_with_own_shard", "merge_answers")


@pytest.mark.parametrize("stage, tasks", [("log", MID_COOCCURRENCE), ("vectors", MID_SHARDED_KNN)])
def test_a_worker_killed_mid_stage_changes_nothing(s3, inputs, cluster, local_runs, capsys, stage, tasks):
    """A worker dies (SIGKILL) while it runs a co-occurrence task or a sharded kNN task: Dask
    reruns what it held and the run's output is that of the undisturbed run."""
    out = f"s3://{BUCKET}/runs/{stage}-worker-killed"
    source = (["--interactions", inputs["s3_log"], *LOG_FLAGS] if stage == "log" else
              ["--vectors", inputs["s3_vectors"], *SHARDED])
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_a_worker_when, args=(cluster, tasks, stop, killed))
    watcher.start()
    try:
        code, _, err = run_cli(capsys, "run", *source, "--cluster", cluster, *FAST_MAP, "--out", out)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert killed, f"no task of {tasks} was seen running"
    assert code == 0, err
    pd.testing.assert_frame_equal(_layout(out, s3), _layout(local_runs[stage], s3), check_exact=True)
    if stage == "log":
        for name, expected in _cooccurrence(local_runs["log"]).items():
            np.testing.assert_array_equal(_cooccurrence(out)[name], expected, err_msg=name)
    from distributed import Client

    with Client(cluster, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_the_client_killed_mid_stage_resumes_on_s3(s3, s3_env, inputs, cluster, local_runs):
    out = f"s3://{BUCKET}/runs/client-killed"
    args = [sys.executable, "-m", "tsne_dist", "run", "--interactions", inputs["s3_log"], *LOG_FLAGS,
            "--cluster", cluster, *FAST_MAP, "--out", out]
    parts = f"{BUCKET}/runs/client-killed/.cooccurrence-parts"
    process = subprocess.Popen(args, stderr=subprocess.DEVNULL, env=s3_env)
    for _ in range(6000):  # kill it as soon as the co-occurrence stage has written scratch parts
        s3.invalidate_cache()
        if s3.exists(parts) and s3.find(parts) or process.poll() is not None:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL
    store = RunStore.open(out)
    assert store.marker("items") is not None and store.marker("cooccurrence") is None
    assert s3.find(parts)  # the killed run's scratch is there; the rerun must ignore it
    assert not s3.exists(f"{BUCKET}/runs/client-killed/layout.parquet")

    finished = subprocess.run(args, capture_output=True, text=True, env=s3_env)
    assert finished.returncode == 0, finished.stderr
    assert "stage items: already done" in finished.stderr
    pd.testing.assert_frame_equal(_layout(out, s3), _layout(local_runs["log"], s3), check_exact=True)
    assert not [key for key in _our_keys(s3, "runs/client-killed") if "/.cooccurrence" in key]


def test_a_location_we_cannot_honour_is_a_one_line_error(s3, s3_env, inputs, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    vectors = ["run", "--vectors", inputs["local_vectors"], *FAST_MAP]
    cases = [
        (["--out", "nosuchscheme://bucket/maps/a"], "Protocol not known"),
        (["--out", f"s3://no-such-bucket/maps/a"], "create the bucket"),
        (["--out", f"s3://{BUCKET}/bad/endpoint", "--storage-options", UNREACHABLE], "check the endpoint"),
        (["--out", f"s3://{BUCKET}/bad/options", "--storage-options", "endpoint_url=x"], "is not valid JSON"),
        (["--out", f"s3://{BUCKET}/bad/options", "--storage-options", '["endpoint_url"]'], "must be a mapping"),
        (["--out", "s3://"], "names no bucket"),
    ]
    for flags, needle in cases:
        code, _, err = run_cli(capsys, *vectors, *flags)
        assert code == 2, (flags, err)
        assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert os.listdir(tmp_path) == []  # never a local folder named after the URL
    assert not _our_keys(s3, "bad")
    code, _, err = run_cli(capsys, "info", f"s3://{BUCKET}/runs/vectors", "--storage-options", UNREACHABLE)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "check the endpoint" in err, err

    no_credentials = {key: value for key, value in s3_env.items()
                      if key not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    no_credentials.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    failed = subprocess.run([sys.executable, "-m", "tsne_dist", *vectors, "--out", f"s3://{BUCKET}/bad/creds"],
                            capture_output=True, text=True, env=no_credentials)
    assert failed.returncode == 2 and "AWS_ACCESS_KEY_ID" in failed.stderr, failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    failed = subprocess.run([sys.executable, "-m", "tsne_dist", "run", "--vectors", inputs["s3_vectors"],
                             "--out", str(tmp_path / "local-out")], capture_output=True, text=True, env=no_credentials)
    assert failed.returncode == 2 and "cannot read vectors file" in failed.stderr, failed.stderr  # an input, too
    assert len(failed.stderr.strip().splitlines()) == 1 and not (tmp_path / "local-out").exists()

    config = tmp_path / "run.yaml"  # the same credentials in the config file's storage_options work
    config.write_text(f"storage_options:\n  key: testing\n  secret: testing\n"
                      f"  endpoint_url: {s3_env['AWS_ENDPOINT_URL']}\n")
    finished = subprocess.run([sys.executable, "-m", "tsne_dist", "run", str(config), *vectors[1:],
                               "--out", f"s3://{BUCKET}/runs/config-credentials"],
                              capture_output=True, text=True, env=no_credentials)
    assert finished.returncode == 0, finished.stderr
    stored = RunStore.open(f"s3://{BUCKET}/runs/config-credentials").run_attrs()["config"]["storage_options"]
    assert stored["key"] == stored["secret"] == "***"  # credentials never reach the store


JOB_BUCKET = "tsne-dist"  # the bucket deploy/base/run.yaml names


@pytest.fixture(scope="module")
def job_inputs(s3_env):
    """What deploy/base/run.yaml reads, at the keys it names: a basket log and product metadata."""
    from s3fs import S3FileSystem

    fs = S3FileSystem()
    fs.mkdir(JOB_BUCKET)
    items, parts = synthetic_interactions(1500, 400, 20_000, n_categories=5, seed=7, partitions=2)
    for number, part in enumerate(parts):
        with fs.open(f"{JOB_BUCKET}/logs/baskets/part-{number}.parquet", "wb") as handle:
            part.rename(columns={"user": "basket", "item": "product"})[["basket", "product"]].to_parquet(handle)
    with fs.open(f"{JOB_BUCKET}/catalog/products.parquet", "wb") as handle:
        items.rename(columns={"item": "product"})[["product", "category"]].to_parquet(handle)
    return fs


def test_the_cronjob_command_passes_a_dry_run_and_its_config_runs_on_a_local_cluster(
        cluster, job_inputs, tmp_path, capsys):
    """deploy/'s CronJob command and ConfigMap config (issue: scheduled runs on Kubernetes), run here
    against this module's scheduler and S3 server instead of a DaskCluster."""
    from test_deploy import job_config, render

    config, command = job_config(render("cpu"))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [str(path) if word == "/config/run.yaml" else word for word in command[1:]]

    code, out, err = run_cli(capsys, *argv, "--dry-run")  # checks everything, makes no cluster
    assert code == 0, err
    assert "interactions -> s3://tsne-dist/maps/products" in out and "cluster: kubernetes" in out
    assert not job_inputs.exists(f"{JOB_BUCKET}/maps")

    code, _, err = run_cli(capsys, *argv[:-2], "--cluster", cluster, *FAST_MAP[:4])
    assert code == 0, err
    with job_inputs.open(f"{JOB_BUCKET}/maps/products/layout.parquet") as handle:
        layout = pd.read_parquet(handle)
    assert {"id", "x", "y", "category"} <= set(layout.columns) and np.isfinite(layout[["x", "y"]]).all().all()
    assert job_inputs.exists(f"{JOB_BUCKET}/maps/products/viewer/data/manifest.json")
