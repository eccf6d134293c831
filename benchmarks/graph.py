"""Per-class attribution-graph time: this pipeline vs NetworkX PageRank on the same full graph.

    python -m benchmarks.graph [--classes=5] [--run_classes=10] [--workers=N]

Data: synthetic aggregates with InceptionV1's layers and Inception blocks (9 layers, 256..1024 channels,
5,484 nodes, ~245k edges per class, as SUMMIT's published full graphs). Influence counts are generated
before timing. Reported per class: ours (full graph from the counts incl. two-hop max-min,
personalized PageRank as a linear solve, selection with relax, SUMMIT JSON), igraph's PageRank
(ARPACK, incl. building its graph) on the same numbers, NetworkX PageRank alone on the same graph, and
NetworkX graph construction + PageRank. NetworkX 3's ``pagerank`` is SciPy power iteration; SUMMIT
(2019, NetworkX 2.x, 25-29 s per class) ran the pure-Python iteration, which NetworkX keeps as
``_pagerank_python``: it is timed on the first class. Then one whole run (HDF5 in, all JSON files out)
of ``--run_classes`` classes, with one process and with ``--workers``. The load average is printed before
and after each timed part.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np
from absl import flags
from networkx.algorithms.link_analysis.pagerank_alg import _pagerank_python

from benchmarks import machine
from summit_tf import store
from summit_tf.cli import entry_point, run_command
from summit_tf.graph import build, embedding, pagerank, prune
from summit_tf.graph.attribution import GraphConfig, attribution_graph
from summit_tf.graph.generate import generate
from synthetic import aggregates as synthetic

FLAGS = flags.FlagValues()
flags.DEFINE_integer("classes", 5, "classes timed one by one", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("run_classes", 10, "classes in the end-to-end run (HDF5 -> JSON files, with a "
                     "comparison of classes 0 and 1)", lower_bound=2, flag_values=FLAGS)
flags.DEFINE_integer("workers", os.cpu_count() or 1, "processes of the second end-to-end run", lower_bound=1,
                     flag_values=FLAGS)


def _materialize(agg: store.Aggregates, k: int) -> None:
    agg.I = {name: np.stack([counts[c] for c in range(k)]) for name, counts in agg.I.items()}


def _networkx(ag, reset: np.ndarray, pure_python: bool = False) -> tuple[float, float, np.ndarray]:
    t0 = time.perf_counter()
    g = nx.Graph()
    g.add_nodes_from(range(ag.structure.num_vertices))
    g.add_weighted_edges_from(zip(ag.full.hi.tolist(), ag.full.lo.tolist(), ag.full.weight.tolist(),
                                  strict=True))
    t1 = time.perf_counter()
    rank = _pagerank_python if pure_python else nx.pagerank
    pr = rank(g, alpha=0.85, personalization=dict(enumerate(reset.tolist())), weight="weight")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, np.array([pr[v] for v in range(ag.structure.num_vertices)])


def _scipy_cg(n: int, full: build.FullGraph, reset: np.ndarray, damping: float = 0.85) -> np.ndarray:
    """The same undirected personalized PageRank as SciPy's conjugate gradients on a CSR matrix of the
    symmetric normalized system (what the compiled loops replace), tolerance as ours."""
    from scipy import sparse
    from scipy.sparse.linalg import cg

    w = sparse.coo_matrix((full.weight.astype(np.float64), (full.hi, full.lo)), shape=(n, n)).tocsr()
    w = w + w.T
    degree = np.asarray(w.sum(axis=1)).ravel()
    inv = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0.0)
    system = sparse.identity(n, format="csr") - damping * (sparse.diags(inv) @ w @ sparse.diags(inv))
    p = reset / reset.sum()
    y, info = cg(system, p * inv, rtol=pagerank.TOLERANCE, atol=0.0)
    if info:
        raise RuntimeError("SciPy CG did not converge")
    z = np.where(degree > 0, np.sqrt(degree) * y, p)
    return z / z.sum()


def main(argv: list[str]) -> int:
    return run_command(FLAGS, argv, __doc__ or "", report, logs=False)


def report() -> None:
    k = FLAGS.classes
    agg = synthetic.inception_like(k, seed=0)
    _materialize(agg, k)
    st = build.structure(agg)
    attribution_graph(agg, 0, structure=st)  # warm-up (imports, caches)
    before = machine.load()
    print(f"{k} InceptionV1-shaped classes, {before}", flush=True)
    rows = []
    for c in range(k):
        t0 = time.perf_counter()
        ag = attribution_graph(agg, c, GraphConfig(), st)
        ag.to_json()
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = build.full_graph(agg, c, st)
        t_build = time.perf_counter() - t0
        reset = prune.personalization(st, {layer: agg.A[layer][c] for layer in st.layers},
                                       prune.graph_vertices(st.num_vertices, full))
        t0 = time.perf_counter()
        pagerank.personalized_pagerank(st.num_vertices, full.hi, full.lo, full.weight, reset,
                                       sides=st.layer_of % 2 == 0)  # as attribution_graph calls it
        t_pr = time.perf_counter() - t0
        t0 = time.perf_counter()
        scipy_values = _scipy_cg(st.num_vertices, full, reset)
        t_scipy = time.perf_counter() - t0
        scipy_diff = float(np.abs(scipy_values - ag.pagerank).max())
        t0 = time.perf_counter()
        pagerank.personalized_pagerank(st.num_vertices, full.hi, full.lo, full.weight, reset, method="igraph")
        t_ig = time.perf_counter() - t0
        nx_build, nx_pr, nx_values = _networkx(ag, reset)
        diff = float(np.abs(nx_values - ag.pagerank).max())
        rows.append((ours, t_build, t_ig, t_pr, nx_pr, nx_build, diff, full.num_edges,
                     int(ag.selection.kept.sum()), int(ag.selection.edges.sum()), t_scipy))
        print(f"class {c}: {full.num_edges} edges, kept {rows[-1][8]} nodes / {rows[-1][9]} edges | ours "
              f"{ours * 1e3:.0f} ms (full graph {t_build * 1e3:.0f}, PageRank {t_pr * 1e3:.0f}; igraph's "
              f"{t_ig * 1e3:.0f} incl. its graph; SciPy CG {t_scipy * 1e3:.0f}, diff {scipy_diff:.1e}) | "
              f"NetworkX PageRank {nx_pr * 1e3:.0f} ms, + graph build {(nx_pr + nx_build) * 1e3:.0f} ms | "
              f"max |PR diff| {diff:.1e}", flush=True)
    med = [statistics.median(r[i] for r in rows) for i in range(7)]
    print(f"median per class: ours {med[0] * 1e3:.0f} ms | our PageRank alone {med[3] * 1e3:.0f} ms, "
          f"igraph's {med[2] * 1e3:.0f} ms | NetworkX PageRank {med[4] * 1e3:.0f} ms "
          f"({med[4] / med[0]:.0f}x ours, "
          f"{med[4] / med[3]:.0f}x our PageRank) | NetworkX build + PageRank "
          f"{(med[4] + med[5]) * 1e3:.0f} ms ({(med[4] + med[5]) / med[0]:.0f}x ours)")
    t_scipy = statistics.median(r[10] for r in rows)
    with_scipy = med[0] - med[3] + t_scipy
    print(f"compiled PageRank vs SciPy CG on a CSR matrix: {med[3] * 1e3:.0f} vs {t_scipy * 1e3:.0f} ms; "
          f"the whole class would take {with_scipy * 1e3:.0f} ms instead of {med[0] * 1e3:.0f} ms "
          f"({with_scipy / med[0]:.2f}x); the classes timed under {machine.since(before)}")

    ag = attribution_graph(agg, 0, GraphConfig(), st)
    reset = prune.personalization(st, {layer: agg.A[layer][0] for layer in st.layers},
                                   prune.graph_vertices(st.num_vertices, ag.full))
    before = machine.load()
    _, py_pr, py_values = _networkx(ag, reset, pure_python=True)
    print(f"pure-Python NetworkX PageRank (SUMMIT's 2019 code path), class 0: {py_pr:.1f} s = "
          f"{py_pr / rows[0][0]:.0f}x ours for the whole class, {py_pr / rows[0][3]:.0f}x our PageRank; "
          f"max |PR diff| {np.abs(py_values - ag.pagerank).max():.1e} ({machine.since(before)})", flush=True)

    n = FLAGS.run_classes
    run = synthetic.inception_like(n, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.h5"
        store.save(path, run)
        with store.load(path) as loaded:
            t0 = time.perf_counter()
            embedding.embed_classes(loaded.A, loaded.layers, seed=0, min_umap_classes=16)
            print(f"class embedding of {n} classes, first call in the process (UMAP: imports, numba "
                  f"compilation): {time.perf_counter() - t0:.1f} s; the runs below reuse it", flush=True)
            for workers in sorted({1, FLAGS.workers}):
                before = machine.load()
                t0 = time.perf_counter()
                generate(loaded, f"{tmp}/out{workers}", loaded.classes.tolist(), [(0, 1)], GraphConfig(),
                         seed=0, umap_min_classes=16, workers=workers)
                total = time.perf_counter() - t0
                print(f"end-to-end run of {n} classes, {workers} worker(s) (HDF5 -> ag/*.json, classes.json, "
                      f"one comparison): {total:.1f} s, {total / n:.2f} s/class; 1,000 classes at this rate: "
                      f"{1000 * total / n / 60:.1f} min ({machine.since(before)})", flush=True)


if __name__ == "__main__":
    entry_point(main)()
