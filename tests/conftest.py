"""Shared fixtures: small real-shaped catalogs written to disk, and a CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import zarr

from tsne_dist.cli import main
from tsne_dist.datasets import synthetic_catalog

# benchmarks/loopback_s3.py (the moto S3 server) serves the tests too
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

# Short optimisation for tests that check plumbing rather than map quality.
FAST = ["--n-iter", "120", "--early-exaggeration-iter", "40", "--perplexity", "10"]


@pytest.fixture(scope="session")
def catalog() -> tuple[np.ndarray, pd.DataFrame]:
    """600 items x 16 dims with 4 categories x 3 subcategories."""
    return synthetic_catalog(600, 16, n_categories=4, n_subcategories=3, seed=1)


@pytest.fixture()
def catalog_files(tmp_path, catalog) -> dict[str, str]:
    """The catalog as vectors.npy, ids.npy and metadata.parquet."""
    vectors, metadata = catalog
    paths = {
        "vectors": str(tmp_path / "vectors.npy"),
        "ids": str(tmp_path / "ids.npy"),
        "metadata": str(tmp_path / "metadata.parquet"),
    }
    np.save(paths["vectors"], vectors)
    np.save(paths["ids"], metadata["id"].to_numpy().astype(str))
    metadata.to_parquet(paths["metadata"], index=False)
    return paths


# Test files that run pynndescent share one test process, in this order: the first compiles it
# (the numba cache then serves the rest, including the Dask workers that test_sharded starts).
PYNNDESCENT_FILES = ("test_knn.py", "test_sharded.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks into the node ids
def pytest_collection_modifyitems(config, items):
    """Group tests for pytest-xdist's ``--dist loadgroup``: one group per file (its module
    fixtures start once), except that the files using pynndescent form one group."""
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("pynndescent" if name in PYNNDESCENT_FILES else name))


def pytest_configure(config):
    """Refuse ``--dist loadgroup`` where it silently drops the groups: pytest 9.2 with
    pytest-xdist up to 3.8, the newest release known to drop them (pytest-dev/pytest-xdist#1386).
    Without the groups the pynndescent files run in both processes at once, each compiling
    pynndescent (about a minute more)."""
    if config.getoption("dist", "no") != "loadgroup" or hasattr(config, "workerinput"):
        return
    import xdist

    def release(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", text)[:2])

    if release(pytest.__version__) >= (9, 2) and release(xdist.__version__) <= (3, 8):
        raise pytest.UsageError(f"pytest {pytest.__version__} with pytest-xdist {xdist.__version__} ignores the test "
                                "groups; install the test needs with pip install -e \".[test]\" (pytest<9.2)")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``tsne-dist`` in-process; return (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def done_stages(out: str) -> list[str]:
    """Stages of the run store in ``out`` that carry a completion marker."""
    path = os.path.join(out, "run.zarr")
    if not os.path.isdir(path):
        return []
    root = zarr.open_group(path, mode="r")
    return sorted(name for name in root.group_keys() if root[name].attrs.asdict().get("stage"))


def read_metrics(out: str) -> dict:
    with open(os.path.join(out, "metrics.json")) as handle:
        return json.load(handle)


@contextlib.contextmanager
def dask_processes(folder, n_workers: int = 2, env: dict | None = None):
    """A real ``dask scheduler`` and ``n_workers`` single-threaded ``dask worker`` processes (each
    under a nanny, which restarts it if it dies), all on 127.0.0.1; each worker has its own
    ``--local-directory`` under ``folder``, so workers share no local path. Yields the address."""
    scheduler_file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)], **quiet)]
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for number in range(n_workers):
            local = folder / f"worker-{number}"
            local.mkdir()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--host",
                 "127.0.0.1", "--no-dashboard", "--local-directory", str(local)], **quiet))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """Address of a real ``dask scheduler`` with two single-threaded ``dask worker``
    processes, all on 127.0.0.1; stopped after the module's tests."""
    with dask_processes(tmp_path_factory.mktemp("dask")) as address:
        yield address


BUCKET = "maps"


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on a free loopback port (benchmarks/loopback_s3.py) with an empty bucket,
    the AWS variables that point at it set in this process for the module; yields the environment
    to pass to every process started here."""
    from loopback_s3 import loopback_s3

    with loopback_s3(BUCKET):
        yield dict(os.environ)
