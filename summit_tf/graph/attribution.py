"""The Python API: one class's attribution graph as an igraph Graph plus SUMMIT's JSON.

>>> with store.load("run.h5") as agg:
...     ag = attribution_graph(agg, 270)
...     ag.graph.vs.select(kept=True)["name"], ag.to_json()["mixed5b"][0]["prev_channels"]

``to_json()`` is SUMMIT's published ``ag-<class>.json`` format: a dict keyed by layer from the last to the
first; per kept channel (ascending channel order) ``channel``, ``count`` (A: images in which the channel
was among the class's top activations), ``layer``, ``pagerank``, ``prev_channels`` (the kept edges down to
kept channels of the layer below: ``{"prev_channel": int, "inf": int}``, strongest first) and
``attr_channels`` (the channel's ``attr_k`` strongest direct inputs whatever was kept: channels of the layer
below for a direct link, of the inner space, e.g. the 3x3 bottleneck, for a two-hop link; ``prev_channel``
is a string there, as in SUMMIT's files). Runs with skip links (residual networks) add one field per
channel, ``skip_channels``: the kept skip edges down to kept channels of earlier layers, ``{"layer": str,
"prev_channel": int, "inf": int}``, strongest first; the other keys keep SUMMIT's meaning (consecutive
layers only), so the original front end still reads the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from summit_tf import imagenet
from summit_tf.graph import build, pagerank, prune
from summit_tf.store import Aggregates

if TYPE_CHECKING:  # igraph imports matplotlib (~1 s): loaded on first use, not by every worker and CLI
    import igraph


@dataclass(frozen=True)
class GraphConfig:
    """Selection parameters; defaults are SUMMIT's published ones."""

    node_mass: float = 0.075
    relax_step: float = 0.005
    directed: bool = False
    damping: float = 0.85
    attr_k: int = 3
    pagerank_method: str = "linear"

    def __post_init__(self) -> None:
        if not 0 < self.node_mass <= 1:
            raise ValueError(f"node_mass must be in (0, 1], got {self.node_mass}")
        if not 0 <= self.relax_step <= 1:
            raise ValueError(f"relax_step must be in [0, 1], got {self.relax_step}")
        if not 0 < self.damping < 1:
            raise ValueError(f"damping must be in (0, 1), got {self.damping}")
        if self.attr_k < 0:
            raise ValueError(f"attr_k must be >= 0, got {self.attr_k}")
        if self.pagerank_method not in pagerank.PAGERANK_METHODS:
            raise ValueError(f"pagerank_method must be one of {', '.join(pagerank.PAGERANK_METHODS)}, "
                             f"got {self.pagerank_method!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AttributionGraph:
    """One class's full graph (edge arrays in ``full``; as igraph in ``graph``) and the selection on it."""

    class_id: int
    num_images: int
    config: GraphConfig
    structure: build.Structure
    full: build.FullGraph
    pagerank: np.ndarray
    count: np.ndarray
    selection: prune.Pruning

    @property
    def name(self) -> str:
        return imagenet.short_name(self.class_id)

    @cached_property
    def graph(self) -> igraph.Graph:
        """The full graph as igraph, built on first use (the JSON exports never need it).

        Vertex attributes: ``name`` (``layer:channel``), ``layer``, ``channel``, ``count``, ``pagerank``,
        ``kept``; edge attributes: ``weight``, ``kept``. Edges join a channel (source) to an input channel
        of the layer below (target); directed when the PageRank was.
        """
        import igraph

        st, full = self.structure, self.full
        hi, lo, weight = full.all_edges()
        # A list of int pairs is igraph's fastest input (2-4x faster than a NumPy edge array in igraph 1.0).
        edges = list(zip(hi.tolist(), lo.tolist(), strict=True))
        g = igraph.Graph(n=st.num_vertices, edges=edges, directed=self.config.directed)
        layers = [st.layers[li] for li in st.layer_of.tolist()]
        g.vs["name"] = [f"{layer}:{c}" for layer, c in zip(layers, st.channel_of.tolist(), strict=True)]
        g.vs["layer"] = layers
        g.vs["channel"] = st.channel_of.tolist()
        g.vs["count"] = self.count.tolist()
        g.vs["pagerank"] = self.pagerank.tolist()
        g.vs["kept"] = self.selection.kept.tolist()
        g.es["weight"] = weight.tolist()
        g.es["kept"] = self.kept_all_edges.tolist()
        g.es["skip"] = [False] * full.num_edges + [True] * int(full.skip_weight.size)
        return g

    @cached_property
    def kept_skips(self) -> np.ndarray:
        """Mask of the kept skip edges (``full.skip_*``): both ends kept."""
        kept = self.selection.kept
        return kept[self.full.skip_hi] & kept[self.full.skip_lo]

    @cached_property
    def kept_all_edges(self) -> np.ndarray:
        """Kept mask over ``full.all_edges()``: the layer pairs' edges, then the skip edges."""
        return np.concatenate([self.selection.edges, self.kept_skips])

    def kept_nodes(self) -> list[tuple[str, int]]:
        """``(layer, channel)`` of kept nodes, network order then channel order."""
        st = self.structure
        ids = np.flatnonzero(self.selection.kept)
        return [(st.layers[st.layer_of[v]], int(st.channel_of[v])) for v in ids]

    def kept_edge_list(self) -> list[tuple[str, int, str, int, int]]:
        """``(layer, channel, prev_layer, prev_channel, weight)`` of kept edges (skip edges last)."""
        st, full = self.structure, self.full
        out = []
        kept = [(full.hi, full.lo, full.weight, self.selection.edges),
                (full.skip_hi, full.skip_lo, full.skip_weight, self.kept_skips)]
        for his, los, weights, mask in kept:
            for e in np.flatnonzero(mask):
                hi, lo = his[e], los[e]
                out.append((st.layers[st.layer_of[hi]], int(st.channel_of[hi]),
                            st.layers[st.layer_of[lo]], int(st.channel_of[lo]), int(weights[e])))
        return out

    def subgraph(self) -> igraph.Graph:
        """The attribution graph itself: kept vertices and kept edges only."""
        g = self.graph.subgraph_edges(self.graph.es.select(kept=True), delete_vertices=False)
        return g.induced_subgraph(g.vs.select(kept=True))

    def attr_channels(self, layer: str, channel: int) -> list[tuple[int, int]]:
        """The ``attr_k`` strongest direct inputs ``(input channel, count)`` of a channel, strongest first."""
        return self._strongest_inputs(layer, np.array([channel])).get(channel, [])

    def _strongest_inputs(self, layer: str, channels: np.ndarray) -> dict[int, list[tuple[int, int]]]:
        """:meth:`attr_channels` of several channels of one layer, one sort per hop (a channel that several
        hops reach reports the first hop's inputs, in offset order)."""
        st = self.structure
        dropped = st.vertex[st.layers[st.layers.index(layer) - 1]] < 0
        out = {}
        for hop, counts in self.full.inputs.get(layer, []):
            mine = channels[(channels >= hop.offset) & (channels < hop.offset + hop.cout)]
            rows = counts[mine - hop.offset]
            if not hop.inner:
                rows[:, dropped] = 0
            order = np.argsort(-rows, axis=1, kind="stable")[:, : self.config.attr_k]
            values = np.take_along_axis(rows, order, axis=1)
            for c, inputs, counts_ in zip(mine.tolist(), order.tolist(), values.tolist(), strict=True):
                out.setdefault(c, [(i, n) for i, n in zip(inputs, counts_, strict=True) if n > 0])
        return out

    def to_json(self) -> dict:
        """SUMMIT's ``ag-<class>.json`` dict (see the module docstring)."""
        st, full, sel = self.structure, self.full, self.selection
        kept = np.flatnonzero(sel.edges)
        hi, lo, weight = full.hi[kept], st.channel_of[full.lo[kept]], full.weight[kept]
        order = np.lexsort((lo, -weight, hi))  # per channel: strongest first, then the lower input
        prev: dict[int, list[tuple[int, int]]] = {}
        for h, c, w in zip(hi[order].tolist(), lo[order].tolist(), weight[order].tolist(), strict=True):
            prev.setdefault(h, []).append((c, w))
        skip: dict[int, list[dict]] = {}
        mask = self.kept_skips
        s_hi, s_lo, s_w = full.skip_hi[mask], full.skip_lo[mask], full.skip_weight[mask]
        for e in np.lexsort((s_lo, -s_w, s_hi)).tolist():
            skip.setdefault(int(s_hi[e]), []).append({"layer": st.layers[st.layer_of[s_lo[e]]],
                                                      "prev_channel": int(st.channel_of[s_lo[e]]),
                                                      "inf": int(s_w[e])})
        out = {}
        for index in range(len(st.layers) - 1, -1, -1):
            layer = st.layers[index]
            vertices = st.layer_vertices(index)
            vertices = vertices[sel.kept[vertices]]
            channels = st.channel_of[vertices]
            attr = self._strongest_inputs(layer, channels) if index else {}
            out[layer] = [{
                "channel": c,
                "count": n,
                "layer": layer,
                "pagerank": p,
                "prev_channels": [{"prev_channel": pc, "inf": w} for pc, w in prev.get(v, [])],
                "attr_channels": [{"prev_channel": str(ac), "inf": w} for ac, w in attr.get(c, [])],
                **({"skip_channels": skip.get(v, [])} if st.skips else {}),
            } for v, c, n, p in zip(vertices.tolist(), channels.tolist(), self.count[vertices].tolist(),
                                    self.pagerank[vertices].tolist(), strict=True)]
        return out


def attribution_graph(agg: Aggregates, class_id: int, config: GraphConfig | None = None,
                      structure: build.Structure | None = None,
                      counts: dict[str, np.ndarray] | None = None) -> AttributionGraph:
    """Build, rank and prune the attribution graph of ``class_id`` (pass ``structure`` to reuse it, and
    ``counts`` from :func:`build.class_counts` when the class's influence rows are already read)."""
    config = config or GraphConfig()
    st = structure or build.structure(agg)
    slot = agg.slot(class_id)
    full = build.full_graph(agg, class_id, st, counts)
    activation = {layer: agg.A[layer][slot] for layer in st.layers}
    present = prune.graph_vertices(st.num_vertices, full)
    reset = prune.personalization(st, activation, present)
    hi, lo, weight = full.all_edges()  # skip edges span several layers: the two-sided solve needs none
    sides = st.layer_of % 2 == 0 if not full.skip_weight.size else None
    pr = pagerank.personalized_pagerank(st.num_vertices, hi, lo, weight, reset, config.damping,
                                        config.directed, config.pagerank_method, sides=sides)
    sel = prune.prune(st, full, pr, config.node_mass, config.relax_step, present)
    count = np.concatenate([np.asarray(activation[layer])[st.vertex[layer] >= 0] for layer in st.layers])
    return AttributionGraph(class_id, int(agg.class_count[slot]), config, st, full, pr, count, sel)
