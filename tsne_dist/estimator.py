"""A scikit-learn-style estimator for in-memory arrays: ``TSNE().fit_transform(X)``."""

from __future__ import annotations

import logging

import numpy as np

from .affinity import check_item_count, joint_probabilities
from .io.vectors import check_vectors
from .neighbors import choose_backend, gpu_free_bytes, nearest_neighbors
from .progress import verbose_logging
from .settings import BY_NAME, canonical_name, check_schedule, coerce, neighbours_for
from .tsne import Schedule, choose_engine, initial_layout, optimize_layout, resolve_repulsion

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
        ``auto``, ``bruteforce``, ``hnsw``, ``pynndescent`` or ``cuml``.
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
    repulsion : str
        ``auto``, ``barnes-hut`` (CPU engines) or ``fft``; see
        :func:`~tsne_dist.tsne.resolve_repulsion`.
    random_state : int, optional
        Seed; None means 0 (results are always reproducible).
    n_jobs : int
        Threads; -1 for all cores.
    verbose : bool
        Log progress to stderr (kNN, affinities, t-SNE) unless logging is configured.

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
    engine_ : str
        The t-SNE engine that ran.
    repulsion_ : str
        The repulsion that ran (``barnes-hut`` or ``fft``).
    """

    def __init__(self, perplexity: float = 30.0, n_neighbors: int | None = None, knn: str = "auto",
                 metric: str = "euclidean", n_iter: int = 750, early_exaggeration_iter: int = 250,
                 early_exaggeration: float = 12.0, exaggeration: float = 1.0, dof: float = 1.0,
                 learning_rate: float | str = "auto",
                 initialization: str = "pca", engine: str = "auto", repulsion: str = "auto", random_state: int | None = None,
                 n_jobs: int = -1, verbose: bool = False) -> None:
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
        self.repulsion = repulsion
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _checked(self) -> dict[str, object]:
        """The parameters typed and checked against the settings table (errors name the parameter)."""
        values = {}
        for name, value in self.get_params().items():
            if name == "verbose":
                continue
            setting = BY_NAME[canonical_name(name)]
            values[setting.name] = coerce(setting, 0 if name == "random_state" and value is None else value, name)
        check_schedule(values["n_iter"], values["early_exaggeration_iter"])
        return values

    def fit(self, X: np.ndarray, y: object = None) -> "TSNE":
        """Compute the embedding of ``X`` ((N, D) numbers); ``y`` is ignored.

        The same functions as a run's stages: :func:`~tsne_dist.neighbors.nearest_neighbors`,
        :func:`~tsne_dist.affinity.joint_probabilities`, :func:`~tsne_dist.tsne.initial_layout`,
        :func:`~tsne_dist.tsne.optimize_layout`, with the engine and kNN backend
        resolved once by :func:`~tsne_dist.tsne.choose_engine` and
        :func:`~tsne_dist.neighbors.choose_backend`.

        Raises
        ------
        tsne_dist.errors.ConfigError
            For a bad parameter (named as the parameter).
        tsne_dist.errors.InputError
            For non-numeric, non-finite or too few rows.
        """
        with verbose_logging(self.verbose):
            return self._fit(X)

    def _fit(self, X: np.ndarray) -> "TSNE":
        params = self._checked()
        vectors = check_vectors(X, "X")
        n_items, n_dims = vectors.shape
        k = neighbours_for(params["perplexity"], params["n_neighbors"])
        check_item_count(n_items, params["perplexity"], k)
        if k < params["perplexity"]:
            logger.warning("with n_neighbors %d each row is calibrated to perplexity %d, not %g; for perplexity %g "
                           "set n_neighbors to at least %d", k, k, params["perplexity"], params["perplexity"],
                           int(round(3 * params["perplexity"])))
        backend, _ = choose_backend(params["knn"], n_items, n_dims, gpu_free_bytes=gpu_free_bytes())
        engine, engine_reason = choose_engine(params["engine"], repulsion=params["repulsion"])
        repulsion, repulsion_reason = resolve_repulsion(params["repulsion"], engine, n_items)
        logger.info("t-SNE engine: %s (%s); repulsion: %s (%s)", engine, engine_reason, repulsion, repulsion_reason)
        knn = nearest_neighbors(vectors, k, backend=backend, metric=params["metric"], seed=params["seed"],
                                n_jobs=params["n_jobs"])
        self.knn_backend_ = knn.backend
        self.engine_ = engine
        self.repulsion_ = repulsion
        self.affinities_ = joint_probabilities(knn.indices, knn.distances, params["perplexity"])
        init = initial_layout(params["initialization"], n_items, params["seed"], vectors)
        schedule = Schedule(**{name: params[name] for name in Schedule.names()})
        result = optimize_layout(self.affinities_, init, schedule, engine=engine, seed=params["seed"],
                                 n_jobs=params["n_jobs"], repulsion=repulsion)
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
            "early_exaggeration", "exaggeration", "dof", "learning_rate", "initialization", "engine", "repulsion",
            "random_state", "n_jobs", "verbose")}

    def set_params(self, **params: object) -> "TSNE":
        """Set constructor parameters (scikit-learn convention)."""
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"unknown parameter {name!r}")
            setattr(self, name, value)
        return self
