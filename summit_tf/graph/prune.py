"""Which nodes and edges of a full graph a class's attribution graph keeps (SUMMIT paper, section 6.3),
as the original code did it.

* Vertices: SUMMIT built its NetworkX graph from edges, so only a channel with at least one edge in the
  class's full graph is a node (:func:`graph_vertices`); the others get no reset weight, no PageRank and
  are never kept.
* Nodes: per layer the top nodes holding a share (``node_mass``) of that layer's PageRank mass are kept,
  the node that crosses the share included.
* Relaxing: while a layer above the first has no *connecting* edge (a full-graph edge whose two ends are
  kept) down to the layer below, that layer's share and the share of the layer below grow by
  ``relax_step``; when both already hold everything, the next layer further down grows instead (the
  original could loop forever there).
* Edges written out (``prev_channels``): connecting edges whose lower end itself has a connecting edge
  downward (or lies in the first layer). SUMMIT applied this one-level check only when writing its JSON,
  never to decide whether to relax.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from summit_tf.graph.build import FullGraph, Structure

log = logging.getLogger(__name__)


def graph_vertices(num_vertices: int, full: FullGraph) -> np.ndarray:
    """Mask of the vertices with at least one edge in the class's full graph: the nodes of SUMMIT's graph."""
    present = np.zeros(num_vertices, dtype=bool)
    hi, lo, _ = full.all_edges()
    present[hi] = True
    present[lo] = True
    return present


def personalization(st: Structure, activation: dict[str, np.ndarray],
                    present: np.ndarray | None = None) -> np.ndarray:
    """Reset weights ``A_l[j] / max_j' A_l[j']`` per layer, so every layer gets a comparable share.

    Excluded channels do not count for the maximum; channels outside ``present`` (default: every vertex)
    get no reset weight, though their counts still set the maximum, as in SUMMIT. A layer whose counts
    are all zero contributes no reset weight. If nothing has weight the reset is uniform over ``present``
    (over every vertex when nothing is present: a class without images has no edges and keeps nothing).
    """
    present = np.ones(st.num_vertices, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    if present.shape != (st.num_vertices,):
        raise ValueError(f"present must hold one bool per vertex ({st.num_vertices}), got {present.shape}")
    reset = np.zeros(st.num_vertices, dtype=np.float64)
    for layer in st.layers:
        ids = st.vertex[layer]
        a = np.asarray(activation[layer], dtype=np.float64)[ids >= 0]
        top = a.max(initial=0.0)
        if top > 0:
            reset[ids[ids >= 0]] = a / top
    reset[~present] = 0.0
    if not reset.any():
        reset[present if present.any() else slice(None)] = 1.0
    return reset


def top_mass(values: np.ndarray, mass: float) -> np.ndarray:
    """Mask of the largest values until they hold ``mass`` of the total (the crossing value kept).

    Ties are broken by position (lower first) so results are deterministic.
    """
    keep = np.zeros(values.size, dtype=bool)
    total = values.sum()
    if mass >= 1:
        keep[:] = True
        return keep
    if values.size == 0 or mass <= 0 or total <= 0:
        return keep
    order = np.argsort(-values, kind="stable")
    share = np.cumsum(values[order]) / total
    count = min(int(np.searchsorted(share, mass, side="left")) + 1, values.size)
    keep[order[:count]] = True
    return keep


def connecting_edges(full: FullGraph, kept: np.ndarray) -> np.ndarray:
    """Ids of the full-graph edges whose two ends are kept, ascending.

    Only the edges of kept upper ends are looked at: they are contiguous, full graphs being sorted by ``hi``.
    """
    upper = np.flatnonzero(kept)
    first = np.searchsorted(full.hi, upper, side="left")
    count = np.searchsorted(full.hi, upper, side="right") - first
    # The concatenated ranges first[v] .. first[v] + count[v]: each range's start minus its offset in the
    # concatenation, repeated over the range, plus a running position.
    candidates = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    return candidates[kept[full.lo[candidates]]]


def written_edges(st: Structure, full: FullGraph, connecting: np.ndarray) -> np.ndarray:
    """Mask of the edges SUMMIT writes as ``prev_channels``: connecting edges whose lower end has a
    connecting edge downward itself, unless it lies in the first layer (checked one level down only)."""
    has_down = np.zeros(st.num_vertices, dtype=bool)
    has_down[full.hi[connecting]] = True
    has_down[st.layer_vertices(0)] = True
    mask = np.zeros(full.num_edges, dtype=bool)
    mask[connecting[has_down[full.lo[connecting]]]] = True
    return mask


@dataclass
class Pruning:
    """Kept vertices, written edges (``prev_channels``), and the per-layer mass shares that produced them.

    ``disconnected`` names the layers left without a connecting edge downward even after relaxing.
    """

    kept: np.ndarray
    edges: np.ndarray
    masses: dict[str, float]
    relax_rounds: int
    disconnected: list[str]


def _raise_masses(steps: np.ndarray, bad: list[int], node_mass: float, relax_step: float) -> bool:
    """Add one step to each bad layer and the layer below it; where both are already full, to the first
    non-full layer further down (the missing connection can only come from there). False if nothing grew.
    """
    full = node_mass + steps * relax_step >= 1.0
    grew = False
    for index in bad:
        targets = [i for i in (index, index - 1) if not full[i]]
        if not targets:
            targets = [i for i in range(index - 2, -1, -1) if not full[i]][:1]
        for i in targets:
            steps[i] += 1
            grew = True
    return grew


def prune(st: Structure, full: FullGraph, pr: np.ndarray, node_mass: float, relax_step: float,
          present: np.ndarray | None = None) -> Pruning:
    """Apply the per-layer mass rule to the ``present`` vertices (default: :func:`graph_vertices`),
    relaxing until every layer above the first has a connecting edge downward."""
    present = graph_vertices(st.num_vertices, full) if present is None else np.asarray(present, dtype=bool)
    steps = np.zeros(len(st.layers), dtype=np.int64)
    members = [ids[present[ids]] for ids in (st.layer_vertices(i) for i in range(len(st.layers)))]
    linked = np.diff(full.pair_start) > 0  # a layer pair without edges cannot be repaired by relaxing
    rounds = 0
    while True:
        masses = np.minimum(1.0, np.round(node_mass + steps * relax_step, 12))
        kept = np.zeros(st.num_vertices, dtype=bool)
        for index, ids in enumerate(members):
            kept[ids[top_mass(pr[ids], masses[index])]] = True
        connecting = connecting_edges(full, kept)
        down = np.zeros(len(st.layers), dtype=bool)
        down[st.layer_of[full.hi[connecting]]] = True
        bad = [i for i in range(1, len(st.layers)) if linked[i] and not down[i]]
        if not bad or relax_step <= 0 or not _raise_masses(steps, bad, node_mass, relax_step):
            break
        rounds += 1
    if bad:
        log.warning("layers %s have no kept edge downward even after relaxing",
                    ", ".join(st.layers[i] for i in bad))
    shares = dict(zip(st.layers, masses.tolist(), strict=True))
    return Pruning(kept, written_edges(st, full, connecting), shares, rounds, [st.layers[i] for i in bad])
