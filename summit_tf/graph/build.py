"""The full attribution graph of one class: every channel a node, influence counts as edge weights.

Vertices are numbered once per run (:class:`Structure`); edges are NumPy arrays grouped by layer pair,
written by compiled kernels (:mod:`summit_tf.graph.kernels`), so a 245k-edge graph takes no per-edge Python
work. How each SUMMIT layer's channels connect to the previous layer is read from the links in the
aggregates:

* a *direct* link (``src`` is the previous SUMMIT layer) gives edge ``(i, dst_offset + j)`` the weight
  ``I[c, j, i]``;
* a *two-hop* link (``src`` is an inner space such as ``mixed4b/3x3_bottleneck``, reached from the previous
  layer by one or more links) gives ``max_b min(I_branch[c, j, b], I_inner[c, b, i])``, the strongest path
  through the inner space, keeping per channel only as many edges as a direct-link channel of that layer
  has on average (SUMMIT's rule, which stops dense two-hop rows from dominating PageRank);
* a *skip* link (``src`` is an earlier SUMMIT layer, not the previous one: a residual shortcut) gives edge
  ``(i, dst_offset + j)`` the weight ``I[c, j, i]`` too. Skip edges span more than one layer; they are kept
  apart from the layer pairs (:attr:`FullGraph.skip_hi` ...), PageRank runs on the whole DAG, and an edge is
  kept when both its ends are.
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from summit_tf import spec_grammar
from summit_tf.graph import kernels
from summit_tf.store import Aggregates

log = logging.getLogger(__name__)


def parse_excluded(value: object, channels: dict[str, int]) -> dict[str, np.ndarray]:
    """Excluded channels as sorted arrays per layer of the run, from a dict or a ``"l1:3,4;l2:7"`` string.

    Exclusions of other channel spaces (inner spaces such as ``mixed4a/3x3_bottleneck``, layers the run did
    not count) were applied while counting and have no vertices: they are left out. A malformed spec or a
    channel out of range of a layer raises ``ValueError``.
    """
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        value = spec_grammar.parse_channels(value, "exclude_channels")
    if not isinstance(value, dict):
        raise ValueError(f"exclude_channels must be a dict or a string, got {type(value).__name__}")
    out = {}
    for layer, chans in value.items():
        if layer not in channels:
            continue
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


@dataclass(frozen=True)
class Skip:
    """A skip link: channels ``offset .. offset + cout`` of ``dst`` read channels of ``src``, an earlier
    SUMMIT layer that is not the one just below."""

    link: str
    src: str
    dst: str
    offset: int
    cout: int


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
    skips: list[Skip] = field(default_factory=list)

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
    hops, ignored, skips = _place_links(agg, layers)
    return Structure(layers, channels, excluded, vertex, np.concatenate(layer_of), np.concatenate(channel_of),
                     hops, ignored, skips)


def _place_links(agg: Aggregates, layers: list[str]) -> tuple[dict[str, list[Hop]], list[str], list[Skip]]:
    position = {layer: i for i, layer in enumerate(layers)}
    hops: dict[str, list[Hop]] = {layer: [] for layer in layers}
    used, ignored, skips = set(), [], []
    for name, info in sorted(agg.links.items()):
        if info.dst not in position or position[info.dst] == 0:
            continue
        prev = layers[position[info.dst] - 1]
        shape = tuple(agg.I[name].shape)
        if info.src == prev:
            _check_inputs(name, shape, agg.channels[prev], prev)
            hops[info.dst].append(Hop(name, info.dst_offset, shape[1]))
            used.add(name)
        elif info.src in position and position[info.src] < position[info.dst] - 1:
            _check_inputs(name, shape, agg.channels[info.src], info.src)
            if info.dst_offset < 0 or info.dst_offset + shape[1] > agg.channels[info.dst]:
                raise ValueError(f"link {name}: rows {info.dst_offset}..{info.dst_offset + shape[1]} outside "
                                 f"{info.dst}")
            skips.append(Skip(name, info.src, info.dst, info.dst_offset, shape[1]))
            used.add(name)
        elif info.src not in position:
            inner = tuple(sorted(n for n, i in agg.links.items() if i.dst == info.src and i.src == prev))
            for link in inner:
                _check_inputs(link, tuple(agg.I[link].shape), agg.channels[prev], prev)
                _check_inputs(name, shape, agg.I[link].shape[1], info.src)
            if inner:
                hops[info.dst].append(Hop(name, info.dst_offset, shape[1], inner))
                used.update((name, *inner))
    for name, info in sorted(agg.links.items()):
        if name not in used:
            ignored.append(name)
            log.warning("link %s (%s -> %s) joins no earlier SUMMIT layer; ignored in graphs",
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
    return hops, ignored, skips


def _check_inputs(link: str, shape: tuple[int, ...], channels: int, space: str) -> None:
    """A link's counts ``[K, Cout, Cin]`` must read every channel of its input space, no more."""
    if len(shape) != 3 or shape[2] != channels:
        raise ValueError(f"link {link}: influence counts of shape {shape} do not read the {channels} "
                         f"channels of {space}")


@dataclass
class FullGraph:
    """Edges of one class's full graph, ``lo`` in layer l-1 and ``hi`` in layer l (int32), sorted by ``hi``
    then ``lo`` (so grouped by l).

    Edges of the pair (l-1, l) are ``slice(pair_start[l], pair_start[l + 1])`` (``pair_start`` has
    ``L + 1`` entries; pair 0 is empty). ``inputs[layer]`` keeps, per hop, the influence rows a channel
    reads directly (previous-layer or inner-space channels), for the export's ``attr_channels``.
    """

    lo: np.ndarray
    hi: np.ndarray
    weight: np.ndarray
    pair_start: np.ndarray
    inputs: dict[str, list[tuple[Hop, np.ndarray]]]
    skip_lo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    skip_hi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    skip_weight: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def num_edges(self) -> int:
        return int(self.weight.size)

    def all_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(hi, lo, weight)`` of every edge: the layer pairs', then the skip edges."""
        if not self.skip_weight.size:
            return self.hi, self.lo, self.weight
        return (np.concatenate([self.hi, self.skip_hi]), np.concatenate([self.lo, self.skip_lo]),
                np.concatenate([self.weight, self.skip_weight]))


def class_counts(agg: Aggregates, class_id: int, st: Structure) -> dict[str, np.ndarray]:
    """The influence rows ``[Cout, Cin]`` of every link the class's full graph reads.

    Reading them is about half of a class's time from a gzip-compressed file; h5py lets other threads
    run meanwhile, so a run reads the next class while it builds this one (:mod:`generate`).
    """
    slot = agg.slot(class_id)
    names = sorted({name for hops in st.hops.values() for h in hops for name in (h.link, *h.inner)} |
                   {s.link for s in st.skips})
    return {name: np.asarray(agg.I[name][slot]) for name in names}


def full_graph(agg: Aggregates, class_id: int, st: Structure,
               counts: dict[str, np.ndarray] | None = None) -> FullGraph:
    """Build the weighted edge arrays of class ``class_id`` from its influence counts (``counts`` from
    :func:`class_counts` when already read).

    Layer pairs are independent and their kernels release the GIL, so they are built in threads.
    """
    counts = class_counts(agg, class_id, st) if counts is None else counts
    pairs = list(_layer_threads().map(lambda i: _layer_edges(st, i, counts), range(1, len(st.layers))))
    parts = [part for layer_parts, _ in pairs for part in layer_parts]
    sizes = [sum(int(part[2].size) for part in layer_parts) for layer_parts, _ in pairs]
    hi, lo, weight = (np.concatenate([p[n] for p in parts]) if parts else np.zeros(0, np.int32)
                      for n in range(3))
    skips = [kernels.direct_edges(counts[s.link], st.vertex[s.src],
                                  st.vertex[s.dst][s.offset:s.offset + s.cout]) for s in st.skips]
    skip_hi, skip_lo, skip_weight = _merge(skips) if skips else (np.zeros(0, np.int32),) * 3
    return FullGraph(lo=lo, hi=hi, weight=weight, pair_start=np.cumsum([0, 0, *sizes], dtype=np.int64),
                     inputs={st.layers[index + 1]: rows for index, (_, rows) in enumerate(pairs)},
                     skip_lo=skip_lo, skip_hi=skip_hi, skip_weight=skip_weight)


@functools.cache
def _layer_threads() -> ThreadPoolExecutor:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ThreadPoolExecutor(min(4, cores), thread_name_prefix="summit-graph")


if hasattr(os, "register_at_fork"):  # a forked child inherits the pool but none of its threads
    os.register_at_fork(after_in_child=_layer_threads.cache_clear)


def _layer_edges(st: Structure, index: int, counts: dict[str, np.ndarray]) -> tuple[list, list]:
    """Edges between layer ``index - 1`` and ``index`` (row-major), and the influence rows each hop reads.

    Each hop's edges come from a compiled kernel (:mod:`summit_tf.graph.kernels`); hops that cover the
    same channels are max-combined.
    """
    layer, prev = st.layers[index], st.layers[index - 1]
    vin, vout = st.vertex[prev], st.vertex[layer]
    rows: list[tuple[Hop, np.ndarray]] = []
    edges: list[tuple[int, tuple[np.ndarray, ...]]] = []  # (hop offset, its edges)
    direct_rows = np.zeros(vout.size, dtype=bool)
    for hop in (h for h in st.hops[layer] if not h.inner):
        rows.append((hop, counts[hop.link]))
        out = vout[hop.offset:hop.offset + hop.cout]
        edges.append((hop.offset, kernels.direct_edges(counts[hop.link], vin, out)))
        direct_rows[hop.offset:hop.offset + hop.cout] = True
    if _overlapping([h for h, _ in rows]):
        edges = [(min(offset for offset, _ in edges), _merge([e for _, e in edges]))]
    live = int(np.count_nonzero(direct_rows & (vout >= 0)))
    # SUMMIT's rule: a two-hop channel keeps as many inputs as a direct-link channel has on average.
    k = max(1, sum(e[2].size for _, e in edges) // live) if live else 0
    for hop in (h for h in st.hops[layer] if h.inner):
        branch = counts[hop.link]
        rows.append((hop, branch))
        inner = counts[hop.inner[0]]
        for name in hop.inner[1:]:
            inner = np.maximum(inner, counts[name])
        dtype = np.int16 if max(branch.max(initial=0), inner.max(initial=0)) < 2**15 else np.int32
        edges.append((hop.offset, kernels.two_hop_edges(branch.astype(dtype, copy=False),
                                                        inner.astype(dtype, copy=False), vin,
                                                        vout[hop.offset:hop.offset + hop.cout], k)))
    parts = [e for _, e in sorted(edges, key=lambda item: item[0])]
    return ([_merge(parts)] if _overlapping(st.hops[layer]) else parts), rows


def _overlapping(hops: list[Hop]) -> bool:
    """Whether any two hops reach the same channels."""
    ends = [(h.offset, h.offset + h.cout) for h in sorted(hops, key=lambda h: h.offset)]
    return any(start < end for (_, end), (start, _) in zip(ends, ends[1:], strict=False))


def _merge(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """One edge per vertex pair, the largest weight, in row-major order (vertex ids rise with channels)."""
    hi, lo, w = (np.concatenate([p[n] for p in parts]) for n in range(3))
    if hi.size == 0:
        return hi, lo, w
    key = hi.astype(np.int64) * (int(lo.max(initial=0)) + 1) + lo
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    if first.size == key.size:
        return hi[order], lo[order], w[order]
    return hi[order][first], lo[order][first], np.maximum.reduceat(w[order], first)
