"""kNN with RAPIDS on the GPU: cuML's brute-force NearestNeighbors, or cuVS's brute
force when only cuVS is installed. Both search the metric's euclidean space (see
:mod:`.metric`), so distances mean the same as with the other backends."""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError
from .metric import prepare_metric, to_metric_distance
from .nndescent import drop_self

logger = logging.getLogger("tsne_dist")


def cuml_knn(vectors: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row, self excluded, with cuML or cuVS.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D) float32.
    k : int
        Neighbours per row.
    metric : str
        ``euclidean``, ``cosine`` or ``inner_product``.

    Returns
    -------
    indices : np.ndarray
        (N, k) int32.
    distances : np.ndarray
        (N, k) float32 in ``metric``.

    Raises
    ------
    ConfigError
        When neither cuML nor cuVS can be imported.
    """
    search = rapids_search()
    items, queries = prepare_metric(np.ascontiguousarray(vectors, dtype=np.float32), metric)
    indices, distances = search(items, queries, k + 1)
    indices, distances = drop_self(np.asarray(indices, dtype=np.int64), np.asarray(distances), k)
    return indices, to_metric_distance(distances, metric)


def rapids_search():
    try:
        from cuml.neighbors import NearestNeighbors
    except ImportError:
        NearestNeighbors = None
    if NearestNeighbors is not None:
        def search(items, queries, n_neighbors):
            model = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", metric="euclidean",
                                     output_type="numpy")
            model.fit(items)
            distances, indices = model.kneighbors(queries)
            return indices, distances

        logger.info("kNN: cuML brute force")
        return search
    try:
        import cupy
        from cuvs.neighbors import brute_force
    except ImportError:
        raise ConfigError("`knn` cuml needs cuML or cuVS, and neither can be imported",
                          "pip install cuml-cu12 (on a machine with a CUDA GPU), or use `knn` bruteforce") from None

    def search(items, queries, n_neighbors):
        index = brute_force.build(cupy.asarray(items), metric="sqeuclidean")
        distances, indices = brute_force.search(index, cupy.asarray(queries), n_neighbors)
        return cupy.asnumpy(cupy.asarray(indices)), np.sqrt(np.maximum(cupy.asnumpy(cupy.asarray(distances)), 0))

    logger.info("kNN: cuVS brute force")
    return search
