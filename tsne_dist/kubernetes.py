"""Dask clusters made for one run: on Kubernetes (the dask-kubernetes operator) or on the GPUs here.

``--cluster kubernetes`` creates a ``DaskCluster`` through the operator's
:class:`dask_kubernetes.operator.KubeCluster` from the config's ``kubernetes:``
section, runs, and deletes it again (also when the run fails). ``--cluster
local-cuda`` starts a dask-cuda ``LocalCUDACluster``, one worker per GPU. Both
packages are optional extras (``pip install "tsne-dist[k8s]"``, ``"tsne-dist[gpu]"``).

The ``kubernetes:`` section (all keys optional but ``image``)::

    kubernetes:
      image: ghcr.io/acme/tsne-dist:0.1.0     # built from deploy/Dockerfile
      namespace: maps                        # default: the pod's own, else "default"
      name: tsne-dist                        # DaskCluster name prefix
      n_workers: 4
      worker_resources: {requests: {cpu: "1", memory: 6Gi}, limits: {memory: 6Gi}}
      gpu_workers: 0                         # a second worker group with nvidia.com/gpu limits
      gpu_resources: {limits: {nvidia.com/gpu: 1, memory: 24Gi}}
      env_from_secret: tsne-dist-s3          # object-store credentials for scheduler and workers
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError

logger = logging.getLogger("tsne_dist")

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_GPU_RESOURCES = {"limits": {"nvidia.com/gpu": "1"}}
# The operator deletes a DaskCluster idle this long: a backstop for a job pod killed outright (its
# `finally` never runs). As long as the CronJob's activeDeadlineSeconds, since the scheduler counts a
# run's client-only stages (the layout) as idle.
IDLE_TIMEOUT_S = 21_600


@dataclass(frozen=True)
class KubernetesSettings:
    """The ``kubernetes:`` section of a run config, checked."""

    image: str
    namespace: str | None = None
    name: str = "tsne-dist"
    n_workers: int = 2
    worker_resources: dict[str, Any] = field(default_factory=dict)
    gpu_workers: int = 0
    gpu_resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_GPU_RESOURCES))
    env_from_secret: str | None = None

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> "KubernetesSettings":
        """Check the section and make the settings.

        Raises
        ------
        ConfigError
            For an unknown key, a missing ``image`` or a value of the wrong type.
        """
        if not values:
            raise ConfigError("cluster kubernetes needs a kubernetes section in the config file",
                              "add kubernetes: with at least image: (see deploy/README.md)")
        values = dict(values)
        known = [item.name for item in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} in the kubernetes section",
                              f"use only {', '.join(known)}")
        if not isinstance(values.get("image"), str) or not values["image"]:
            raise ConfigError("the kubernetes section names no image",
                              "set kubernetes: image: to an image built from deploy/Dockerfile")
        for key in ("n_workers", "gpu_workers"):
            value = values.get(key, 0 if key == "gpu_workers" else 2)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"kubernetes {key} must be a whole number >= 0, got {value!r}",
                                  f"set kubernetes: {key}: to a number of workers")
        if values.get("n_workers", 2) + values.get("gpu_workers", 0) == 0:
            raise ConfigError("the kubernetes section asks for no workers", "set kubernetes: n_workers: to 1 or more")
        for key in ("worker_resources", "gpu_resources"):
            if key in values and not isinstance(values[key], dict):
                raise ConfigError(f"kubernetes {key} must be a mapping such as {{limits: {{memory: 6Gi}}}}",
                                  f"set kubernetes: {key}: to requests/limits")
        for key in ("worker_resources", "gpu_resources"):
            if key in values:  # quantities as text: the operator's schema (and Kubernetes) take "1", "6Gi"
                values[key] = {kind: {name: str(amount) for name, amount in (amounts or {}).items()}
                               for kind, amounts in values[key].items()}
        for key in ("namespace", "name", "env_from_secret"):
            if key in values and values[key] is not None and not isinstance(values[key], str):
                raise ConfigError(f"kubernetes {key} must be text, got {values[key]!r}", f"set kubernetes: {key}:")
        return cls(**values)

    def resolved_namespace(self) -> str:
        """The namespace asked for, else the pod's own (in a cluster), else ``default``."""
        if self.namespace:
            return self.namespace
        if os.path.isfile(SERVICE_ACCOUNT_NAMESPACE):
            with open(SERVICE_ACCOUNT_NAMESPACE) as handle:
                return handle.read().strip() or "default"
        return "default"


def require_extra(module: str, extra: str, what: str):
    """Import ``module``, or raise a one-line :class:`ConfigError` naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module.split('.')[0].replace('_', '-')} package, which is not installed",
                          f'pip install "tsne-dist[{extra}]", or set `cluster` to local') from None


def cluster_spec(settings: KubernetesSettings, name: str | None = None) -> dict[str, Any]:
    """The ``DaskCluster`` object (a dict) that ``--cluster kubernetes`` asks the operator for.

    Made with dask-kubernetes' ``make_cluster_spec`` (CPU workers), then given
    ``envFrom`` the credentials Secret in every container. The optional GPU worker
    group is a separate ``DaskWorkerGroup`` (:func:`gpu_worker_group`).

    Raises
    ------
    ConfigError
        When dask-kubernetes is not installed.
    """
    operator = require_extra("dask_kubernetes.operator", "k8s", "cluster kubernetes")
    spec = operator.make_cluster_spec(name=name or settings.name, image=settings.image,
                                      n_workers=settings.n_workers, resources=settings.worker_resources or None,
                                      worker_command="dask worker", idle_timeout=IDLE_TIMEOUT_S)
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    if scheduler["args"][:1] == ["dask-scheduler"]:  # distributed 2026.6 removed the dask-scheduler script
        scheduler["args"] = ["dask", "scheduler", *scheduler["args"][1:]]
    spec["metadata"]["labels"] = {"app.kubernetes.io/name": "tsne-dist"}  # kubectl get daskcluster -l ... finds it
    for role in ("scheduler", "worker"):
        _with_secret(spec["spec"][role]["spec"], settings)
    return spec


def _with_secret(pod_spec: dict[str, Any], settings: KubernetesSettings) -> None:
    """Drop the ``env: null`` that dask-kubernetes writes (the CRD schema rejects it) and give every
    container the credentials Secret as ``envFrom``."""
    for container in pod_spec["containers"]:
        container.pop("env", None)
        if settings.env_from_secret:
            container["envFrom"] = [{"secretRef": {"name": settings.env_from_secret}}]


def gpu_worker_group(settings: KubernetesSettings, cluster_name: str) -> dict[str, Any]:
    """The ``DaskWorkerGroup`` of GPU workers (``nvidia.com/gpu`` limits, the GPU taint tolerated)
    for ``cluster_name``, made with dask-kubernetes' ``make_worker_spec``."""
    operator = require_extra("dask_kubernetes.operator", "k8s", "cluster kubernetes")
    worker = operator.make_worker_spec(image=settings.image, n_workers=settings.gpu_workers,
                                       resources=settings.gpu_resources, worker_command="dask cuda worker")
    _with_secret(worker["spec"], settings)
    worker["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskWorkerGroup",
            "metadata": {"name": f"{cluster_name}-gpu"}, "spec": {"cluster": cluster_name, "worker": worker}}


@contextmanager
def kubernetes_client(settings: KubernetesSettings) -> Iterator[Any]:
    """A client of a ``DaskCluster`` made for this run; the cluster is deleted on exit, error or not.

    Raises
    ------
    ConfigError
        When dask-kubernetes is not installed or the cluster cannot be created.
    """
    operator = require_extra("dask_kubernetes.operator", "k8s", "cluster kubernetes")
    from distributed import Client

    namespace = settings.resolved_namespace()
    name = f"{settings.name}-{uuid.uuid4().hex[:8]}"  # a rerun started beside a running night gets its own
    spec = cluster_spec(settings, name)
    logger.info("Dask: creating DaskCluster %s in namespace %s (%d workers, image %s)", name, namespace,
                settings.n_workers, settings.image)
    try:
        cluster = operator.KubeCluster(custom_cluster_spec=spec, namespace=namespace, shutdown_on_close=True)
    except Exception as exc:  # noqa: BLE001 - kr8s and the API server raise many kinds
        _delete_cluster(name, namespace)  # it may exist half-made (a scheduler that never came up)
        raise ConfigError(f"cannot create the Dask cluster on Kubernetes ({str(exc).splitlines()[0][:200]})",
                          "check the operator is installed, the service account may create daskclusters, and "
                          "the image and resources can be scheduled") from None
    try:
        if settings.gpu_workers:
            cluster.add_worker_group(name="gpu", custom_spec=gpu_worker_group(settings, cluster.name)["spec"]["worker"])
        with Client(cluster) as client:
            logger.info("Dask: cluster %s ready; dashboard %s", cluster.name, client.dashboard_link)
            yield client
    finally:
        logger.info("Dask: deleting DaskCluster %s", cluster.name)
        cluster.close()


def _delete_cluster(name: str, namespace: str) -> None:
    """Best effort: delete the DaskCluster ``name`` if it exists (its pods go with it)."""
    try:
        import kr8s

        for found in kr8s.get("daskclusters.kubernetes.dask.org", name, namespace=namespace):
            found.delete()
    except Exception:  # noqa: BLE001 - nothing to delete, or no API: the operator's idle timeout remains
        logger.debug("no DaskCluster %s to delete", name)


@contextmanager
def local_cuda_client() -> Iterator[Any]:
    """A client of a dask-cuda ``LocalCUDACluster`` (one worker per visible GPU) on 127.0.0.1.

    Raises
    ------
    ConfigError
        When dask-cuda is not installed or no GPU is visible.
    """
    dask_cuda = require_extra("dask_cuda", "gpu", "cluster local-cuda")
    from distributed import Client

    try:
        cluster = dask_cuda.LocalCUDACluster(host="127.0.0.1", dashboard_address="127.0.0.1:0")
    except Exception as exc:  # noqa: BLE001 - no driver, no device, ...
        raise ConfigError(f"cannot start a local CUDA cluster ({str(exc).splitlines()[0][:200]})",
                          "set `cluster` to local on a machine without a usable GPU") from None
    with cluster, Client(cluster) as client:
        logger.info("Dask: LocalCUDACluster with %d GPU workers; dashboard %s", len(cluster.workers),
                    client.dashboard_link)
        yield client
