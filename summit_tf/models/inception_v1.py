"""Lucid's InceptionV1 (the ``inception5h`` frozen GraphDef), the network SUMMIT used, as a SummitModel.

The GraphDef is read with :mod:`summit_tf.models.graphdef` and run op by op with TF2 ops, so every inner
tensor is available and the ReLUs can take Lucid's gradient redirect. SUMMIT layers are the nine mixed
blocks. Each block ``L`` (after the first) is joined to the previous one ``P`` by one link per branch,
each with its own index spaces:

- ``L/1x1``, ``L/pool_reduce``: ``P`` -> ``L`` (at the branch's offset in the concat);
- ``L/3x3_bottleneck``, ``L/5x5_bottleneck``: ``P`` -> the inner spaces of the same names;
- ``L/3x3``, ``L/5x5``: those inner spaces -> ``L``.

Link inputs are the tensors the network really convolves: ``P`` itself, or ``maxpool4``/``maxpool10``
where a 3x3/2 max pool sits between blocks (mixed4a, mixed5a), the pool branch's 3x3/1 max-pooled tensor
``L/pool``, and the bottleneck activations ``L/3x3_bottleneck``/``L/5x5_bottleneck``. Max pools keep
channels apart, so the channel spaces are still ``P``'s.

``summit_compat=True`` reproduces the original SUMMIT code: pixels in [0, 1] are scaled to [-1, 1] and
then fed as if they were [0, 1], so the network sees about [-372, 138] instead of (-117, 138); and the
1x1, pool_reduce and bottleneck links take the unpooled ``P`` as input (also in mixed4a/mixed5a). Where that
input is not what the network convolves (pool_reduce, and every such link in mixed4a/mixed5a) the link
has no ``link_outputs`` entry, so its edges cannot be cut: a cut would subtract the unpooled input
convolved with the kernel.

Each layer's pre-activation ``L/pre_activation`` is Lucid's ``L_pre_relu``: the concat of the branches'
pre-ReLU tensors (``L_1x1_pre_relu`` ...), the tensor Lucid's channel objectives (and SUMMIT's images) read.
``tensors()`` evaluates only the nodes its keys need, so feature visualization of ``mixed4a`` runs neither
the later blocks nor the classifier (whose 7x7 VALID ``avgpool0`` needs >= 224 px inputs).

Logits are ``softmax2_pre_activation``, the main classifier (1,008 outputs); the node ``output`` is an
auxiliary head. Output indices map to ImageNet classes through Lucid's alternate-synsets label file.

:func:`check_against_import` (command line: ``python -m summit_tf.check_inception_v1
[--path=InceptionV1.pb]``) checks a file: it compares every layer, link input and the logits with TF's own
import of the same GraphDef on random images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from summit_tf import imagenet
from summit_tf.assets import download
from summit_tf.models.base import Edit, Link, SummitModel, pre_activation_key
from summit_tf.models.graphdef import GraphDefFunction, import_reference, read_graph_def

LAYERS = ("mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b")
BRANCHES = ("1x1", "3x3", "5x5", "pool_reduce")
BOTTLENECKS = ("3x3_bottleneck", "5x5_bottleneck")
INPUT_NAME = "input"
LOGITS_NODE = "softmax2_pre_activation"
LOGITS_WEIGHTS = "softmax2_w"
INPUT_SIZE = 224
VALUE_RANGE = (-117.0, 138.0)
# The original fed 2x - 1 where the graph expects x: [0, 1] -> 255 * (2x - 1) - 117 = 510x - 372.
COMPAT_VALUE_RANGE = (-372.0, 138.0)
LABELS_FILE = "ImageNet_alternate_synsets.txt"
COMPAT_NOTE = "; SUMMIT-compatible: [-1, 1] pixels read as [0, 1], unpooled link inputs"

@dataclass(frozen=True)
class _Block:
    """A mixed block as the graph builds it: what feeds it and where each branch sits in the concat."""

    layer: str
    block_input: str
    offsets: dict[str, int]
    channels: int


def _weights(graph: GraphDefFunction, conv: str) -> np.ndarray:
    """The kernel ``[kh, kw, cin, cout]`` of conv ``{conv}_pre_relu/conv``, read from its own input."""
    return graph.const(graph.inputs_of(f"{conv}_pre_relu/conv")[1])


def _concat_inputs(graph: GraphDefFunction, layer: str) -> list[str]:
    node = graph.node(layer)
    inputs = graph.inputs_of(layer)
    if node.op == "Concat":
        axis, parts = graph.const(inputs[0]), inputs[1:]
    elif node.op == "ConcatV2":
        axis, parts = graph.const(inputs[-1]), inputs[:-1]
    else:
        raise ValueError(f"InceptionV1 node {layer!r} should be a Concat, found {node.op}")
    if int(axis) not in (3, -1):
        raise ValueError(f"InceptionV1 block {layer!r} concatenates along axis {int(axis)}, not channels")
    return parts


def _block(graph: GraphDefFunction, layer: str) -> _Block:
    parts = _concat_inputs(graph, layer)
    expected = {f"{layer}_{b}" for b in BRANCHES}
    if set(parts) != expected or len(parts) != len(BRANCHES):
        raise ValueError(f"InceptionV1 block {layer!r} concatenates {parts}, expected {sorted(expected)}")
    offsets, offset = {}, 0
    for part in parts:
        offsets[part.removeprefix(f"{layer}_")] = offset
        offset += _weights(graph, part).shape[3]
    block_input = graph.inputs_of(f"{layer}_1x1_pre_relu/conv")[0]
    feeds = [graph.inputs_of(f"{layer}_{b}_pre_relu/conv")[0] for b in BOTTLENECKS]
    feeds.append(graph.inputs_of(f"{layer}_pool")[0])
    if any(feed != block_input for feed in feeds):
        inputs = [block_input, *feeds]
        raise ValueError(f"InceptionV1 block {layer!r}: its branches read different inputs {inputs}")
    return _Block(layer, block_input, offsets, offset)


def _check_pooled_from(graph: GraphDefFunction, block: _Block, previous: str) -> None:
    """The block input must be the previous layer, or a max pool of it (channel i stays channel i)."""
    if block.block_input == previous:
        return
    node = graph.node(block.block_input)
    if node.op != "MaxPool" or graph.inputs_of(block.block_input)[0] != previous:
        raise ValueError(
            f"InceptionV1 block {block.layer!r} reads {block.block_input!r} ({node.op}); "
            f"expected {previous!r} or a max pool of it"
        )


def _links(graph: GraphDefFunction, block: _Block, previous: str, summit_compat: bool) -> list[Link]:
    layer = block.layer
    pooled = previous if summit_compat else block.block_input
    pool_input = previous if summit_compat else f"{layer}/pool"

    def link(branch: str, src: str, dst: str, input_key: str, dst_offset: int = 0) -> Link:
        conv = graph.node(f"{layer}_{branch}_pre_relu/conv")
        kernel = _weights(graph, f"{layer}_{branch}")
        stride = list(conv.attr["strides"].list.i)
        if stride[1] != stride[2]:
            raise ValueError(f"{conv.name}: unequal strides {stride} are not supported")
        kind = "1x1" if kernel.shape[:2] == (1, 1) else "conv"
        return Link(f"{layer}/{branch}", src=src, dst=dst, input=input_key, kernel=kernel,
                    stride=int(stride[1]), padding=conv.attr["padding"].s.decode(), dst_offset=dst_offset,
                    kind=kind)

    links = [link("1x1", previous, layer, pooled, block.offsets["1x1"])]
    for size in ("3x3", "5x5"):
        inner = f"{layer}/{size}_bottleneck"
        links.append(link(f"{size}_bottleneck", previous, inner, pooled))
        links.append(link(size, inner, layer, inner, block.offsets[size]))
    links.append(link("pool_reduce", previous, layer, pool_input, block.offsets["pool_reduce"]))
    return links


def _pre_relu(graph: GraphDefFunction, node: str) -> str:
    """The tensor before ``node``'s ReLU (Lucid's ``_pre_relu`` concat parts), else ``node`` itself."""
    return graph.inputs_of(node)[0] if graph.node(node).op == "Relu" else node


def _node_of(key: str) -> str:
    """Graph node of a feature key: ``mixed4a/pool`` -> ``mixed4a_pool``; layer and pool names unchanged."""
    return key.replace("/", "_")


def class_to_output(labels_path: Path, num_outputs: int) -> np.ndarray:
    """ImageNet class -> model output index, from a file with one synset (or a filler word) per output."""
    lines = Path(labels_path).read_text().splitlines()
    if len(lines) > num_outputs:
        raise ValueError(f"{labels_path}: {len(lines)} label lines for a model with {num_outputs} outputs")
    index = imagenet.synset_to_index()
    mapping = np.full(imagenet.NUM_CLASSES, -1, dtype=np.int64)
    for output, line in enumerate(lines):
        synset = line.split()[0] if line.strip() else ""
        if synset in index and mapping[index[synset]] < 0:
            mapping[index[synset]] = output
    if not (mapping >= 0).any():
        raise ValueError(f"{labels_path}: no ImageNet synset found (expected lines such as n01440764)")
    return mapping


def _labels_path(model_path: Path, explicit: bool, assets_dir: str | os.PathLike | None,
                 cache_dir: str | os.PathLike | None) -> Path:
    """Labels beside an explicitly given model file win; otherwise the assets folder/cache/download."""
    beside = model_path.parent / LABELS_FILE
    if explicit and beside.is_file():
        return beside
    return download.resolve("inception_v1_labels", assets_dir, cache_dir)


def load(
    path: str | None = None, layers: Sequence[str] | None = None, summit_compat: bool = False, *,
    assets_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
) -> SummitModel:
    """Load ``InceptionV1.pb`` (``path``, else the assets folder, cache or download) as a SummitModel.

    ``layers`` restricts the SUMMIT layers (network order kept); a block's links are kept when it and the
    block before it are both selected. ``summit_compat`` reproduces the original SUMMIT's input scaling and
    unpooled link inputs (module docstring). ``assets_dir``/``cache_dir`` say where to look for (or
    download) the file when no ``path`` is given (see :func:`summit_tf.assets.download.resolve`).
    """
    model_path = _model_path(path, assets_dir, cache_dir)
    graph = GraphDefFunction(read_graph_def(model_path), INPUT_NAME)
    selected = _select(layers)

    blocks = {layer: _block(graph, layer) for layer in LAYERS}
    links: list[Link] = []
    for previous, layer in zip(LAYERS, LAYERS[1:], strict=False):
        _check_pooled_from(graph, blocks[layer], previous)
        if previous in selected and layer in selected:
            links += _links(graph, blocks[layer], previous, summit_compat)
    inner = {link.dst: link.cout for link in links if link.dst not in blocks}

    keys = list(dict.fromkeys([*selected, *(link.input for link in links)]))
    # The graph nodes of each tensor key; a pre-activation is the concat of its branches' pre-ReLU tensors.
    sources = {key: [_node_of(key)] for key in keys} | {"logits": [LOGITS_NODE]}
    pre_activations = {layer: pre_activation_key(layer) for layer in selected}
    for layer, key in pre_activations.items():
        sources[key] = [_pre_relu(graph, part) for part in _concat_inputs(graph, layer)]
    graph.check([node for nodes in sources.values() for node in nodes])
    lo, hi = COMPAT_VALUE_RANGE if summit_compat else VALUE_RANGE

    # Plain Python control flow, so no AutoGraph (slow here); one trace per requested key set.
    @tf.function(reduce_retracing=True, autograph=False)
    def tensors(images: tf.Tensor, wanted: tuple[str, ...], relu_redirect: bool = False
                ) -> dict[str, tf.Tensor]:
        x = tf.convert_to_tensor(images, tf.float32) * (hi - lo) + lo
        values = graph.evaluate(x, [node for key in wanted for node in sources[key]], relu_redirect)
        parts = {key: [values[node] for node in sources[key]] for key in wanted}
        return {key: got[0] if len(got) == 1 else tf.concat(got, axis=-1) for key, got in parts.items()}

    feature_keys = (*keys, "logits")

    def features(images: tf.Tensor, relu_redirect: bool = False) -> dict[str, tf.Tensor]:
        return tensors(images, feature_keys, relu_redirect)

    # Interventions: layer outputs are their concat nodes, link outputs the branch's pre-ReLU BiasAdd node.
    # Only links whose input is what the branch's conv reads: a cut on summit_compat's unpooled inputs
    # would subtract P * K where the network convolves maxpool(P).
    link_outputs = {link.name: _pre_relu(graph, _node_of(link.name)) for link in links
                    if graph.inputs_of(f"{_node_of(link.name)}_pre_relu/conv")[0] == _node_of(link.input)}
    editable = set(selected) | set(link_outputs.values())

    def edited(images: tf.Tensor, wanted: tuple[str, ...], edit: Edit) -> dict[str, tf.Tensor]:
        x = tf.convert_to_tensor(images, tf.float32) * (hi - lo) + lo

        def on_node(name: str, value: tf.Tensor, get: Callable[[str], tf.Tensor]) -> tf.Tensor:
            return edit(name, value, lambda key: get(_node_of(key))) if name in editable else value

        values = graph.evaluate(x, [node for key in wanted for node in sources[key]], edit=on_node)
        parts = {key: [values[node] for node in sources[key]] for key in wanted}
        return {key: got[0] if len(got) == 1 else tf.concat(got, axis=-1) for key, got in parts.items()}

    num_outputs = int(graph.const(LOGITS_WEIGHTS).shape[1])
    spec = f"inception_v1:{model_path}" if path else "inception_v1"
    return SummitModel(
        spec=spec,
        layers=selected,
        channels={layer: blocks[layer].channels for layer in selected},
        links=links,
        input_size=INPUT_SIZE,
        value_range=(lo, hi),
        class_to_output=class_to_output(_labels_path(model_path, bool(path), assets_dir, cache_dir),
                                        num_outputs),
        features_fn=features,
        inner_channels=inner,
        supports_relu_redirect=True,
        description=f"Lucid InceptionV1 {model_path}, {num_outputs} outputs{COMPAT_NOTE * summit_compat}",
        tensors_fn=tensors,
        pre_activations=pre_activations,
        edited_fn=edited,
        link_outputs=link_outputs,
    )


def _model_path(path: str | None, assets_dir: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None) -> Path:
    model_path = Path(path) if path else download.resolve("inception_v1", assets_dir, cache_dir)
    if not model_path.is_file():
        raise FileNotFoundError(f"InceptionV1 GraphDef not found: {model_path}")
    return model_path


def _select(layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        return list(LAYERS)
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown} for inception_v1; layers: {', '.join(LAYERS)}")
    if not layers:
        raise ValueError(f"no layers selected for inception_v1; layers: {', '.join(LAYERS)}")
    return [name for name in LAYERS if name in set(layers)]


def check_against_import(path: str | None = None, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Largest difference, relative to the largest value, between :func:`load`'s features and TF's own
    import of the same file, per feature key, on random images (a file with unexpected ops shows here)."""
    model = load(path)
    keys = list(dict.fromkeys([*model.layers, *(link.input for link in model.links)]))
    nodes = [_node_of(key) for key in keys] + [LOGITS_NODE]
    reference = import_reference(read_graph_def(_model_path(path)), nodes, INPUT_NAME)
    images = tf.random.stateless_uniform([batch, INPUT_SIZE, INPUT_SIZE, 3], seed=[seed, 0])
    got, want = model.features(images), reference(model.scale(images))
    errors = {}
    for key, node in zip([*keys, "logits"], nodes, strict=True):
        a, b = got[key].numpy().astype(np.float64), want[node].numpy().astype(np.float64)
        errors[key] = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
    return errors
