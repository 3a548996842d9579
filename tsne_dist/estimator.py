"""A scikit-learn-style estimator for in-memory arrays: ``TSNE().fit_transform(X)``."""

from __future__ import annotations

import logging

import numpy as np

from .affinity import joint_probabilities
from .config import Config
from .io.vectors import check_item_count, check_vectors
from .neighbors import nearest_neighbors
from .tsne import optimize_layout, pca_init, random_init

logger = logging.getLogger("tsne_dist")


class TSNE:
    """t-SNE with tsne_dist's stages, on an in-memory array, without a run store.

    Parameters
    ----------
    perplexity : float
        Perplexity of each item's neighbourhood.
    n_neighbors : int, optional
        Neighbours per item (default ``3 * perplexity``).
    knn : str
        ``auto``, ``bruteforce`` or ``pynndescent``.
    metric : str
        ``euclidean`` or ``cosine``.
    n_iter, early_exaggeration_iter, early_exaggeration, exaggeration, learning_rate
        Optimiser schedule (openTSNE's defaults).
    dof : float
        Degrees of freedom of the t kernel (1: standard t-SNE).
    initialization : str
        ``pca`` or ``random``.
    engine : str
        ``auto``, ``numpy``, ``cupy`` or ``opentsne``.
    random_state : int, optional
        Seed; None means 0 (results are always reproducible).
    n_jobs : int
        Threads; -1 for all cores.

    Attributes
    ----------
    embedding_ : np.ndarray
        (N, 2) layout after :meth:`fit`.
    kl_divergence_ : float
        Final KL divergence.
    affinities_ : scipy.sparse.csr_matrix
        The symmetric P used.
    knn_backend_ : str
        The kNN backend that ran.
    """

    def __init__(self, perplexity: float = 30.0, n_neighbors: int | None = None, knn: str = "auto",
                 metric: str = "euclidean", n_iter: int = 750, early_exaggeration_iter: int = 250,
                 early_exaggeration: float = 12.0, exaggeration: float = 1.0, dof: float = 1.0,
                 learning_rate: float | str = "auto",
                 initialization: str = "pca", engine: str = "auto", random_state: int | None = None,
                 n_jobs: int = -1) -> None:
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.knn = knn
        self.metric = metric
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.early_exaggeration = early_exaggeration
        self.exaggeration = exaggeration
        self.dof = dof
        self.learning_rate = learning_rate
        self.initialization = initialization
        self.engine = engine
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _config(self) -> Config:
        return Config(
            out="(in memory)", vectors="(in memory)", perplexity=self.perplexity, n_neighbors=self.n_neighbors,
            knn=self.knn, metric=self.metric, engine=self.engine, n_iter=self.n_iter,
            early_exaggeration_iter=self.early_exaggeration_iter, early_exaggeration=self.early_exaggeration,
            exaggeration=self.exaggeration, dof=self.dof, learning_rate=self.learning_rate, initialization=self.initialization,
            seed=0 if self.random_state is None else int(self.random_state), n_jobs=self.n_jobs,
        ).validate()

    def fit(self, X: np.ndarray, y: object = None) -> "TSNE":
        """Compute the embedding of ``X`` ((N, D) numbers); ``y`` is ignored."""
        config = self._config()
        vectors = check_vectors(X, "X")
        check_item_count(len(vectors), config.perplexity, config.k)
        knn = nearest_neighbors(vectors, config.k, backend=config.knn, metric=config.metric, seed=config.seed,
                                n_jobs=config.n_jobs)
        self.knn_backend_ = knn.backend
        self.affinities_ = joint_probabilities(knn.indices, knn.distances, config.perplexity)
        if config.initialization == "pca":
            init = pca_init(vectors, config.seed)
        else:
            init = random_init(len(vectors), config.seed)
        result = optimize_layout(
            self.affinities_, init, engine=config.engine, n_iter=config.n_iter,
            early_exaggeration_iter=config.early_exaggeration_iter, early_exaggeration=config.early_exaggeration,
            exaggeration=config.exaggeration, learning_rate=config.learning_rate, seed=config.seed,
            n_jobs=config.n_jobs, dof=config.dof,
        )
        self.embedding_ = result.layout
        self.kl_divergence_ = result.kl_divergence
        return self

    def fit_transform(self, X: np.ndarray, y: object = None) -> np.ndarray:
        """Fit and return the (N, 2) embedding."""
        return self.fit(X).embedding_

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """Constructor parameters (scikit-learn convention)."""
        return {name: getattr(self, name) for name in (
            "perplexity", "n_neighbors", "knn", "metric", "n_iter", "early_exaggeration_iter",
            "early_exaggeration", "exaggeration", "dof", "learning_rate", "initialization", "engine",
            "random_state", "n_jobs")}

    def set_params(self, **params: object) -> "TSNE":
        """Set constructor parameters (scikit-learn convention)."""
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"unknown parameter {name!r}")
            setattr(self, name, value)
        return self
