"""`tsne-dist demo`: write a real catalog's inputs to OUT/inputs and map it."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from .config import Config
from .datasets import load_digits, load_glove, load_mnist5k, load_movielens
from .errors import StoreError
from .pipeline import Result, run
from .storage import Location, is_url, write_atomically

logger = logging.getLogger("tsne_dist")

DEMOS = {
    # name: (loader, colour/label column)
    "mnist": (load_mnist5k, "digit"),
    "digits": (load_digits, "digit"),
    "glove": (lambda: load_glove(20_000), "frequency_band"),
}


MOVIELENS_MIN_COUNT = 10  # films rated by at least 10 users: about 2,200 of 9,066
MOVIELENS_TAU = 3600.0  # seconds: two films rated within the hour by one user count most
MOVIELENS_ERAS = 5  # release eras holding about equal numbers of the mapped films


def run_demo(dataset: str = "movielens", out: str = "tsne-dist-demo", seed: int = 0) -> Result:
    """Map a real catalog that installs offline; inputs go to ``OUT/inputs``.

    Parameters
    ----------
    dataset : str
        ``movielens`` (films from 100,004 ratings by co-occurrence in users'
        histories, a pair's weight falling by e per hour between the two ratings, coloured
        by release era), ``mnist`` (5,000 handwritten
        digits), ``digits`` (1,797) or ``glove`` (20,000 most frequent GloVe words).
    out : str
        Output folder.
    seed : int
        Seed of the run.

    Returns
    -------
    Result
    """
    if dataset == "movielens":
        return _movielens_demo(out, seed)
    loader, column = DEMOS[dataset]
    out = _local_folder(out)
    inputs = os.path.join(out, "inputs")
    os.makedirs(inputs, exist_ok=True)
    vectors_path = os.path.join(inputs, f"{dataset}.npy")
    metadata_path = os.path.join(inputs, f"{dataset}-metadata.parquet")
    ids_path = os.path.join(inputs, f"{dataset}-ids.npy")
    if not all(os.path.exists(path) for path in (vectors_path, metadata_path, ids_path)):
        logger.info("demo: writing the %s catalog to %s", dataset, inputs)
        vectors, metadata = loader()
        write_atomically(metadata_path, lambda tmp: metadata.to_parquet(tmp, index=False))
        write_atomically(ids_path, lambda tmp: np.save(tmp, metadata["id"].to_numpy().astype(str)))
        write_atomically(vectors_path, lambda tmp: np.save(tmp, vectors))
    config = Config(out=out, vectors=vectors_path, ids=ids_path,
                    metadata=metadata_path, color_by=column, label=column, seed=seed)
    return run(config)


def _movielens_demo(out: str, seed: int) -> Result:
    """Ratings -> co-occurrence of films in users' histories -> map coloured by release era.

    Pairs of films one user rated weigh exp(-|t_i - t_j| / 1 hour) (`tau`): films
    rated in one sitting count most. What the map then shows most is when films came
    out (users rate the films of their own years together); each film's ``era`` is one of
    five ranges of release years holding about equal numbers of the mapped films. Measured
    choices: benchmarks/README.md, "bench_demo_settings.py".
    """
    out = _local_folder(out)
    inputs = os.path.join(out, "inputs")
    os.makedirs(inputs, exist_ok=True)
    ratings_path = os.path.join(inputs, "movielens-ratings.parquet")
    films_path = os.path.join(inputs, "movielens-films.parquet")
    if not all(os.path.exists(path) for path in (ratings_path, films_path)) or not _has_column(films_path, "era"):
        logger.info("demo: writing the MovieLens ratings and films to %s", inputs)
        ratings, films = load_movielens()
        films["era"] = release_eras(films, ratings, min_count=MOVIELENS_MIN_COUNT, n_eras=MOVIELENS_ERAS)
        write_atomically(films_path, lambda tmp: films.to_parquet(tmp, index=False))
        write_atomically(ratings_path, lambda tmp: ratings.to_parquet(tmp, index=False))
    config = Config(out=out, interactions=ratings_path, collection_col="userId", item_col="movieId",
                    time_col="timestamp", tau=MOVIELENS_TAU, min_count=MOVIELENS_MIN_COUNT,
                    metadata=films_path, id_col="movieId", color_by="era", label="era", seed=seed)
    return run(config)


def release_eras(films: pd.DataFrame, ratings: pd.DataFrame, *, min_count: int, n_eras: int) -> pd.Series:
    """Each film's release era, e.g. ``"1995-1999"``: at most ``n_eras`` ranges of whole years.

    The edges are quantiles of the release year over the films that the map keeps
    (rated by at least ``min_count`` users), rounded to whole years, so each era holds
    about the same number of mapped films; edges that round to the same year merge
    two eras (logged). The ranges span the mapped films' years, so their names describe
    the map; films without a year, or (not mapped) outside those years, get no era.

    Parameters
    ----------
    films : pandas.DataFrame
        movieId, year (float; NaN when unknown).
    ratings : pandas.DataFrame
        userId, movieId.
    min_count, n_eras : int
        The map's `min_count`, and how many eras.

    Returns
    -------
    pandas.Series
        str (object dtype) per film, aligned with ``films``; None where the year is missing.

    Raises
    ------
    ValueError
        When no mapped film has a release year.
    """
    raters = ratings.groupby("movieId")["userId"].nunique()
    mapped = films["movieId"].map(raters).fillna(0) >= min_count
    years = films["year"]
    known = years[mapped].dropna()
    if known.empty:
        raise ValueError(f"no film rated by at least {min_count} users has a release year")
    edges = np.unique(np.quantile(known, np.linspace(0, 1, n_eras + 1)).round().astype(int))
    if len(edges) == 1:  # every film from one year: one era
        return years.map(lambda year: None if pd.isna(year) else f"{int(year)}-{int(year)}").astype(object)
    if len(edges) - 1 < n_eras:
        logger.info("release eras: %d instead of %d (quantile years coincide)", len(edges) - 1, n_eras)
    names = [f"{int(low) + (i > 0)}-{int(high)}" for i, (low, high) in enumerate(zip(edges[:-1], edges[1:]))]
    eras = pd.cut(years, edges, labels=names, include_lowest=True)
    return eras.astype(object).where(eras.notna(), None)


def _has_column(parquet_path: str, column: str) -> bool:
    """Whether a Parquet file's schema holds ``column`` (inputs written by an older demo lack ``era``)."""
    import pyarrow.parquet as pq

    return column in pq.read_schema(parquet_path).names


def _local_folder(out: str) -> str:
    """The demo's output folder, created and proven writable (the demo keeps its inputs there)."""
    if not out.strip():
        raise StoreError("no output folder given", "set --out to a folder (default tsne-dist-demo)")
    if is_url(out) and not out.startswith("file://"):  # file:// is a local folder
        raise StoreError(f"the demo writes to a local folder, not {out}",
                         "pass a local folder as --out (tsne-dist run takes URLs)")
    location = Location(out)
    location.check_writable()
    return location.url
