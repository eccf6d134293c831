"""The full attribution graph of one class: every channel a node, influence counts as edge weights.

Vertices are numbered once per run (:class:`Structure`); edges are NumPy arrays grouped by layer pair, so
a 245k-edge graph is built without per-edge Python work. How each SUMMIT layer's channels connect to the
previous layer is read from the links in the aggregates:

* a *direct* link (``src`` is the previous SUMMIT layer) gives edge ``(i, dst_offset + j)`` the weight
  ``I[c, j, i]``;
* a *two-hop* link (``src`` is an inner space such as ``mixed4b/3x3_bottleneck``, reached from the previous
  layer by one or more links) gives ``max_b min(I_branch[c, j, b], I_inner[c, b, i])``, the strongest path
  through the inner space, keeping per channel only as many edges as a direct-link channel of that layer
  has on average (SUMMIT's rule, which stops dense two-hop rows from dominating PageRank).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from summit_tf.store import Aggregates

log = logging.getLogger(__name__)


def parse_excluded(value: object, channels: dict[str, int]) -> dict[str, np.ndarray]:
    """Excluded channels as sorted arrays per layer, from a dict or a ``"l1:3,4;l2:7"`` string.

    Layers that are not SUMMIT layers of the run and channels out of range raise ``ValueError``.
    """
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        parsed: dict[str, list[int]] = {}
        for part in value.split(";"):
            part = part.strip()
            if not part:
                continue
            layer, sep, chans = part.rpartition(":")
            if not sep or not layer:
                raise ValueError(f"exclude_channels: expected 'layer:c1,c2', got {part!r}")
            parsed.setdefault(layer.strip(), []).extend(int(c) for c in chans.split(",") if c.strip())
        value = parsed
    if not isinstance(value, dict):
        raise ValueError(f"exclude_channels must be a dict or a string, got {type(value).__name__}")
    out = {}
    for layer, chans in value.items():
        if layer not in channels:
            raise ValueError(f"exclude_channels: unknown layer {layer!r} (layers: {', '.join(channels)})")
        arr = np.unique(np.asarray(list(chans), dtype=np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= channels[layer]):
            raise ValueError(f"exclude_channels: channel out of range for {layer} ({channels[layer]})")
        out[layer] = arr
    return out


@dataclass(frozen=True)
class Hop:
    """Channels ``offset .. offset + cout`` of a layer and the links that join them to the layer below.

    ``inner`` is empty for a direct link; otherwise it names the links from the previous layer into the
    inner space that ``link`` reads (their counts are combined by element-wise max).
    """

    link: str
    offset: int
    cout: int
    inner: tuple[str, ...] = ()


@dataclass
class Structure:
    """Class-independent layout of a run's graph: vertex numbering, exclusions and hops per layer."""

    layers: list[str]
    channels: dict[str, int]
    excluded: dict[str, np.ndarray]
    vertex: dict[str, np.ndarray]
    layer_of: np.ndarray
    channel_of: np.ndarray
    hops: dict[str, list[Hop]]
    ignored_links: list[str]

    @property
    def num_vertices(self) -> int:
        return int(self.layer_of.size)

    def layer_vertices(self, index: int) -> np.ndarray:
        """Vertex ids of layer ``index`` (excluded channels have none), in channel order."""
        v = self.vertex[self.layers[index]]
        return v[v >= 0]

    def name(self, vertex: int) -> str:
        return f"{self.layers[self.layer_of[vertex]]}:{self.channel_of[vertex]}"


def structure(agg: Aggregates) -> Structure:
    """Number the vertices (layer by layer, excluded channels left out) and place every link."""
    layers = list(agg.layers)
    channels = agg.channels
    excluded = parse_excluded(agg.config.get("exclude_channels"), channels)
    vertex, layer_of, channel_of = {}, [], []
    start = 0
    for index, layer in enumerate(layers):
        keep = np.ones(channels[layer], dtype=bool)
        keep[excluded.get(layer, np.zeros(0, np.int64))] = False
        ids = np.full(channels[layer], -1, dtype=np.int64)
        ids[keep] = np.arange(start, start + int(keep.sum()))
        start += int(keep.sum())
        vertex[layer] = ids
        layer_of.append(np.full(int(keep.sum()), index, dtype=np.int64))
        channel_of.append(np.flatnonzero(keep))
    hops, ignored = _place_links(agg, layers)
    return Structure(layers, channels, excluded, vertex, np.concatenate(layer_of), np.concatenate(channel_of),
                     hops, ignored)


def _place_links(agg: Aggregates, layers: list[str]) -> tuple[dict[str, list[Hop]], list[str]]:
    position = {layer: i for i, layer in enumerate(layers)}
    hops: dict[str, list[Hop]] = {layer: [] for layer in layers}
    used, ignored = set(), []
    for name, info in sorted(agg.links.items()):
        if info.dst not in position or position[info.dst] == 0:
            continue
        prev = layers[position[info.dst] - 1]
        shape = tuple(agg.I[name].shape)
        if info.src == prev:
            hops[info.dst].append(Hop(name, info.dst_offset, shape[1]))
            used.add(name)
        elif info.src not in position:
            inner = tuple(sorted(n for n, i in agg.links.items() if i.dst == info.src and i.src == prev))
            if inner:
                hops[info.dst].append(Hop(name, info.dst_offset, shape[1], inner))
                used.update((name, *inner))
    for name, info in sorted(agg.links.items()):
        if name not in used:
            ignored.append(name)
            log.warning("link %s (%s -> %s) does not join consecutive SUMMIT layers; ignored in graphs",
                        name, info.src, info.dst)
    for layer in layers:
        hops[layer].sort(key=lambda h: h.offset)
        covered = np.zeros(agg.channels[layer], dtype=np.int64)
        for h in hops[layer]:
            if h.offset < 0 or h.offset + h.cout > covered.size:
                raise ValueError(f"link {h.link}: rows {h.offset}..{h.offset + h.cout} outside {layer}")
            covered[h.offset:h.offset + h.cout] += 1
        if covered.max(initial=0) > 1:
            log.info("%s: channels reached by several links; their edge weights are max-combined", layer)
    return hops, ignored


MAXMIN_BLOCK = 1 << 21  # elements of one block of path values (4 MiB in int16): cache-friendly


def maxmin(branch: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``W[j, i] = max_b min(branch[j, b], inner[b, i])`` for non-negative integer counts, as int32.

    Only paths through non-zero ``inner[b, i]`` can count, and inner rows are sparse (an inner channel
    has a few dozen non-zero inputs): per input ``i`` the branch columns of its non-zero ``b`` are
    gathered, padded to a common length within a block of inputs with similar counts, and reduced in
    one NumPy pass (int16 when the counts allow). On InceptionV1-sized counts (``benchmarks/graph.py``)
    this is 2.1x faster than a dense loop over ``b`` and never does more work than it.
    """
    top = max(int(branch.max(initial=0)), int(inner.max(initial=0)))
    dtype = np.int16 if top < np.iinfo(np.int16).max else np.int32
    cout, cb = branch.shape
    rows = np.zeros((cb + 1, cout), dtype=dtype)  # branch columns; row cb is the padding (zeros)
    rows[:cb] = branch.T
    paths = np.asarray(inner, dtype=dtype).T  # [Cin, Cb]
    degree = np.count_nonzero(paths, axis=1)
    out = np.zeros((paths.shape[0], cout), dtype=dtype)
    by_degree = np.argsort(-degree, kind="stable")
    start = 0
    while start < by_degree.size and degree[by_degree[start]] > 0:
        width = int(degree[by_degree[start]])
        stop = min(by_degree.size, start + max(1, MAXMIN_BLOCK // (width * cout)))
        ids = by_degree[start:stop]
        r, b = np.nonzero(paths[ids])  # row-major: each row's b ascending
        slot = np.arange(r.size) - np.repeat(np.cumsum(degree[ids]) - degree[ids], degree[ids])
        via = np.full((ids.size, width), cb)  # the padding row where an input has fewer paths
        via[r, slot] = b
        values = np.zeros((ids.size, width), dtype=dtype)
        values[r, slot] = paths[ids[r], b]
        gathered = rows[via]  # [block, width, Cout]
        np.minimum(gathered, values[:, :, None], out=gathered)
        out[ids] = gathered.max(axis=1)
        start = stop
    return out.T.astype(np.int32)


def top_k_rows(w: np.ndarray, k: int) -> np.ndarray:
    """Mask of each row's ``k`` largest positive entries; ties go to the lower column index.

    Ranks by the unique key ``w * columns + (columns - 1 - column)``, so one partition settles ties.
    """
    columns = w.shape[1]
    if k >= columns:
        return w > 0
    key = w.astype(np.int64) * columns + np.arange(columns - 1, -1, -1)
    kth = np.partition(key, columns - k, axis=1)[:, columns - k:columns - k + 1]
    return (key >= kth) & (w > 0)


@dataclass
class FullGraph:
    """Edges of one class's full graph, ``lo`` in layer l-1 and ``hi`` in layer l, grouped by l.

    Edges of the pair (l-1, l) are ``slice(pair_start[l], pair_start[l + 1])`` (``pair_start`` has
    ``L + 1`` entries; pair 0 is empty). ``inputs[layer]`` keeps, per hop, the influence rows a channel
    reads directly (previous-layer or inner-space channels), for the export's ``attr_channels``.
    """

    lo: np.ndarray
    hi: np.ndarray
    weight: np.ndarray
    pair_start: np.ndarray
    inputs: dict[str, list[tuple[Hop, np.ndarray]]]

    @property
    def num_edges(self) -> int:
        return int(self.weight.size)


def full_graph(agg: Aggregates, class_id: int, st: Structure) -> FullGraph:
    """Build the weighted edge arrays of class ``class_id`` from its influence counts.

    Counts stay in their stored int32 (no int64 copies of the ~13 MB an InceptionV1 class holds).
    """
    slot = agg.slot(class_id)
    lo_parts, hi_parts, w_parts = [], [], []
    pair_start = [0, 0]
    inputs: dict[str, list[tuple[Hop, np.ndarray]]] = {}
    for index in range(1, len(st.layers)):
        layer, prev = st.layers[index], st.layers[index - 1]
        vin, vout = st.vertex[prev], st.vertex[layer]
        drop_in, drop_out = vin < 0, vout < 0
        weights = np.zeros((st.channels[layer], st.channels[prev]), dtype=np.int32)
        rows = []
        direct = [h for h in st.hops[layer] if not h.inner]
        for hop in direct:
            counts = np.asarray(agg.I[hop.link][slot])
            rows.append((hop, counts))
            block = weights[hop.offset:hop.offset + hop.cout]
            np.maximum(block, counts, out=block)
        k = _average_degree(weights, direct, drop_in, drop_out)
        for hop in st.hops[layer]:
            if not hop.inner:
                continue
            branch = np.asarray(agg.I[hop.link][slot])
            rows.append((hop, branch))
            inner = np.asarray(agg.I[hop.inner[0]][slot])
            for name in hop.inner[1:]:
                inner = np.maximum(inner, np.asarray(agg.I[name][slot]))
            w = maxmin(branch, inner)
            if drop_in.any():
                w[:, drop_in] = 0
            if k is not None:
                w[~top_k_rows(w, k)] = 0
            block = weights[hop.offset:hop.offset + hop.cout]
            np.maximum(block, w, out=block)
        inputs[layer] = rows
        if drop_out.any():
            weights[drop_out] = 0
        if drop_in.any():
            weights[:, drop_in] = 0
        flat = np.flatnonzero(weights)
        j, i = np.divmod(flat, weights.shape[1])
        hi_parts.append(vout[j])
        lo_parts.append(vin[i])
        w_parts.append(weights.ravel()[flat].astype(np.int64))
        pair_start.append(pair_start[-1] + flat.size)
    empty = np.zeros(0, dtype=np.int64)
    return FullGraph(
        lo=np.concatenate(lo_parts) if lo_parts else empty,
        hi=np.concatenate(hi_parts) if hi_parts else empty,
        weight=np.concatenate(w_parts) if w_parts else empty,
        pair_start=np.asarray(pair_start, dtype=np.int64),
        inputs=inputs,
    )


def _average_degree(weights: np.ndarray, direct: list[Hop], drop_in: np.ndarray,
                    drop_out: np.ndarray) -> int | None:
    """Mean count of non-zero inputs of a direct-link channel (floored, >= 1); None without direct links."""
    rows = np.zeros(weights.shape[0], dtype=bool)
    for h in direct:
        rows[h.offset:h.offset + h.cout] = True
    rows &= ~drop_out
    if not rows.any():
        return None
    degree = np.count_nonzero(weights[rows], axis=1)
    if drop_in.any():
        degree -= np.count_nonzero(weights[rows][:, drop_in], axis=1)
    return max(1, int(degree.mean()))
