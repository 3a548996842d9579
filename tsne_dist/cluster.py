"""A Dask client: a local cluster sized to the machine, or an existing scheduler."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConfigError

logger = logging.getLogger("tsne_dist")


@contextmanager
def dask_client(spec: str = "local", n_workers: int | None = None, *,
                connect_timeout: float = 20.0) -> Iterator[object]:
    """A ``distributed.Client`` for ``spec``; a local cluster is closed on exit.

    Parameters
    ----------
    spec : str
        ``local`` (a LocalCluster on 127.0.0.1, one single-threaded worker process
        per core unless ``n_workers``) or ``tcp://HOST:PORT`` of a running scheduler.
    n_workers : int, optional
        Workers of a local cluster.
    connect_timeout : float
        Seconds to keep trying to reach a scheduler at ``tcp://``.

    Raises
    ------
    ConfigError
        When the scheduler cannot be reached or ``spec`` is neither form.
    """
    from distributed import Client, LocalCluster

    if spec == "local":
        workers = n_workers or os.cpu_count() or 1
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            logger.info("Dask: local cluster with %d workers; dashboard %s", workers, client.dashboard_link)
            yield client
        return
    if not spec.startswith("tcp://"):
        raise ConfigError(f"cluster must be 'local' or tcp://HOST:PORT, got {spec!r}")
    try:
        client = Client(spec, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {spec} ({exc})",
                          "start it (dask scheduler) or set `cluster` to local") from None
    with client:
        logger.info("Dask: scheduler %s with %d workers; dashboard %s", spec,
                    len(client.scheduler_info()["workers"]), client.dashboard_link)
        yield client
