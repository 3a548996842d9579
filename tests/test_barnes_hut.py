"""Barnes-Hut repulsion: exact at theta 0, close at theta 0.5, the same on any thread count."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from tsne_dist.tsne.barnes_hut import build_quadtree, repulsion_barnes_hut
from tsne_dist.tsne.gradient import exact_repulsion, repulsion
from tsne_dist.tsne.optimizer import Embedding, choose_repulsion


def _layout(n_items: int, seed: int = 0) -> np.ndarray:
    """Clusters of different spread plus a few exact duplicates, as a t-SNE map has."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 2)) * 30
    y = centres[rng.integers(0, 8, n_items)] + rng.normal(size=(n_items, 2)) * rng.uniform(0.2, 3, (n_items, 1))
    y[1:4] = y[0]  # four points at one position
    return y


@pytest.mark.parametrize("dof", [1.0, 0.5])
def test_theta_zero_is_the_exact_repulsion(dof):
    y = _layout(700)
    forces, z = repulsion_barnes_hut(y, dof=dof, theta=0.0)
    exact_forces, exact_z = exact_repulsion(y, dof=dof)
    assert z == pytest.approx(exact_z, rel=1e-12)
    np.testing.assert_allclose(forces, exact_forces, rtol=1e-9, atol=1e-12 * np.abs(exact_forces).max())


def test_theta_half_is_close_to_exact_and_closer_than_the_fft_grid_at_small_n():
    y = _layout(3000)
    exact_forces, exact_z = exact_repulsion(y)
    forces, z = repulsion_barnes_hut(y)
    grid_forces, _ = repulsion(y, use_numba=True)
    error = np.linalg.norm(forces - exact_forces, axis=1).mean() / np.linalg.norm(exact_forces, axis=1).mean()
    grid_error = (np.linalg.norm(grid_forces - exact_forces, axis=1).mean()
                  / np.linalg.norm(exact_forces, axis=1).mean())
    assert abs(z / exact_z - 1) < 0.02
    assert error < 0.02
    assert error < grid_error  # at this size Barnes-Hut is the more accurate and the faster


def test_the_tree_holds_every_point_once_and_in_z_curve_order():
    y = _layout(2000)
    tree = build_quadtree(y)
    cells, links, n_children, order = tree.cells, tree.links, tree.n_children, tree.order
    assert sorted(order) == list(range(2000))
    np.testing.assert_array_equal(tree.xs, y[order, 0])
    assert cells[0, 2] == 2000  # the root counts every point
    np.testing.assert_allclose(cells[0, :2], y.mean(axis=0), rtol=1e-12)
    inner = np.flatnonzero(links >= 0)
    assert n_children[inner].min() >= 2 and n_children[inner].max() <= 4  # compressed: no one-child cells
    child_counts = [cells[links[c]:links[c] + n_children[c], 2].sum() for c in inner]
    np.testing.assert_array_equal(child_counts, cells[inner, 2])  # children partition their parent
    for c in inner[:200]:  # each inner child is at most half its parent's width
        children = slice(links[c], links[c] + n_children[c])
        child_widths = cells[children, 3][links[children] >= 0]
        assert (child_widths <= cells[c, 3] / 4).all()
    leaves = np.flatnonzero(links < 0)
    assert cells[leaves, 2].sum() == 2000
    shared = leaves[cells[leaves, 2] > 1]
    assert len(shared) == 1 and cells[shared[0], 2] == 4  # the four duplicates share one leaf
    first = -1 - links[shared[0]]
    assert set(order[first:first + 4]) == {0, 1, 2, 3}
    # consecutive points in tree order are near in the map: far nearer than in input order
    step_tree = np.linalg.norm(np.diff(y[order], axis=0), axis=1).mean()
    step_input = np.linalg.norm(np.diff(y, axis=0), axis=1).mean()
    assert step_tree < step_input / 5


def test_the_result_does_not_depend_on_the_thread_count():
    y = _layout(5000, seed=3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = repulsion_barnes_hut(y)
        numba.set_num_threads(before)
        many = repulsion_barnes_hut(y)
    finally:
        numba.set_num_threads(before)
    assert one[1] == many[1]
    np.testing.assert_array_equal(one[0], many[0])


@pytest.mark.parametrize("y", [
    np.zeros((50, 2)),  # every point at one place: w = 1 for every pair, no force
    np.array([[0.0, 0.0], [1e-300, 0.0], [5.0, 5.0]]),  # closer than the tree resolves: one leaf, summed exactly
    np.array([[3.0, 1.0], [3.0, 1.0 + 1e-12], [3.0, 1.0], [2.0, 7.0]]),
    np.array([[1.0, 2.0], [4.0, 6.0]]),
    np.vstack([np.full((100, 2), 1.5), np.random.default_rng(0).normal(size=(20, 2))]),  # a crowd past LEAF_EXACT
], ids=["one-place", "tiny-gap", "near-and-same", "two-points", "crowd"])
def test_degenerate_layouts_are_exact(y):
    forces, z = repulsion_barnes_hut(y, theta=0.0)
    exact_forces, exact_z = exact_repulsion(y)
    assert z == pytest.approx(exact_z, rel=1e-12)
    np.testing.assert_allclose(forces, exact_forces, rtol=1e-9, atol=1e-15)


def test_bad_layouts_are_refused():
    from tsne_dist.errors import DivergedError

    with pytest.raises(DivergedError, match="diverged.*lower `learning_rate`"):
        repulsion_barnes_hut(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(DivergedError, match="diverged"):
        repulsion(np.array([[0.0, np.inf], [1.0, 1.0]]))  # the FFT grid too
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        repulsion_barnes_hut(np.zeros((5, 3)))


def test_a_shifted_layout_gets_the_same_forces():
    y = _layout(3000)
    forces, z = repulsion_barnes_hut(y)
    shifted_forces, shifted_z = repulsion_barnes_hut(y + 1e5)
    assert shifted_z == pytest.approx(z, rel=1e-9)
    np.testing.assert_allclose(shifted_forces, forces, rtol=0, atol=1e-8 * np.abs(forces).max())


def test_auto_repulsion_and_its_errors():
    assert choose_repulsion("auto", 49_999) == "barnes-hut"
    assert choose_repulsion("auto", 50_000) == "fft"
    assert choose_repulsion("auto", 500, xp=object()) == "fft"  # a GPU array module
    with pytest.raises(ValueError, match="NumPy only"):
        choose_repulsion("barnes-hut", 500, xp=object())
    with pytest.raises(ValueError, match="one of auto, barnes-hut, fft"):
        choose_repulsion("bh", 500)


def test_the_layout_matches_opentsnes_barnes_hut_on_the_same_p_and_init():
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import Affinities

    from tsne_dist.affinity import joint_probabilities
    from tsne_dist.datasets import load_digits
    from tsne_dist.metrics import neighbour_quality
    from tsne_dist.neighbors import nearest_neighbors
    from tsne_dist.tsne import pca_init

    vectors, _ = load_digits()
    knn = nearest_neighbors(vectors, 90, backend="bruteforce")
    P = joint_probabilities(knn.indices, knn.distances, 30.0)
    init = pca_init(vectors, 0)
    ours = Embedding(init, P, repulsion="barnes-hut")
    assert ours.repulsion == "barnes-hut"
    ours.optimize(250, exaggeration=12, momentum=0.5).optimize(500, momentum=0.8)
    affinities = Affinities()
    affinities.P = P.astype(np.float64)
    theirs = TSNEEmbedding(init.copy(), affinities, negative_gradient_method="bh", random_state=0, n_jobs=-1)
    theirs = theirs.optimize(250, exaggeration=12, momentum=0.5).optimize(500, momentum=0.8)
    assert abs(ours.kl_divergence / theirs.kl_divergence - 1) < 0.01, (ours.kl_divergence, theirs.kl_divergence)
    ours_recall = neighbour_quality(vectors, ours.layout).recall
    theirs_recall = neighbour_quality(vectors, np.asarray(theirs)).recall
    assert abs(ours_recall - theirs_recall) < 0.01, (ours_recall, theirs_recall)


def test_a_diverged_layout_is_a_one_line_error_and_no_stage_is_marked_done(tmp_path, capsys, catalog_files,
                                                                          monkeypatch):
    import tsne_dist.tsne.barnes_hut as barnes_hut
    from conftest import FAST, done_stages, run_cli

    real = barnes_hut.layout_bounds
    monkeypatch.setattr(barnes_hut, "layout_bounds", lambda y: real(np.full_like(y, np.nan)))  # as if it blew up
    out = str(tmp_path / "o")
    code, _, err = run_cli(capsys, "run", "--vectors", catalog_files["vectors"], "--out", out, "-q", *FAST)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the t-SNE layout diverged (NaN or infinite coordinates); lower --learning-rate" in err
    assert "layout" not in done_stages(out) and "affinities" in done_stages(out)
