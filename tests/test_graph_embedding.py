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


def test_umap_embedding_deterministic_and_initialized_from_previous_layer():
    rng = np.random.default_rng(7)
    centres = rng.random((3, 30)) < 0.3
    a = np.stack([(centres[i % 3] * rng.integers(5, 50, 30)) + rng.integers(0, 3, 30) for i in range(24)])
    noisy = a + rng.integers(0, 2, a.shape)
    out = embedding.embed_classes({"l0": a, "l1": noisy}, ["l0", "l1"], seed=3)
    for xy in out.values():
        assert xy.shape == (24, 2) and xy.min() >= 0 and xy.max() <= 1 + 1e-12
    # Classes of one cluster stay together in both layers, and the second layer starts from the first:
    # each point's nearest neighbour in l1 is mostly a same-cluster class, and points move little.
    labels = np.arange(24) % 3
    for xy in out.values():
        d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(24) * 9
        assert (labels[d.argmin(1)] == labels).mean() > 0.9
    assert np.median(np.linalg.norm(out["l1"] - out["l0"], axis=1)) < 0.25
    again = embedding.embed_classes({"l0": a, "l1": noisy}, ["l0", "l1"], seed=3)
    np.testing.assert_allclose(again["l1"], out["l1"])
