"""A Dask client: a local cluster sized to the machine, or an existing scheduler; and the cluster a
whole run uses (made on Kubernetes or the local GPUs for the run, see :mod:`.kubernetes`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConfigError

logger = logging.getLogger("tsne_dist")


@contextmanager
def dask_client(spec: str = "local", n_workers: int | None = None, *, in_process: bool = False,
                connect_timeout: float = 20.0) -> Iterator[object]:
    """A ``distributed.Client`` for ``spec``; a local cluster is closed on exit.

    Parameters
    ----------
    spec : str
        ``local`` (a LocalCluster on 127.0.0.1, one single-threaded worker process
        per core unless ``n_workers``) or ``tcp://HOST:PORT`` of a running scheduler.
    n_workers : int, optional
        Workers of a local cluster (threads of its one worker with ``in_process``).
    in_process : bool
        With ``local``: one worker inside this process (in-memory ``inproc://``
        transport, no ports) with a thread per core instead of worker processes.
        Starting worker processes costs about 12 s on 2 cores (each imports the
        libraries and loads compiled code), more than a
        small log takes to process; the interactions path asks for this when the
        log is a single partition.
    connect_timeout : float
        Seconds to keep trying to reach a scheduler at ``tcp://``.

    Raises
    ------
    ConfigError
        When the scheduler cannot be reached or ``spec`` is neither form.
    """
    from distributed import Client, LocalCluster

    if spec == "local":
        cores = os.cpu_count() or 1
        workers, threads = (1, n_workers or cores) if in_process else (n_workers or cores, 1)
        where = {"protocol": "inproc://"} if in_process else {"host": "127.0.0.1"}  # no port for in-process
        with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=not in_process,
                          dashboard_address="127.0.0.1:0", **where) as cluster, Client(cluster) as client:
            dashboard = _loopback_link(client.dashboard_link)  # it listens on 127.0.0.1 only
            if in_process:
                logger.info("Dask: local cluster in this process with %d threads; dashboard %s", threads, dashboard)
            else:
                logger.info("Dask: local cluster with %d worker processes; dashboard %s", workers, dashboard)
            yield client
        return
    if not spec.startswith("tcp://"):
        raise ConfigError(f"cluster must be 'local' or tcp://HOST:PORT here, got {spec!r}",
                          "use cluster_for_run for kubernetes and local-cuda")
    try:
        client = Client(spec, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {spec} ({exc})",
                          "start it (dask scheduler) or set `cluster` to local") from None
    with client:
        logger.info("Dask: scheduler %s with %d workers; dashboard %s", spec,
                    len(client.scheduler_info()["workers"]), client.dashboard_link)
        yield client


def _loopback_link(link: str) -> str:
    """A local cluster's dashboard link with the host it listens on (dask names the machine's address)."""
    scheme, rest = link.split("://", 1) if "://" in link else ("http", link)
    port_and_path = rest.split(":", 1)[1] if ":" in rest else rest
    return f"{scheme}://127.0.0.1:{port_and_path}"


def check_cluster_request(spec: str, kubernetes: dict | None) -> None:
    """Fail before any work when ``spec`` asks for a cluster this install cannot make.

    Raises
    ------
    ConfigError
        ``kubernetes`` without dask-kubernetes or with a bad ``kubernetes`` section;
        ``local-cuda`` without dask-cuda.
    """
    from .kubernetes import KubernetesSettings, require_extra

    if spec == "kubernetes":
        KubernetesSettings.from_mapping(kubernetes)
        require_extra("dask_kubernetes.operator", "k8s", "cluster kubernetes")
    elif spec == "local-cuda":
        require_extra("dask_cuda", "gpu", "cluster local-cuda")


@contextmanager
def cluster_for_run(spec: str, kubernetes: dict | None) -> Iterator[str]:
    """The scheduler address the run's stages use: for ``kubernetes`` and ``local-cuda`` a cluster
    made for the whole run (its pods or processes start once, not once per stage) and closed
    after it, also on error; any other ``spec`` is yielded as it is."""
    if spec not in ("kubernetes", "local-cuda"):
        yield spec
        return
    from .kubernetes import KubernetesSettings, kubernetes_client, local_cuda_client

    made = kubernetes_client(KubernetesSettings.from_mapping(kubernetes)) if spec == "kubernetes" else local_cuda_client()
    with made as client:
        yield client.scheduler.address
