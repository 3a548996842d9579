"""`tsne-dist demo`: write a real catalog's inputs to OUT/inputs and map it."""

from __future__ import annotations

import logging
import os

import numpy as np

from .config import Config
from .datasets import load_digits, load_glove, load_mnist5k
from .outputs import prepare_out_dir, write_atomically
from .pipeline import Result, run

logger = logging.getLogger("tsne_dist")

DEMOS = {
    # name: (loader, colour/label column)
    "mnist": (load_mnist5k, "digit"),
    "digits": (load_digits, "digit"),
    "glove": (lambda: load_glove(20_000), "frequency_band"),
}


def run_demo(dataset: str = "mnist", out: str = "tsne-dist-demo", seed: int = 0) -> Result:
    """Map a real catalog that installs offline; inputs go to ``OUT/inputs``.

    Parameters
    ----------
    dataset : str
        ``mnist`` (5,000 handwritten digits), ``digits`` (1,797) or ``glove``
        (20,000 most frequent GloVe words).
    out : str
        Output folder.
    seed : int
        Seed of the run.

    Returns
    -------
    Result
    """
    loader, column = DEMOS[dataset]
    out = prepare_out_dir(out)
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
