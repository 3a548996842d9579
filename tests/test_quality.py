"""Map quality against openTSNE with its defaults, on real data (MNIST 5k)."""

from __future__ import annotations

import numpy as np
import pytest
from openTSNE import TSNE as OpenTSNE

import tsne_dist
from tsne_dist.datasets import load_mnist5k
from tsne_dist.metrics import neighbour_quality

LOADERS = {"mnist5k": load_mnist5k}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist5k"])  # digits: test_engine compares the optimiser with openTSNE's
def test_quality_at_least_opentsne_defaults(tmp_path, name):
    vectors, metadata = LOADERS[name]()
    np.save(tmp_path / "v.npy", vectors)
    metadata.to_parquet(tmp_path / "m.parquet")
    np.save(tmp_path / "ids.npy", metadata["id"].to_numpy().astype(str))
    ours = tsne_dist.run({"vectors": str(tmp_path / "v.npy"), "ids": str(tmp_path / "ids.npy"),
                          "metadata": str(tmp_path / "m.parquet"), "label": "digit", "out": str(tmp_path / "o")})
    reference = np.asarray(OpenTSNE(n_jobs=-1, random_state=0).fit(vectors.astype(np.float64)))
    theirs = neighbour_quality(vectors, reference, k=10, sample=5000, seed=0)
    recall, trust = ours.metrics["knn_recall@10"], ours.metrics["trustworthiness@10"]
    print(f"{name}: ours recall {recall:.4f} trust {trust:.4f}; openTSNE recall {theirs.recall:.4f} "
          f"trust {theirs.trustworthiness:.4f}")
    assert recall >= theirs.recall - 0.01
    assert trust >= theirs.trustworthiness - 0.01
    # the labels must separate far better in the map than in the raw space
    assert ours.metrics["silhouette_2d"] > ours.metrics["silhouette_hd"]
