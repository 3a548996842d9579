"""k-nearest-neighbour search: exact blocked brute force (xp), faiss HNSW, pynndescent (also sharded on Dask), cuML."""

from .api import KNNResult, choose_backend, gpu_free_bytes, graph_recall, nearest_neighbors

__all__ = ["KNNResult", "choose_backend", "gpu_free_bytes", "graph_recall", "nearest_neighbors"]
