"""Find the exact linear pieces (links) between consecutive SUMMIT layers of a feed-forward CNN graph.

Adapters describe their network as a list of :class:`Node` (one per tensor, in network order) and name
the *candidate* layers a user may pick. For a chosen layer B, :func:`find_links` walks upstream from B's
pre-activation through everything that is linear and channel-wise exact:

- 1x1 stride-1 convolutions (composed into one matrix), per-channel scales (folded BatchNorm),
  identities (quantize, dropout), and sums (a residual ``Add``: every branch is followed);
- at most one spatial convolution (k x k, any stride and SAME/VALID padding), which fixes the link's
  stride and padding; 1x1 maps on either side of it are composed into its kernel (exact: zero padding of
  a bias-free linear map is the linear map of the zero-padded input).

The walk stops at the first non-linearity. A stop is a *hit* when it is a candidate layer (the link input
is that layer), a one-to-one depthwise stage of a candidate (depthwise conv with channel multiplier 1,
plus its own activation: the link input is that stage's output, MobileNet style), or a zero padding of
either feeding a VALID conv (the link input is the padded tensor). Biases are never part of a link.

The link into B comes from the *nearest* candidate reached (latest in network order); paths reaching
older candidates are skip connections and belong to no link. If that nearest candidate is not the layer
chosen just before B, B has no link (logged): the piece between them is not linear.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from summit_tf.models.base import Link

log = logging.getLogger(__name__)

OPS = ("input", "conv", "depthwise", "scale", "identity", "add", "pad", "concat", "other")


@dataclass(frozen=True)
class Node:
    """One tensor of the network and the operation that produced it.

    ``kernel``: conv ``[kh, kw, cin, cout]``, depthwise ``[kh, kw, cin, multiplier]``, scale ``[C]``;
    ``bias`` (added before the activation) is kept for checks and never enters a link.
    ``activation`` other than ``"linear"`` is applied after the operation and ends any linear piece.
    """

    key: str
    op: str
    inputs: tuple[str, ...] = ()
    channels: int = 0
    activation: str = "linear"
    kernel: np.ndarray | None = None
    stride: int = 1
    padding: str = "SAME"
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"node {self.key}: op must be one of {OPS}, got {self.op!r}")


@dataclass
class _Hit:
    src: str
    input: str
    kernel: np.ndarray
    stride: int
    padding: str


class _Walker:
    def __init__(self, nodes: Sequence[Node], candidates: Sequence[str]):
        self.nodes = {n.key: n for n in nodes}
        self.order = {n.key: i for i, n in enumerate(nodes)}
        self.candidates = set(candidates)

    def hits(self, start: str) -> list[_Hit]:
        node = self.nodes[start]
        eye = np.eye(node.channels, dtype=np.float64)[None, None]
        return self._walk(start, eye, None, first=True)

    def _walk(self, key: str, w: np.ndarray, spatial: tuple[int, str] | None, first: bool) -> list[_Hit]:
        """``w`` maps ``key``'s channels to the start's pre-activation; ``spatial``: (stride, padding)."""
        node = self.nodes[key]
        if not first and node.activation != "linear":
            return self._stop(key, w, spatial)
        if node.op == "identity":
            return self._walk(node.inputs[0], w, spatial, False)
        if node.op == "scale":
            return self._walk(node.inputs[0], node.kernel[None, None, :, None] * w, spatial, False)
        if node.op == "add":
            return [hit for parent in node.inputs for hit in self._walk(parent, w, spatial, False)]
        if node.op == "conv":
            kernel = node.kernel.astype(np.float64)
            pointwise = kernel.shape[:2] == (1, 1) and node.stride == 1
            if spatial is None and w.shape[:2] == (1, 1):
                composed = np.einsum("hwio,oj->hwij", kernel, w[0, 0])
                step = None if pointwise else (node.stride, node.padding)
                return self._walk(node.inputs[0], composed, step, False)
            if pointwise:
                return self._walk(node.inputs[0], np.einsum("io,hwoj->hwij", kernel[0, 0], w), spatial, False)
            return []
        return [] if first else self._stop(key, w, spatial)

    def _stop(self, key: str, w: np.ndarray, spatial: tuple[int, str] | None) -> list[_Hit]:
        stride, padding = spatial or (1, "SAME")
        node = self.nodes[key]
        if key in self.candidates:
            return [_Hit(key, key, w, stride, padding)]
        source = self._depthwise_source(key)
        if source is not None:
            return [_Hit(source, key, w, stride, padding)]
        if node.op == "pad" and node.activation == "linear" and padding == "VALID":
            parent = self._through_identities(node.inputs[0])
            source = parent if parent in self.candidates else self._depthwise_source(parent)
            if source is not None:
                return [_Hit(source, key, w, stride, padding)]
        return []

    def _through_identities(self, key: str) -> str:
        node = self.nodes[key]
        while node.op == "identity" and node.activation == "linear":
            node = self.nodes[node.inputs[0]]
        return node.key

    def _depthwise_source(self, key: str) -> str | None:
        """The candidate whose channels tensor ``key`` carries one-to-one through a depthwise stage."""
        node = self.nodes[key]
        first = True
        while node.op in ("identity", "scale") and (first or node.activation == "linear"):
            node, first = self.nodes[node.inputs[0]], False
        if node.op != "depthwise" or node.kernel.shape[3] != 1 or (not first and node.activation != "linear"):
            return None
        parent = self.nodes[self._through_identities(node.inputs[0])]
        if parent.op == "pad" and parent.activation == "linear":
            parent = self.nodes[self._through_identities(parent.inputs[0])]
        return parent.key if parent.key in self.candidates else None

    def nearest(self, start: str) -> tuple[str | None, _Hit | None]:
        """The nearest candidate reached from ``start`` and the summed link to it (None if ambiguous)."""
        hits = self.hits(start)
        if not hits:
            return None, None
        src = max((h.src for h in hits), key=self.order.__getitem__)
        mine = [h for h in hits if h.src == src]
        first = mine[0]
        if any((h.input, h.stride, h.padding, h.kernel.shape) != (first.input, first.stride, first.padding,
                                                                   first.kernel.shape) for h in mine):
            return src, None
        total = np.sum([h.kernel for h in mine], axis=0)
        return src, _Hit(src, first.input, total, first.stride, first.padding)


def _kind(hit: _Hit) -> str:
    if hit.kernel.shape[:2] != (1, 1) or hit.stride != 1:
        return "conv"
    return "1x1" if hit.input == hit.src else "separable"


def find_links(nodes: Sequence[Node], candidates: Sequence[str], layers: Sequence[str]) -> list[Link]:
    """Links into each chosen layer (network order) from the chosen layer just before it, where exact.

    ``candidates`` are every layer a user may choose (they stop the walk even when not chosen);
    a concatenation gets one link per branch, named ``{layer}/{branch}``, with its channel offset.
    """
    walker = _Walker(nodes, candidates)
    links: list[Link] = []
    for prev, layer in zip(layers, layers[1:], strict=False):
        node = walker.nodes[layer]
        branches = [(layer, 0, layer)]
        if node.op == "concat":
            offsets = np.cumsum([0] + [walker.nodes[k].channels for k in node.inputs])
            branches = [(f"{layer}/{k}", int(o), k) for k, o in zip(node.inputs, offsets, strict=False)]
        for name, offset, start in branches:
            src, hit = walker.nearest(start)
            if src != prev or hit is None:
                why = "no linear piece" if src is None else f"its nearest layer is {src}"
                log.info("no link %s <- %s: %s", name, prev, why if src != prev else "ambiguous paths")
                continue
            kernel = hit.kernel.astype(np.float32)
            links.append(Link(name, src=prev, dst=layer, input=hit.input, kernel=kernel, stride=hit.stride,
                              padding=hit.padding, dst_offset=offset, kind=_kind(hit)))
    return links


def _activation_source(nodes: dict[str, Node], node: Node) -> Node:
    """The operation an activation applies to: the node itself, or for an activation layer the first
    operation upstream through linear scales (BatchNorm) and identities."""
    if node.op not in ("identity", "scale") or not node.inputs:
        return node
    parent = nodes[node.inputs[0]]
    while parent.op in ("identity", "scale") and parent.activation == "linear" and parent.inputs:
        parent = nodes[parent.inputs[0]]
    return parent


def candidate_layers(nodes: Sequence[Node], spatial: set[str]) -> tuple[list[str], list[str]]:
    """Layers a user may choose, and the default choice, in network order.

    Candidates: ``[B, H, W, C]`` outputs of a ReLU/ReLU6 applied (fused, or after BatchNorm) to a dense
    convolution or a sum, and channel concatenations. Depthwise stages are not candidates: they are the
    one-to-one inner stage of a separable link. Default: the concatenations that feed more than other
    concatenations (Inception-style blocks) when the network has any, else every candidate.
    """
    by_key = {n.key: n for n in nodes}
    activated = {n.key for n in nodes if n.key in spatial and n.activation in ("relu", "relu6")
                 and _activation_source(by_key, n).op in ("conv", "add")}
    concats = {n.key for n in nodes if n.op == "concat" and n.key in spatial}
    consumers: dict[str, set[str]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, set()).add(n.key)
    candidates = [n.key for n in nodes if n.key in activated | concats]
    blocks = [c for c in candidates if c in concats and not (c in consumers and consumers[c] <= concats)]
    return candidates, blocks or candidates


def link_inputs(links: Sequence[Link]) -> list[str]:
    """The tensor keys the links read, each once, in link order."""
    return list(dict.fromkeys(link.input for link in links))
