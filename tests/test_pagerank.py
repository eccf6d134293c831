"""Personalized PageRank solvers against a dense float64 reference, NetworkX and igraph."""

import networkx as nx
import numpy as np
import pytest

from summit_tf.graph.pagerank import personalized_pagerank


def _reference(n, hi, lo, w, reset, damping, directed):
    """Dense Google matrix: walk rows normalized, dangling rows restart at the reset; one linear solve."""
    walk = np.zeros((n, n))
    np.add.at(walk, (hi, lo), w)
    if not directed:
        np.add.at(walk, (lo, hi), w)
    p = reset / reset.sum()
    out = walk.sum(axis=1)
    rows = np.where(out[:, None] > 0, walk / np.where(out > 0, out, 1)[:, None], p[None, :])
    return np.linalg.solve(np.eye(n) - damping * rows.T, (1 - damping) * p)


def _random_graph(rng, n, m, layered):
    """Random weighted edges; ``layered`` points them from a higher to a lower vertex block (a DAG)."""
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    if layered:  # vertices in blocks of 7; edges only from a higher block to a lower one
        hi, lo = np.maximum(a, b), np.minimum(a, b)
        ok = hi // 7 > lo // 7
    else:
        hi, lo = a, b
        ok = a != b
    hi, lo = hi[ok], lo[ok]
    key = np.unique(hi * n + lo)  # one edge per ordered pair, as a full graph has
    hi, lo = key // n, key % n
    return hi, lo, rng.integers(1, 50, hi.size).astype(np.float64)


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("layered", [False, True])
@pytest.mark.parametrize("damping", [0.85, 0.5, 0.97])
def test_linear_solver_matches_dense_reference(directed, layered, damping):
    rng = np.random.default_rng(7 + directed + 2 * layered)
    n = 211
    hi, lo, w = _random_graph(rng, n, 900, layered)
    reset = rng.random(n) * (rng.random(n) < 0.6)  # zeros in the reset too
    got = personalized_pagerank(n, hi, lo, w, reset, damping, directed)
    want = _reference(n, hi, lo, w, reset, damping, directed)
    assert got.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("directed", [False, True])
def test_isolated_vertices_and_no_edges(directed):
    rng = np.random.default_rng(3)
    n = 37
    hi, lo, w = _random_graph(rng, 20, 40, layered=False)  # vertices 20..36 have no edges
    reset = rng.random(n) + 0.1
    got = personalized_pagerank(n, hi, lo, w, reset, 0.85, directed)
    np.testing.assert_allclose(got, _reference(n, hi, lo, w, reset, 0.85, directed), rtol=1e-9, atol=1e-14)
    empty = np.zeros(0, dtype=np.int64)
    alone = personalized_pagerank(n, empty, empty, np.zeros(0), reset, 0.85, directed)
    np.testing.assert_allclose(alone, reset / reset.sum(), rtol=1e-12)


@pytest.mark.parametrize("directed", [False, True])
def test_matches_networkx_and_igraph(directed):
    rng = np.random.default_rng(11)
    n = 143
    hi, lo, w = _random_graph(rng, n, 700, layered=True)
    reset = rng.random(n)
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    g.add_weighted_edges_from(zip(hi.tolist(), lo.tolist(), w.tolist(), strict=True))
    pr = nx.pagerank(g, alpha=0.85, personalization=dict(enumerate(reset)), weight="weight", tol=1e-14,
                     max_iter=100_000)
    want = np.array([pr[v] for v in range(n)])
    linear = personalized_pagerank(n, hi, lo, w, reset, 0.85, directed, "linear")
    via_igraph = personalized_pagerank(n, hi, lo, w, reset, 0.85, directed, "igraph")
    np.testing.assert_allclose(linear, want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(via_igraph, linear, rtol=0, atol=1e-12)


def test_bad_input():
    one = np.array([1])
    with pytest.raises(ValueError, match="unknown PageRank method"):
        personalized_pagerank(2, one, one - 1, one * 1.0, np.ones(2), method="power")
    with pytest.raises(ValueError, match="reset"):
        personalized_pagerank(2, one, one - 1, one * 1.0, np.zeros(2))
    with pytest.raises(ValueError, match="reset"):
        personalized_pagerank(2, one, one - 1, one * 1.0, np.ones(3))
    with pytest.raises(ValueError, match="vertex ids in 0..1"):
        personalized_pagerank(2, one + 1, one - 1, one * 1.0, np.ones(2))
    with pytest.raises(ValueError, match="vertex ids in 0..1"):
        personalized_pagerank(2, one, one - 2, one * 1.0, np.ones(2), directed=True)
    with pytest.raises(ValueError, match="one length"):
        personalized_pagerank(2, one, one - 1, np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="sides"):
        personalized_pagerank(2, one, one - 1, one * 1.0, np.ones(2), sides=np.array([True, True]))
    with pytest.raises(ValueError, match="sides"):
        personalized_pagerank(2, one, one - 1, one * 1.0, np.ones(2), sides=np.array([True]))


@pytest.mark.parametrize("damping", [0.85, 0.5, 0.97])
def test_two_sided_solve_matches_dense_reference(damping):
    """Edges only between consecutive blocks of 7 vertices (a layered graph): even and odd blocks are the
    two sides; isolated vertices and zero resets included, edges in any order."""
    rng = np.random.default_rng(19)
    n = 7 * 31 + 4  # the last 4 vertices are a block without edges
    block = np.arange(n) // 7
    a, b = rng.integers(0, n - 4, 2000), rng.integers(0, n - 4, 2000)
    ok = np.abs(block[a] - block[b]) == 1
    key = np.unique(np.maximum(a[ok], b[ok]) * n + np.minimum(a[ok], b[ok]))
    order = rng.permutation(key.size)
    hi, lo = key[order] // n, key[order] % n
    w = rng.integers(1, 50, hi.size).astype(np.float64)
    reset = rng.random(n) * (rng.random(n) < 0.7)
    sides = block % 2 == 0
    got = personalized_pagerank(n, hi, lo, w, reset, damping, sides=sides)
    np.testing.assert_allclose(got, _reference(n, hi, lo, w, reset, damping, False), rtol=1e-9, atol=1e-13)
    for other in (personalized_pagerank(n, hi, lo, w, reset, damping),
                  personalized_pagerank(n, hi, lo, w, reset, damping, sides=~sides)):
        np.testing.assert_allclose(got, other, rtol=1e-10, atol=1e-15)
