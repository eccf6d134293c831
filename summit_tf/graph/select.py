"""Which nodes and edges of a full graph a class's attribution graph keeps (SUMMIT paper, section 6.3).

Personalized PageRank ranks every channel; per layer the top channels holding a share (``node_mass``) of
that layer's PageRank mass are kept, the channel that crosses the share included. An edge is kept when
both ends are kept and its lower end itself has an edge down to a kept channel (or lies in the first
layer): SUMMIT checked this one level down, so a kept edge may end at a channel whose own inputs were not
kept further below. While a layer above the first
has no kept edge downward, that layer's share and the share of the layer below grow by ``relax_step``
(when both already hold everything, the next layer further down grows instead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from summit_tf.graph.build import FullGraph, Structure

log = logging.getLogger(__name__)


def personalization(st: Structure, activation: dict[str, np.ndarray]) -> np.ndarray:
    """Reset weights ``A_l[j] / max_j' A_l[j']`` per layer, so every layer gets a comparable share.

    Excluded channels are not vertices and do not count for the maximum; a layer whose counts are all
    zero contributes no reset weight. If no layer has a count the reset is uniform.
    """
    reset = np.zeros(st.num_vertices, dtype=np.float64)
    for layer in st.layers:
        ids = st.vertex[layer]
        a = np.asarray(activation[layer], dtype=np.float64)[ids >= 0]
        top = a.max(initial=0.0)
        if top > 0:
            reset[ids[ids >= 0]] = a / top
    if not reset.any():
        reset[:] = 1.0
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


def kept_edges(st: Structure, full: FullGraph, kept: np.ndarray) -> np.ndarray:
    """Mask of kept edges: both ends kept, and the lower end has a kept-to-kept edge downward itself
    unless it lies in the first layer (SUMMIT's rule, checked one level down).

    Only the edges of kept upper ends are looked at: they are contiguous, full graphs being sorted by ``hi``.
    """
    upper = np.flatnonzero(kept)
    first = np.searchsorted(full.hi, upper, side="left")
    count = np.searchsorted(full.hi, upper, side="right") - first
    # The concatenated ranges first[v] .. first[v] + count[v]: each range's start minus its offset in the
    # concatenation, repeated over the range, plus a running position.
    candidates = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    candidates = candidates[kept[full.lo[candidates]]]
    has_down = np.zeros(st.num_vertices, dtype=bool)
    has_down[full.hi[candidates]] = True
    has_down[st.layer_vertices(0)] = True
    mask = np.zeros(full.num_edges, dtype=bool)
    mask[candidates[has_down[full.lo[candidates]]]] = True
    return mask


@dataclass
class Selection:
    """Kept vertices and edges, and the per-layer mass shares that produced them."""

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


def select(st: Structure, full: FullGraph, pr: np.ndarray, node_mass: float, relax_step: float) -> Selection:
    """Apply the per-layer mass rule, relaxing until every layer above the first connects downward."""
    steps = np.zeros(len(st.layers), dtype=np.int64)
    members = [st.layer_vertices(i) for i in range(len(st.layers))]
    linked = np.diff(full.pair_start) > 0  # a layer pair without edges cannot be repaired by relaxing
    rounds = 0
    while True:
        masses = np.minimum(1.0, np.round(node_mass + steps * relax_step, 12))
        kept = np.zeros(st.num_vertices, dtype=bool)
        for index, ids in enumerate(members):
            kept[ids[top_mass(pr[ids], masses[index])]] = True
        edges = kept_edges(st, full, kept)
        down = np.zeros(len(st.layers), dtype=bool)
        down[st.layer_of[full.hi[edges]]] = True
        bad = [i for i in range(1, len(st.layers)) if linked[i] and not down[i]]
        if not bad or relax_step <= 0 or not _raise_masses(steps, bad, node_mass, relax_step):
            break
        rounds += 1
    if bad:
        log.warning("layers %s have no kept edge downward even after relaxing",
                    ", ".join(st.layers[i] for i in bad))
    return Selection(kept, edges, dict(zip(st.layers, masses.tolist(), strict=True)), rounds,
                     [st.layers[i] for i in bad])
