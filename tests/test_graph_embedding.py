"""Class similarity and the chained per-layer class embedding (PCA for few classes, UMAP otherwise)."""

import logging

import numpy as np

from summit_tf.graph import embedding


def test_similarity_against_float64_loops():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 20, (7, 13)) * (rng.random((7, 13)) < 0.5)
    a[3] = 0
    sim = embedding.class_similarity(a)
    for i in range(7):
        for j in range(7):
            ni, nj = np.sqrt((a[i] ** 2).sum()), np.sqrt((a[j] ** 2).sum())
            want = (a[i] * a[j]).sum() / (ni * nj) if ni and nj else 0.0
            assert abs(sim[i, j] - want) < 1e-12
    ranked = embedding.most_similar(a, np.arange(100, 107), 101)
    assert ranked[0] == (101, 1.0) and [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_pca_embedding_is_chained_scaled_and_logged(caplog):
    rng = np.random.default_rng(6)
    base = rng.integers(0, 30, (9, 40)).astype(float)
    rotated = base[:, ::-1].copy()  # same geometry, other channel order: PCA axes may flip or swap
    with caplog.at_level(logging.INFO):
        out = embedding.embed_classes({"l0": base, "l1": rotated}, ["l0", "l1"], seed=1)
    assert "using PCA instead of UMAP" in caplog.text
    for xy in out.values():
        assert xy.shape == (9, 2) and xy.min() >= 0 and xy.max() <= 1 + 1e-12
        assert np.isclose(np.ptp(xy, axis=0).max(), 1.0)
    # Procrustes alignment to the previous layer undoes the flip: the layout does not jump.
    np.testing.assert_allclose(out["l1"], out["l0"], atol=1e-9)
    again = embedding.embed_classes({"l0": base, "l1": rotated}, ["l0", "l1"], seed=1)
    np.testing.assert_array_equal(again["l0"], out["l0"])
    assert embedding.embed_classes({"l0": base[:1]}, ["l0"])["l0"].tolist() == [[0.5, 0.5]]


def _shape_residual(moving: np.ndarray, target: np.ndarray) -> float:
    """Least-squares distance of two layouts after the best translation and uniform scale."""
    m, t = moving - moving.mean(0), target - target.mean(0)
    scale = (m * t).sum() / (m * m).sum()
    return float(((t - scale * m) ** 2).sum())


def test_umap_layers_deterministic_clustered_and_oriented_like_the_previous_layer():
    """UMAP's output orientation is arbitrary (its init is only a start: the same data came out reflected, a
    median 0.91 of the square away on our machines), so each layer is turned onto the previous one. Checked
    against a brute-force search over rotations and reflections, independent of the machine's numerics."""
    rng = np.random.default_rng(7)
    centres = rng.random((3, 30)) < 0.3
    a = np.stack([(centres[i % 3] * rng.integers(5, 50, 30)) + rng.integers(0, 3, 30) for i in range(24)])
    noisy = a + rng.integers(0, 2, a.shape)
    out = embedding.embed_classes({"l0": a, "l1": noisy}, ["l0", "l1"], seed=3)
    for xy in out.values():
        assert xy.shape == (24, 2) and xy.min() >= 0 and xy.max() <= 1 + 1e-12
    # Classes of one cluster stay together in both layers: each point's nearest neighbour is mostly a
    # same-cluster class.
    labels = np.arange(24) % 3
    for xy in out.values():
        d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(24) * 9
        assert (labels[d.argmin(1)] == labels).mean() > 0.9
    # No rotation (1 degree steps) or reflection of l1 about its centre brings it closer to l0.
    l1 = out["l1"] - out["l1"].mean(0)
    ours = _shape_residual(l1, out["l0"])
    for theta in np.deg2rad(np.arange(360)):
        c, s = np.cos(theta), np.sin(theta)
        for reflect in (np.eye(2), np.diag([1.0, -1.0])):
            turned = l1 @ reflect @ np.array([[c, s], [-s, c]])
            assert ours <= _shape_residual(turned, out["l0"]) * (1 + 1e-9) + 1e-12, np.rad2deg(theta)
    again = embedding.embed_classes({"l0": a, "l1": noisy}, ["l0", "l1"], seed=3)
    np.testing.assert_allclose(again["l1"], out["l1"])
