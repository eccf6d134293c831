"""Find the exact linear pieces (links) between the SUMMIT layers of a feed-forward CNN graph.

Definitions (also in BUILD_NOTES.md):

- **Layers** (candidates a user may pick): ``[B, H, W, C]`` outputs of an activation of any kind (ReLU,
  ReLU6, swish/SiLU, hard-swish, GELU, ...) applied (fused, or after BatchNorm) to a dense convolution or
  a sum; residual sums that no activation follows (MobileNetV2, EfficientNet, ResNetV2, ConvNeXt); and
  channel concatenations. Depthwise stages are not layers: they are the one-to-one inner stage of a
  separable link. Tensors computed from a global pooling (squeeze-and-excitation gates, the head) are not
  spatial layers.
- **Links**: for a chosen layer B, :func:`find_links` walks upstream from B's pre-activation through
  everything that is linear and channel-wise exact: 1x1 stride-1 convolutions (composed), per-channel
  scales (folded BatchNorm, layer scales), identities (quantize, dropout), sums (every branch is followed),
  and at most one spatial convolution (k x k, any stride and SAME/VALID padding, composed with the 1x1 maps
  around it). Biases are never part of a link. The walk stops at the first non-linearity. A stop is a
  *hit* when it is a candidate layer (the link input is that layer), a one-to-one depthwise stage of a
  candidate (depthwise conv with channel multiplier 1 and its activation, optionally scaled by a
  squeeze-and-excitation gate; the link input is that stage's output, MobileNet/EfficientNet style), or a
  zero padding of either feeding a VALID conv.
- Every chosen layer reached is the source of one link (the paths to it summed). The nearest is the
  block's own link (named after B); a residual sum ``y = f(x) + s(x)`` also reaches the block input
  through the shortcut ``s``: a **skip link** named ``{B}/skip/{source}``. An identity shortcut (or a
  per-channel scale) is kind ``"identity"``: output channel j reads input channel j only; a projection
  shortcut is a 1x1 (or strided) conv with BatchNorm folded. A chosen layer may therefore have links from
  several earlier layers. Paths that stop at a candidate that is not chosen, or at a non-linear stage
  (LayerNorm mixes channels: ConvNeXt), give no link; :func:`find_links` logs once which layers have no
  incoming link and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from summit_tf.models.base import Link

log = logging.getLogger(__name__)

OPS = ("input", "conv", "depthwise", "scale", "identity", "add", "pad", "concat", "gate", "other")


@dataclass(frozen=True)
class Node:
    """One tensor of the network and the operation that produced it.

    ``kernel``: conv ``[kh, kw, cin, cout]``, depthwise ``[kh, kw, cin, multiplier]``, scale ``[C]``;
    ``bias`` (added before the activation) is kept for checks and never enters a link.
    ``activation`` other than ``"linear"`` (any name) is applied after the operation and ends any linear
    piece. A ``gate`` multiplies ``inputs[0]`` by a per-image, per-channel factor computed by
    ``inputs[1]`` (squeeze-and-excitation). ``label`` names the framework's layer or operator type, for
    messages.
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
    label: str = ""

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
        self.blocked: list[str] = []  # where walks ended without a hit, for messages

    def hits(self, start: str) -> list[_Hit]:
        node = self.nodes[start]
        eye = np.eye(node.channels, dtype=np.float64)[None, None]
        return self._walk(start, eye, None, first=True)

    def _walk(self, key: str, w: np.ndarray, spatial: tuple[int, str] | None, first: bool) -> list[_Hit]:
        """``w`` maps ``key``'s channels to the start's pre-activation; ``spatial``: (stride, padding)."""
        node = self.nodes.get(key)
        if node is None:  # the network's input (adapters may not describe it)
            return []
        if not first and (node.activation != "linear" or key in self.candidates):  # a sum is a layer too
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
            self.blocked.append(f"{key} (a second spatial convolution)")
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
        activation = "" if node.activation == "linear" else f", {node.activation}"
        self.blocked.append(f"{key} ({node.label or node.op}{activation})")
        return []

    def _through_identities(self, key: str) -> str:
        node = self.nodes[key]
        while node.op == "identity" and node.activation == "linear":
            node = self.nodes[node.inputs[0]]
        return node.key

    def _depthwise_source(self, key: str) -> str | None:
        """The candidate whose channels tensor ``key`` carries one-to-one through a depthwise stage."""
        node = self.nodes[key]
        if node.op == "gate":  # squeeze-and-excitation: channel i times a per-image factor, still channel i
            node = self.nodes[node.inputs[0]]
        first = True
        while node.op in ("identity", "scale") and (first or node.activation == "linear"):
            node, first = self.nodes[node.inputs[0]], False
        if node.op != "depthwise" or node.kernel.shape[3] != 1 or (not first and node.activation != "linear"):
            return None
        parent = self.nodes[self._through_identities(node.inputs[0])]
        if parent.op == "pad" and parent.activation == "linear":
            parent = self.nodes[self._through_identities(parent.inputs[0])]
        return parent.key if parent.key in self.candidates else None

    def by_source(self, start: str) -> dict[str, _Hit | None]:
        """Every candidate reached from ``start`` -> the summed link to it (None if its paths disagree on
        the input tensor, stride or padding), nearest (latest in network order) first."""
        hits = self.hits(start)
        found: dict[str, _Hit | None] = {}
        for src in sorted({h.src for h in hits}, key=self.order.__getitem__, reverse=True):
            mine = [h for h in hits if h.src == src]
            first = mine[0]
            same = (first.input, first.stride, first.padding, first.kernel.shape)
            if any((h.input, h.stride, h.padding, h.kernel.shape) != same for h in mine):
                found[src] = None
                continue
            total = np.sum([h.kernel for h in mine], axis=0)
            found[src] = _Hit(src, first.input, total, first.stride, first.padding)
        return found


def _kind(hit: _Hit) -> str:
    if hit.kernel.shape[:2] != (1, 1) or hit.stride != 1:
        return "conv"
    if hit.input != hit.src:
        return "separable"
    matrix = hit.kernel[0, 0]
    if matrix.shape[0] == matrix.shape[1] and not np.any(matrix - np.diag(np.diag(matrix))):
        return "identity"
    return "1x1"


def find_links(nodes: Sequence[Node], candidates: Sequence[str], layers: Sequence[str]) -> list[Link]:
    """Links into each chosen layer (network order) from every earlier chosen layer its linear paths reach.

    ``candidates`` are every layer a user may choose (they stop the walk even when not chosen). A
    concatenation gets links per branch, named ``{layer}/{branch}``, with its channel offset (a branch that
    is itself a chosen layer is an identity link). The nearest source's link is named after the layer (or
    branch), others ``{name}/skip/{source}``. Chosen layers after the first without any incoming link are
    logged once, with the reasons.
    """
    walker = _Walker(nodes, candidates)
    position = {layer: i for i, layer in enumerate(layers)}
    links: list[Link] = []
    missing: dict[str, list[str]] = {}
    for layer in layers:
        node = walker.nodes[layer]
        branches = [(layer, 0, layer)]
        if node.op == "concat":
            offsets = np.cumsum([0] + [walker.nodes[k].channels for k in node.inputs])
            branches = [(f"{layer}/{k}", int(o), k) for k, o in zip(node.inputs, offsets, strict=False)]
        why: list[str] = []
        found = 0
        for name, offset, start in branches:
            if start != layer and start in position:  # a chosen layer copied into the concat
                eye = np.eye(walker.nodes[start].channels, dtype=np.float32)[None, None]
                links.append(Link(name, src=start, dst=layer, input=start, kernel=eye, dst_offset=offset,
                                  kind="identity"))
                found += 1
                continue
            walker.blocked = []
            sources = walker.by_source(start)
            if not sources:
                stops = ", ".join(dict.fromkeys(walker.blocked))
                where = f"stops at {stops}" if stops else "no path"
                why.append(f"{name}: {where}" if name != layer else where)
            nearest = True
            for src, hit in sources.items():
                link_name = name if nearest else f"{name}/skip/{src}"
                nearest = False
                if src not in position or position[src] >= position[layer]:
                    why.append(f"{link_name}: reaches {src}, which is not a chosen layer before it")
                    continue
                if hit is None:
                    why.append(f"{link_name}: paths to {src} differ in input, stride or padding")
                    continue
                links.append(Link(link_name, src=src, dst=layer, input=hit.input, kernel=hit.kernel.astype(
                    np.float32), stride=hit.stride, padding=hit.padding, dst_offset=offset, kind=_kind(hit)))
                found += 1
        if not found and position[layer] > 0:
            missing[layer] = why
    if missing:
        log.warning("%d of %d layers have no incoming link: %s", len(missing), len(layers),
                    "; ".join(f"{layer}: {', '.join(why) or 'no path'}" for layer, why in missing.items()))
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

    Candidates (``spatial`` keys only): outputs of an activation of any kind applied (fused, or after
    BatchNorm) to a dense convolution or a sum, sums that no activation follows, and channel
    concatenations (module docstring). Default: the concatenations that feed more than other
    concatenations (Inception-style blocks) when the network has any, else every candidate.
    """
    by_key = {n.key: n for n in nodes}
    sources = {n.key: _activation_source(by_key, n) for n in nodes
               if n.key in spatial and n.activation != "linear"}
    activated = {key for key, source in sources.items() if source.op in ("conv", "add")}
    consumers: dict[str, set[str]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, set()).add(n.key)
    # a sum read only by its activation is that activation's input (ResNet's ``out``), not a layer of its own
    activated_sums = {source.key for key, source in sources.items()
                      if key != source.key and len(consumers.get(source.key, ())) == 1}
    sums = {n.key for n in nodes if n.op == "add" and n.key in spatial and n.key not in activated_sums}
    concats = {n.key for n in nodes if n.op == "concat" and n.key in spatial}
    candidates = [n.key for n in nodes if n.key in activated | sums | concats]
    blocks = [c for c in candidates if c in concats and not (c in consumers and consumers[c] <= concats)]
    return candidates, blocks or candidates


def main_path(nodes: Sequence[Node], rank4: set[str], reducing: set[str]) -> set[str]:
    """The spatial tensors: ``rank4`` keys not computed from a ``reducing`` node (global pooling, flatten)
    alone, so squeeze-and-excitation gates and ``[B, 1, 1, C]`` heads are not layers (a gated tensor is)."""
    below: set[str] = set()
    for n in nodes:
        if n.key in reducing or (n.inputs and all(i in below for i in n.inputs)):
            below.add(n.key)
    return {k for k in rank4 if k not in below}


def layer_activations(nodes: Sequence[Node], layers: Sequence[str]) -> dict[str, str]:
    """Each layer's activation by name; a concatenation has ``relu``/``relu6`` when a branch has."""
    by_key = {n.key: n for n in nodes}

    def activation(key: str) -> str:
        node = by_key[key]
        if node.op != "concat":
            return node.activation
        branches = [activation(k) for k in node.inputs if k in by_key]
        return next((a for a in branches if a in ("relu", "relu6")), branches[0] if branches else "linear")

    return {layer: activation(layer) for layer in layers}


def link_inputs(links: Sequence[Link]) -> list[str]:
    """The tensor keys the links read, each once, in link order."""
    return list(dict.fromkeys(link.input for link in links))
