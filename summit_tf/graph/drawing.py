"""Attribution graphs as matplotlib figures: feature-vis images as nodes sized by count, edges as wide as
their influence (paper Fig. 1/7). Works on a graph object in a notebook or on a run's published files.
Skip edges (residual shortcuts, spanning more than one layer) are drawn curved and dashed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch

from summit_tf.graph.attribution import AttributionGraph

EDGE_COLOUR = "#868e96"
ImageOf = Callable[[str, int], np.ndarray | None]  # (layer, channel) -> [H, W, 3] image, or None


def _layout(layers: Sequence[str], nodes: dict[str, list[int]]) -> dict[tuple[str, int], tuple[float, float]]:
    """Rows by layer (first layer at the bottom), channels spread evenly and centred in each row."""
    widest = max((len(v) for v in nodes.values()), default=1)
    pos = {}
    for row, layer in enumerate(layers):
        chans = nodes.get(layer, [])
        offset = (widest - len(chans)) / 2
        for i, ch in enumerate(chans):
            pos[(layer, ch)] = (offset + i + 0.5, float(row))
    return pos


def draw_parts(ax: plt.Axes, layers: Sequence[str], nodes: dict[str, list[int]],
               edges: list[tuple[str, int, str, int, float, str]], node_colour: dict[tuple[str, int], str],
               counts: dict[tuple[str, int], float], image_of: ImageOf) -> None:
    """Draw nodes (rows by layer; an image where ``image_of`` has one, else a disc) and coloured edges
    ``(lower layer, channel, upper layer, channel, weight, colour)`` on ``ax``."""
    pos = _layout(layers, nodes)
    top_inf = max((e[4] for e in edges), default=1.0) or 1.0
    for lo_layer, lo, hi_layer, hi, inf, colour in edges:
        (x0, y0), (x1, y1) = pos[(lo_layer, lo)], pos[(hi_layer, hi)]
        width = 0.4 + 3.0 * inf / top_inf
        if y1 - y0 > 1:  # a skip edge: curved and dashed, so it never hides behind the layers it spans
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle="arc3,rad=0.35", arrowstyle="-",
                                         color=colour, alpha=0.55, lw=width, linestyle="--", zorder=1))
        else:
            ax.plot([x0, x1], [y0, y1], color=colour, alpha=0.55, lw=width, zorder=1)
    top_count = max(counts.values(), default=1.0) or 1.0
    for (layer, ch), (x, y) in pos.items():
        r = 0.22 + 0.18 * counts.get((layer, ch), 0.0) / top_count
        image = image_of(layer, ch)
        colour = node_colour.get((layer, ch), "#343a40")
        if image is not None:
            ax.imshow(image, extent=(x - r, x + r, y - r, y + r), zorder=2)
            ax.add_patch(plt.Rectangle((x - r, y - r), 2 * r, 2 * r, fill=False, ec=colour, lw=2, zorder=3))
        else:
            ax.add_patch(Circle((x, y), r, color=colour, zorder=2))
        ax.text(x, y - r - 0.04, str(ch), ha="center", va="top", fontsize=6, zorder=4)
    widest = max((len(v) for v in nodes.values()), default=1)
    ax.set_xlim(-0.5, widest + 0.5)
    ax.set_ylim(-0.8, len(layers) - 0.4)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xticks([])
    ax.set_aspect("equal")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)


def graph_parts(graph: Mapping[str, list[dict]], layers: Sequence[str]) -> tuple[dict, list, dict]:
    """Nodes per layer (largest count first), edges ``(lower layer, channel, upper layer, channel, inf)``
    (``prev_channels``, then ``skip_channels``, where ``layers`` has both ends) and counts of a graph in
    SUMMIT's JSON format.

    ``prev_channels`` are channels of the graph's layer below, the next key of ``graph`` (its layers run
    top-down), which a subset ``layers`` may leave out.
    """
    nodes = {layer: sorted((n["channel"] for n in graph.get(layer, [])),
                           key=lambda ch, layer=layer: -_count(graph, layer, ch)) for layer in layers}
    order = list(graph)
    below_of = dict(zip(order, order[1:], strict=False))
    edges = []
    for layer in layers:
        below = below_of.get(layer)
        for n in graph.get(layer, []):
            for p in n["prev_channels"] if below in layers else []:
                edges.append((below, int(p["prev_channel"]), layer, int(n["channel"]), float(p["inf"])))
            for p in n.get("skip_channels", []):
                if p["layer"] in layers:
                    edge = (p["layer"], int(p["prev_channel"]), layer, int(n["channel"]), float(p["inf"]))
                    edges.append(edge)
    counts = {(layer, n["channel"]): float(n["count"]) for layer in layers for n in graph.get(layer, [])}
    return nodes, edges, counts


def _count(graph: Mapping[str, list[dict]], layer: str, channel: int) -> int:
    return next(n["count"] for n in graph[layer] if n["channel"] == channel)


def draw_graph(graph: AttributionGraph | Mapping[str, list[dict]],
               images: Mapping[tuple[str, int], np.ndarray] | ImageOf | None = None,
               layers: Sequence[str] | None = None, title: str | None = None) -> plt.Figure:
    """A figure of one attribution graph (an :class:`AttributionGraph` or its ``to_json()`` dict).

    ``images`` maps ``(layer, channel)`` to a feature visualization (uint8 or [0, 1] floats; e.g. from
    ``feature_vis.render_channels``), or is a function returning one or None; nodes without an image are
    discs. ``layers`` (network order) defaults to the graph's own.
    """
    if isinstance(graph, AttributionGraph):
        title = title or f"Attribution graph: {graph.name} (class {graph.class_id})"
        layers = layers or graph.structure.layers
        graph = graph.to_json()
    layers = list(layers or reversed(list(graph)))
    if images is None or callable(images):
        image_of = images or (lambda layer, channel: None)
    else:
        image_of = lambda layer, channel: images.get((layer, channel))  # noqa: E731
    nodes, edges, counts = graph_parts(graph, layers)
    widest = max((len(v) for v in nodes.values()), default=1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * widest + 2), 0.9 * len(layers) + 1))
    draw_parts(ax, layers, nodes, [(*e, EDGE_COLOUR) for e in edges], {}, counts, image_of)
    if title:
        ax.set_title(title)
    return fig
