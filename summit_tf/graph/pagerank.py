"""Personalized PageRank of a class's full graph, solved as the linear system it is.

PageRank with damping ``a`` and reset ``p`` (summing to 1) is the solution of ``(I - a P^T) z = p``
normalized to sum 1, where ``P`` is the weighted random-walk matrix; walkers on a vertex without edges
out (a dangling vertex) restart at ``p``, as in NetworkX and igraph. Normalizing absorbs the dangling
mass: summing both sides gives ``1 / sum(z) = 1 - a + a * (dangling mass)``, exactly the restart the
dangling walkers add. Two solvers, each exact to ~1e-12 of igraph's and NetworkX's answer:

* undirected (SUMMIT's choice): with degrees ``d`` and ``z = D^1/2 y`` the system becomes
  ``(I - a D^-1/2 W D^-1/2) y = D^-1/2 p``, symmetric positive definite with condition number at most
  ``(1 + a) / (1 - a)`` (12.3 for 0.85), so conjugate gradients converge in ~50 sparse products to 1e-12;
  vertices without edges keep ``z = p``;
* directed (a channel -> its inputs): edges only run from a layer to the one below, so ``P`` is
  nilpotent and ``z = p + a P^T z`` is exact after as many sweeps as the graph has layers (for any other
  graph the same sweep is Jacobi iteration, run until it stops changing).

``method="igraph"`` calls igraph's ``personalized_pagerank`` (ARPACK) instead, on the same numbers.

Why not igraph by default (one InceptionV1-sized class of ``benchmarks/graph.py``: 5,484 vertices, 245k
edges, 2 shared CPU cores): igraph's ARPACK 196 ms plus 147 ms to build its graph, its PRPACK 646 ms;
this module 22 ms undirected (sparse matrix included; CG converges in 24 products), 26 ms directed. All
agree to 2e-16.
"""

from __future__ import annotations

import igraph
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

PAGERANK_METHODS = ("linear", "igraph")
TOLERANCE = 1e-12  # relative residual of the solve: far below NetworkX's and igraph's own tolerance


def personalized_pagerank(num_vertices: int, hi: np.ndarray, lo: np.ndarray, weight: np.ndarray,
                          reset: np.ndarray, damping: float = 0.85, directed: bool = False,
                          method: str = "linear") -> np.ndarray:
    """PageRank of every vertex (sums to 1) on weighted edges ``hi -> lo`` (both ways when undirected)."""
    if method not in PAGERANK_METHODS:
        raise ValueError(f"unknown PageRank method {method!r}; expected one of {', '.join(PAGERANK_METHODS)}")
    reset = np.asarray(reset, dtype=np.float64)
    if reset.shape != (num_vertices,) or (reset < 0).any() or reset.sum() <= 0:
        raise ValueError("reset must be non-negative, one entry per vertex, not all zero")
    p = reset / reset.sum()
    w = np.asarray(weight, dtype=np.float64)
    if method == "igraph":
        return _igraph(num_vertices, hi, lo, w, p, damping, directed)
    z = _directed(num_vertices, hi, lo, w, p, damping) if directed else \
        _undirected(num_vertices, hi, lo, w, p, damping)
    return z / z.sum()


def _undirected(n: int, hi: np.ndarray, lo: np.ndarray, w: np.ndarray, p: np.ndarray,
                damping: float) -> np.ndarray:
    degree = np.bincount(hi, w, n) + np.bincount(lo, w, n)
    live = degree > 0
    scale = np.zeros(n)
    scale[live] = 1.0 / np.sqrt(degree[live])
    half = _by_row(n, hi, lo, w * scale[hi] * scale[lo])  # each edge once; the transpose adds the other way
    system = spla.LinearOperator((n, n), matvec=lambda y: y - damping * (half @ y + half.T @ y),
                                 dtype=np.float64)
    y, info = spla.cg(system, p * scale, rtol=TOLERANCE, atol=0.0, maxiter=10 * n)
    if info:
        raise RuntimeError(f"PageRank: conjugate gradients did not converge ({info} iterations)")
    return np.where(live, np.sqrt(degree) * y, p)


def _by_row(n: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> sp.csr_array:
    """CSR matrix without SciPy's COO conversion: a stable sort by row (no work when already sorted,
    as full graphs are) and a bincount give the row pointers."""
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return sp.csr_array((values[order], cols[order], indptr), shape=(n, n))


def _directed(n: int, hi: np.ndarray, lo: np.ndarray, w: np.ndarray, p: np.ndarray,
              damping: float) -> np.ndarray:
    out = np.bincount(hi, w, n)[hi]
    share = np.divide(w, out, out=np.zeros_like(w), where=out > 0)
    walk = _by_row(n, lo, hi, damping * share)  # spreads z[hi] onto the inputs lo
    z = p.copy()
    for _ in range(10 * n):
        nxt = p + walk @ z
        if np.abs(nxt - z).sum() <= TOLERANCE * np.abs(nxt).sum():
            return nxt
        z = nxt
    raise RuntimeError("PageRank: the directed sweep did not converge")


def _igraph(n: int, hi: np.ndarray, lo: np.ndarray, w: np.ndarray, p: np.ndarray, damping: float,
            directed: bool) -> np.ndarray:
    g = igraph.Graph(n=n, edges=list(zip(hi.tolist(), lo.tolist(), strict=True)), directed=directed)
    pr = g.personalized_pagerank(directed=directed, damping=damping, reset=p.tolist(),
                                 weights=w.tolist() if w.size else None, implementation="arpack")
    return np.asarray(pr, dtype=np.float64)
