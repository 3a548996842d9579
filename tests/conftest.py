"""Shared fixtures: small real-shaped catalogs written to disk, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pytest
import zarr

from tsne_dist.cli import main
from tsne_dist.datasets import synthetic_catalog

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


# Files whose tests run pynndescent: they start after the long files below, and wait for the
# warm-up (started when the session starts) to have compiled pynndescent into the numba cache.
PYNNDESCENT_FILES = ("test_sharded.py", "test_pipeline.py", "test_knn.py")
# Files handed out first, longest first, so that no process is left with a long file at the end.
LONG_FILES = ("test_quality.py", "test_engine.py", "test_cooccurrence_pipeline.py",
              "test_cooccurrence_movielens.py", "test_affinity.py", *PYNNDESCENT_FILES)
WARM_UP_DONE = "TSNE_DIST_TEST_WARM_UP_DONE"


def pytest_configure(config):
    """With several test processes, compile pynndescent once, in the background, while the first
    files run: every later process (test processes, Dask workers, CLI runs) loads it from the
    numba cache (``tsne-dist warm-up``) instead of compiling it again."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    done = os.path.join(tempfile.mkdtemp(prefix="tsne-dist-warm-up-"), "done")
    os.environ[WARM_UP_DONE] = done
    command = (f"import subprocess, sys; subprocess.run([sys.executable, '-m', 'tsne_dist', 'warm-up', "
               f"'--part', 'pynndescent', '-q']); open({done!r}, 'w').close()")
    config.warm_up = subprocess.Popen([sys.executable, "-c", command], stdout=subprocess.DEVNULL)


def pytest_unconfigure(config):
    warm_up = getattr(config, "warm_up", None)
    if warm_up is not None:
        warm_up.wait(timeout=600)
        marker = os.environ.get(WARM_UP_DONE)
        if marker:
            shutil.rmtree(os.path.dirname(marker), ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _pynndescent_compiled(request):
    """Tests of PYNNDESCENT_FILES wait (at most 10 minutes) for the session's warm-up."""
    marker = os.environ.get(WARM_UP_DONE)
    if marker and request.path.name in PYNNDESCENT_FILES:
        for _ in range(6000):
            if os.path.exists(marker):
                break
            time.sleep(0.1)
    yield


def pytest_collection_modifyitems(config, items):
    """One xdist group per file (``--dist loadgroup`` keeps a file's module fixtures in one
    process); the LONG_FILES come first, in that order."""
    rank = {name: position for position, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: file order otherwise
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.path.name))


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


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """Address of a real ``dask scheduler`` with two single-threaded ``dask worker``
    processes, all on 127.0.0.1; stopped after the module's tests."""
    scheduler_file = tmp_path_factory.mktemp("dask") / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)], **quiet)]
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--host",
                 "127.0.0.1", "--no-dashboard"], **quiet))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
