"""Quantized (or float) TFLite models, ``tflite:PATH[+PATH...]``, as exact float TensorFlow functions.

The flatbuffer is read with the ``tflite`` package (:mod:`summit_tf.models.tflite_reader`), every constant
is dequantized, and each operator becomes the equivalent float TF op with the same strides, dilations
and SAME/VALID padding (TFLite's SAME pads like TF's: the extra row/column goes after), fused activations
included. Running float instead of integer arithmetic removes the rounding of every intermediate tensor
to 8 bits; what remains is the network the quantized file describes, differentiable, batched, in one
``tf.function``. Quantize/dequantize operators are identities in float; a DEQUANTIZE of a constant
(float16 weights) is folded away, its output taking the constant's float value.

Several files joined with ``+`` are chained: the inputs of each piece that its operators read take the
previous piece's outputs (by name, else by shape); the shared MobileNetV1 is an embedding extractor plus a
classifier head. Pixels in [0, 1] are mapped onto the input quantization's integer range (the uint8
MobileNets take ``(p - 128) / 128``, ``p`` in 0..255); a float input is assumed to take [-1, 1].

Tensor keys are the TFLite tensor names cut at the first ``;`` (TFLite joins fused op names there), with
trailing activation and concat op names (``/Relu6``, ``/concat``) and the prefix common to all conv
layers dropped, and ``/`` replaced by ``_``, so the TF-slim MobileNetV1 yields ``Conv2d_0``,
``Conv2d_1_depthwise``, ``Conv2d_1_pointwise`` ... SUMMIT layer candidates and links come from
:mod:`summit_tf.models.graph_links`.
``logits`` is the last output before a final softmax (and any quantize step), flattened to
``[B, outputs]``; 1,001 outputs mean 0 = background.

A layer computed with a ReLU/ReLU6 (fused, or a RELU op) also has its pre-activation tensor
``{layer}/pre_activation`` (MobileNet: the conv output before ReLU6), and a concat layer the concat of
its branches' pre-activations. ``tensors()`` runs only the operators its keys depend on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

from summit_tf.models import graph_links, relu_gradients, tflite_reader
from summit_tf.models.base import Edit, Link, SummitModel, pre_activation_key
from summit_tf.models.graph_links import Node

log = logging.getLogger(__name__)

_FUSED = {0: "linear", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
_PADDING = {0: "SAME", 1: "VALID"}
_OP_SUFFIXES = {"relu", "relu6", "activation", "clip", "concat", "concatv2"}
SUPPORTED_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
    "RESHAPE", "SQUEEZE", "SOFTMAX", "CONCATENATION", "PAD", "PADV2", "RELU", "RELU6", "QUANTIZE",
    "DEQUANTIZE",
)
FLOAT_INPUT_RANGE = (-1.0, 1.0)


@dataclass
class _Step:
    """One operator: ``activation(run(*inputs))`` is tensor ``out``; ``run`` alone (before a non-linear
    fused activation) is ``out``'s pre-activation tensor ``pre_activation_key(out)``."""

    out: str
    inputs: tuple[str, ...]
    run: Callable[..., tf.Tensor]
    activation: str = "linear"


@dataclass
class Program:
    """The float network: ordered steps over named tensors, plus its description for link finding."""

    input_key: str
    input_shape: tuple[int, ...]
    value_range: tuple[float, float]
    steps: list[_Step]
    nodes: list[Node]
    logits_key: str
    candidates: list[str]
    shapes: dict[str, tuple[int, ...]]
    default_layers: list[str]

    def producers(self) -> dict[str, int]:
        """Tensor key -> index of the step computing it (pre-activations: the step of their output)."""
        found = {}
        for i, step in enumerate(self.steps):
            found[step.out] = i
            if step.activation != "linear":
                found[pre_activation_key(step.out)] = i
        return found

    def needed(self, keys: Sequence[str]) -> tuple[list[int], set[str]]:
        """The steps that ``keys`` depend on (indices in network order) and every key on the way."""
        producers, seen, todo = self.producers(), set(), list(keys)
        while todo:
            key = todo.pop()
            if key == self.input_key or key in seen:
                continue
            if key not in producers:
                raise KeyError(f"no tensor {key!r} in the model")
            seen.add(key)
            todo.extend(self.steps[producers[key]].inputs)
        return sorted({producers[key] for key in seen}), seen

    def run(self, x: tf.Tensor, keys: Sequence[str], relu_redirect: bool = False,
            edit: Edit | None = None) -> dict[str, tf.Tensor]:
        """The tensors ``keys`` for a batch already in the model's value range; only the operators they
        need run (feature visualization of an early layer never reaches the head). ``edit(key, tensor,
        lookup)`` (interventions) replaces every step output and pre-activation as it is computed."""
        values = {self.input_key: x}
        order, used = self.needed(keys)
        for i in order:
            step = self.steps[i]
            pre = step.run(*(values[k] for k in step.inputs))
            if step.activation != "linear":
                if edit is not None:
                    pre = edit(pre_activation_key(step.out), pre, values.__getitem__)
                values[pre_activation_key(step.out)] = pre
            if step.out in used:
                out = relu_gradients.apply(pre, step.activation, relu_redirect)
                values[step.out] = out if edit is None else edit(step.out, out, values.__getitem__)
        return {k: values[k] for k in keys}

    def link_outputs(self, links: Sequence[Link]) -> dict[str, str]:
        """Link name -> the key where its kernel output is summed, for links into a layer computed by one
        step with exactly the link's output channels (not a concat): the layer's pre-activation, or for a
        step without activation (a residual sum, a linear convolution) the layer itself; links into one
        sum share it."""
        producers, found = self.producers(), {}
        for link in links:
            step = self.steps[producers[link.dst]] if link.dst in producers else None
            if step is not None and step.out == link.dst and link.input != link.dst and \
                    link.dst_offset == 0 and self.shapes.get(link.dst, (0,))[-1] == link.cout:
                found[link.name] = pre_activation_key(link.dst) if step.activation != "linear" else link.dst
        return found

    def pre_activations(self, layers: Sequence[str]) -> dict[str, str]:
        """Layer -> its pre-activation key, where the program has one (a step with a non-linear activation,
        or the concat of such branches)."""
        producers = self.producers()
        return {layer: pre_activation_key(layer) for layer in layers
                if pre_activation_key(layer) in producers}


def _short_name(name: str) -> str:
    parts = name.split(";")[0].split("/")
    while len(parts) > 1 and parts[-1].lower() in _OP_SUFFIXES:
        parts.pop()
    return "/".join(parts)


def _strides(options: dict) -> list[int]:
    return [1, int(options.get("strideH", 1)), int(options.get("strideW", 1)), 1]


class _Builder:
    """Turns the pieces' operators into :class:`_Step` and :class:`Node` lists with unique tensor keys."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.nodes: list[Node] = []
        self.keys: dict[tuple[int, int], str] = {}  # (piece, tensor index) -> key
        self.shapes: dict[str, tuple[int, ...]] = {}

    def key(self, piece: int, tensor: tflite_reader.Tensor) -> str:
        found = self.keys.get((piece, tensor.index))
        if found is not None:
            return found
        key = _short_name(tensor.name) or f"tensor{tensor.index}"
        if key in self.shapes:
            key = f"{key}@{piece}" if f"{key}@{piece}" not in self.shapes else f"{key}@{piece}#{tensor.index}"
        self.keys[(piece, tensor.index)] = key
        self.shapes[key] = tensor.shape
        return key

    def add_piece(self, piece: int, graph: tflite_reader.Graph) -> None:
        for op in graph.operators:
            if op.kind not in SUPPORTED_OPS:
                layer = graph.tensors[op.outputs[0]].name if op.outputs else "?"
                raise ValueError(f"{graph.path}: operator {op.kind} (layer {layer!r}) is not supported; "
                                 f"supported: {', '.join(SUPPORTED_OPS)}")
            self._add(piece, graph, op)

    def _add(self, piece: int, graph: tflite_reader.Graph, op: tflite_reader.Operator) -> None:
        tensors = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
        out_tensor = graph.tensors[op.outputs[0]]
        data = [t for t in tensors if t is not None and not t.is_constant]
        in_keys = tuple(self.key(piece, t) for t in data)
        consts = [t.value if t is not None and t.is_constant else None for t in tensors]
        out = self.key(piece, out_tensor)
        channels = out_tensor.shape[-1] if out_tensor.shape else 0
        act = _FUSED.get(int(op.options.get("fusedActivationFunction", 0)))
        if act is None:
            raise ValueError(f"{graph.path}: fused activation {op.options['fusedActivationFunction']} of "
                             f"{op.kind} is not supported (only NONE, RELU, RELU_N1_TO_1, RELU6)")
        run, node = _OPS[op.kind](op.options, consts, act, tensors)
        node = replace(node or Node("", "other", activation=act), key=out, inputs=in_keys, channels=channels)
        self.steps.append(_Step(out, in_keys, run, node.activation))
        self.nodes.append(node)


def _conv(options: dict, consts: list, act: str, tensors: list):
    kernel = np.transpose(consts[1], (1, 2, 3, 0))  # OHWI -> HWIO
    if tensors[0].shape and tensors[0].shape[-1] != kernel.shape[2]:
        raise ValueError(f"grouped CONV_2D ({tensors[0].shape[-1]} input channels, kernel {consts[1].shape}) "
                         "is not supported")
    bias = consts[2] if len(consts) > 2 else None
    strides = _strides(options)
    padding = _PADDING[int(options.get("padding", 0))]
    dilations = [1, int(options.get("dilationHFactor", 1)), int(options.get("dilationWFactor", 1)), 1]

    def run(x):
        y = tf.nn.conv2d(x, kernel, strides, padding, dilations=dilations)
        return y if bias is None else tf.nn.bias_add(y, bias)

    plain = strides[1] == strides[2] and dilations == [1, 1, 1, 1]
    node = Node("", "conv" if plain else "other", activation=act, kernel=kernel, stride=strides[1],
                padding=padding, bias=bias)
    return run, node


def _depthwise(options: dict, consts: list, act: str, tensors: list):
    cin = tensors[0].shape[-1]
    _, kh, kw, total = consts[1].shape
    kernel = consts[1].reshape(kh, kw, cin, total // cin)
    bias = consts[2] if len(consts) > 2 else None
    strides = _strides(options)
    padding = _PADDING[int(options.get("padding", 0))]
    dilations = [int(options.get("dilationHFactor", 1)), int(options.get("dilationWFactor", 1))]

    def run(x):
        y = tf.nn.depthwise_conv2d(x, kernel, strides, padding, dilations=dilations)
        return y if bias is None else tf.nn.bias_add(y, bias)

    plain = strides[1] == strides[2] and dilations == [1, 1]
    return run, Node("", "depthwise" if plain else "other", activation=act, kernel=kernel, stride=strides[1],
                     padding=padding, bias=bias)


def _fully_connected(options: dict, consts: list, act: str, tensors: list):
    weights = consts[1].T  # [out, in] -> [in, out]
    bias = consts[2] if len(consts) > 2 else None
    keep = bool(options.get("keepNumDims", False))

    def run(x):
        flat = x if keep else tf.reshape(x, [tf.shape(x)[0], -1])
        y = tf.tensordot(flat, weights, axes=1) if keep else tf.matmul(flat, weights)
        return y if bias is None else y + bias

    return run, None


def _add(options: dict, consts: list, act: str, tensors: list):
    const = next((c for c in consts if c is not None), None)

    def run(*xs):
        return xs[0] + (xs[1] if len(xs) > 1 else const)

    return run, Node("", "add" if const is None else "other", activation=act)


def _pool(options: dict, fn: Callable) -> Callable:
    size = [int(options["filterHeight"]), int(options["filterWidth"])]
    strides = [int(options.get("strideH", 1)), int(options.get("strideW", 1))]
    padding = _PADDING[int(options.get("padding", 0))]
    return lambda x: fn(x, size, strides, padding)


def _avg_pool(options: dict, consts: list, act: str, tensors: list):
    size = [int(options["filterHeight"]), int(options["filterWidth"])]
    if _PADDING[int(options.get("padding", 0))] == "VALID" and list(tensors[0].shape[1:3]) == size:
        # A global average pool: stays global at other input sizes (feature visualization feeds 140 px).
        return (lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)), None
    return _pool(options, tf.nn.avg_pool2d), None


def _max_pool(options: dict, consts: list, act: str, tensors: list):
    return _pool(options, tf.nn.max_pool2d), None


def _mean(options: dict, consts: list, act: str, tensors: list):
    axes = [int(a) for a in np.reshape(consts[1], -1)]
    keep = bool(options.get("keepDims", False))
    return (lambda x: tf.reduce_mean(x, axis=axes, keepdims=keep)), None


def _reshape(options: dict, consts: list, act: str, tensors: list):
    target = consts[1] if len(consts) > 1 and consts[1] is not None else options.get("newShape")
    if target is None:
        raise ValueError("RESHAPE without a constant target shape is not supported")
    rest = [int(d) for d in np.reshape(target, -1)[1:]]  # the first dimension is the batch
    return (lambda x: tf.reshape(x, [tf.shape(x)[0], *rest])), None


def _squeeze(options: dict, consts: list, act: str, tensors: list):
    dims = [int(d) for d in options.get("squeezeDims", None) or []]
    if 0 in dims or not dims:
        dims = [i for i, d in enumerate(tensors[0].shape) if d == 1 and i > 0]
    return (lambda x: tf.squeeze(x, axis=dims)), None


def _softmax(options: dict, consts: list, act: str, tensors: list):
    beta = float(options.get("beta", 1.0))
    return (lambda x: tf.nn.softmax(beta * x, axis=-1)), None


def _concat(options: dict, consts: list, act: str, tensors: list):
    axis = int(options.get("axis", -1))
    rank = len(tensors[0].shape)
    channel_axis = axis in (-1, rank - 1)
    return (lambda *xs: tf.concat(xs, axis=axis)), \
        Node("", "concat" if channel_axis else "other", activation=act)


def _pad(options: dict, consts: list, act: str, tensors: list):
    pads = np.asarray(consts[1]).astype(np.int64)
    value = 0.0
    if len(consts) > 2 and consts[2] is not None:
        value = float(np.reshape(consts[2], -1)[0])
    return (lambda x: tf.pad(x, pads, constant_values=value)), \
        Node("", "pad" if value == 0.0 else "other")


def _relu(options: dict, consts: list, act: str, tensors: list):
    return _identity_fn, Node("", "identity", activation="relu")


def _relu6(options: dict, consts: list, act: str, tensors: list):
    return _identity_fn, Node("", "identity", activation="relu6")


def _identity_fn(x: tf.Tensor) -> tf.Tensor:
    return x


def _identity(options: dict, consts: list, act: str, tensors: list):
    return _identity_fn, Node("", "identity")


_OPS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected, "ADD": _add,
    "AVERAGE_POOL_2D": _avg_pool, "MAX_POOL_2D": _max_pool, "MEAN": _mean, "RESHAPE": _reshape,
    "SQUEEZE": _squeeze, "SOFTMAX": _softmax, "CONCATENATION": _concat, "PAD": _pad, "PADV2": _pad,
    "RELU": _relu, "RELU6": _relu6, "QUANTIZE": _identity, "DEQUANTIZE": _identity,
}


def _consumed_inputs(graph: tflite_reader.Graph) -> list[int]:
    read = {i for op in graph.operators for i in op.inputs}
    return [i for i in graph.inputs if i in read]


def _chain(builder: _Builder, piece: int, graph: tflite_reader.Graph, previous: tflite_reader.Graph) -> None:
    """Bind the inputs that ``graph`` reads to the outputs of ``previous`` (piece - 1)."""
    outputs = {previous.tensors[i].name: previous.tensors[i] for i in previous.outputs}
    for index in _consumed_inputs(graph):
        tensor = graph.tensors[index]
        match = outputs.get(tensor.name)
        if match is None:
            same_shape = [t for t in outputs.values() if t.shape[1:] == tensor.shape[1:]]
            if len(same_shape) != 1:
                raise ValueError(
                    f"cannot chain {graph.path}: its input {tensor.name!r} {list(tensor.shape)} matches no "
                    f"single output of {previous.path}: "
                    f"{[(t.name, list(t.shape)) for t in outputs.values()]}"
                )
            match = same_shape[0]
        if match.shape[1:] != tensor.shape[1:]:
            raise ValueError(f"cannot chain {graph.path}: input {tensor.name!r} {list(tensor.shape)} vs "
                             f"{previous.path} output {list(match.shape)}")
        builder.keys[(piece, index)] = builder.keys[(piece - 1, match.index)]


def _logits_key(builder: _Builder, graph: tflite_reader.Graph, piece: int) -> str:
    """The last output before a final softmax (and quantize/dequantize) of the last piece."""
    producers = {op.outputs[0]: op for op in graph.operators}
    index = graph.outputs[0]
    while index in producers and producers[index].kind in ("QUANTIZE", "DEQUANTIZE"):
        index = producers[index].inputs[0]
    if index in producers and producers[index].kind == "SOFTMAX":
        index = producers[index].inputs[0]
    return builder.keys[(piece, index)]


def _readable_keys(keys: Sequence[str], candidates: Sequence[str]) -> dict[str, str]:
    """Drop the path prefix shared by every candidate layer, then join path parts with ``_``: SUMMIT layer
    names stay ``/``-free (``/`` marks inner channel spaces and is encoded in HDF5 names)."""
    split = [c.split("/") for c in candidates]
    prefix: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    head = "/".join(prefix[: min(len(p) for p in split) - 1]) + "/" if split else "/"
    for cut in (head, None):
        renamed = {k: (k[len(cut):] if cut and k.startswith(cut) else k).replace("/", "_") for k in keys}
        if len(set(renamed.values())) == len(renamed):
            return renamed
    return {k: f"{v}#{i}" for i, (k, v) in enumerate(renamed.items())}


def _fold_constant_dequantize(graph: tflite_reader.Graph) -> tflite_reader.Graph:
    """``graph`` without its DEQUANTIZE ops of constants (float16 weights), their outputs made constants:
    convolutions read their weights as constants."""
    tensors, operators = list(graph.tensors), []
    for op in graph.operators:
        source = tensors[op.inputs[0]] if op.kind == "DEQUANTIZE" else None
        if source is not None and source.is_constant:
            tensors[op.outputs[0]] = replace(tensors[op.outputs[0]], value=source.value.astype(np.float32))
        else:
            operators.append(op)
    return replace(graph, tensors=tensors, operators=operators)


def build_program(paths: Sequence[str]) -> Program:
    """Read and chain the TFLite files into one float :class:`Program`."""
    graphs = [_fold_constant_dequantize(tflite_reader.read(p)) for p in paths]
    builder = _Builder()
    first = graphs[0]
    inputs = _consumed_inputs(first)
    if len(inputs) != 1:
        raise ValueError(f"{first.path}: expected one image input, found {len(inputs)}")
    input_tensor = first.tensors[inputs[0]]
    if len(input_tensor.shape) != 4 or input_tensor.shape[1] != input_tensor.shape[2]:
        raise ValueError(f"{first.path}: expected a square [1, S, S, C] image input, "
                         f"got {list(input_tensor.shape)}")
    input_key = builder.key(0, input_tensor)
    for piece, graph in enumerate(graphs):
        if piece:
            _chain(builder, piece, graph, graphs[piece - 1])
        builder.add_piece(piece, graph)
    logits = _logits_key(builder, graphs[-1], len(graphs) - 1)
    spatial = {k for k, shape in builder.shapes.items() if len(shape) == 4}
    candidates, defaults = graph_links.candidate_layers(builder.nodes, spatial)
    names = _readable_keys(list(builder.shapes), candidates)
    steps = [_Step(names[s.out], tuple(names[k] for k in s.inputs), s.run, s.activation)
             for s in builder.steps]
    nodes = [replace(n, key=names[n.key], inputs=tuple(names[k] for k in n.inputs)) for n in builder.nodes]
    steps += _concat_pre_activations(steps, nodes, {names[c] for c in candidates})
    value_range = input_tensor.integer_range() or FLOAT_INPUT_RANGE
    return Program(names[input_key], input_tensor.shape, value_range, steps, nodes, names[logits],
                   [names[c] for c in candidates], {names[k]: v for k, v in builder.shapes.items()},
                   [names[c] for c in defaults])


def _concat_pre_activations(steps: Sequence[_Step], nodes: Sequence[Node], layers: set[str]) -> list[_Step]:
    """Steps computing the pre-activation of each concat layer without an activation of its own: the
    concat of its branches' pre-activations (branches without an activation as they are), as Lucid's
    ``mixed4a_pre_relu``. Only run when asked for."""
    activated = {step.out for step in steps if step.activation != "linear"}
    extra = []
    for step, node in zip(steps, nodes, strict=True):
        if node.op == "concat" and step.out in layers and step.activation == "linear" and \
                activated.intersection(step.inputs):
            inputs = tuple(pre_activation_key(k) if k in activated else k for k in step.inputs)
            extra.append(_Step(pre_activation_key(step.out), inputs, step.run))
    return extra


def class_mapping(num_outputs: int) -> np.ndarray:
    """ImageNet class -> output index: 1,001 outputs put background first; 1,000 are the classes."""
    if num_outputs == 1001:
        return np.arange(1000, dtype=np.int64) + 1
    if num_outputs == 1000:
        return np.arange(1000, dtype=np.int64)
    log.warning("model has %d outputs, not ImageNet's 1,000 (+ background): no class mapping", num_outputs)
    return np.full(1000, -1, dtype=np.int64)


def summit_model(program: Program, spec: str, layers: Sequence[str] | None, default_layers: Sequence[str],
                 description: str = "") -> SummitModel:
    """Wrap a :class:`Program` with the chosen SUMMIT layers, their links and one feature function."""
    channels_of = {n.key: n.channels for n in program.nodes}
    channels = {c: channels_of[c] for c in program.candidates}
    model = SummitModel(spec=spec, layers=list(program.candidates), channels=channels, links=[],
                        input_size=int(program.input_shape[1]), value_range=program.value_range,
                        class_to_output=np.zeros(0), features_fn=lambda images: {})
    chosen = model.check_layers(layers if layers is not None else default_layers)
    if not chosen:
        raise ValueError(f"{spec}: no layers chosen; layers: {', '.join(program.candidates)}")
    links = graph_links.find_links(program.nodes, program.candidates, chosen)
    keys = list(dict.fromkeys([*chosen, *graph_links.link_inputs(links)]))
    lo, hi = program.value_range
    logits_key = program.logits_key

    # Plain Python control flow over the steps, so no AutoGraph; one trace per requested key set.
    @tf.function(reduce_retracing=True, autograph=False)
    def tensors(images: tf.Tensor, wanted: tuple[str, ...], relu_redirect: bool = False
                ) -> Mapping[str, tf.Tensor]:
        x = tf.convert_to_tensor(images, tf.float32) * (hi - lo) + lo
        values = program.run(x, [logits_key if k == "logits" else k for k in wanted], relu_redirect)
        if "logits" in wanted:
            logits = values.pop(logits_key)
            values["logits"] = tf.reshape(logits, [tf.shape(logits)[0], -1])
        return {k: values[k] for k in wanted}

    feature_keys = (*keys, "logits")

    def features(images: tf.Tensor, relu_redirect: bool = False) -> Mapping[str, tf.Tensor]:
        return tensors(images, feature_keys, relu_redirect)

    def edited(images: tf.Tensor, wanted: tuple[str, ...], edit: Edit) -> dict[str, tf.Tensor]:
        x = tf.convert_to_tensor(images, tf.float32) * (hi - lo) + lo
        values = program.run(x, [logits_key if k == "logits" else k for k in wanted], edit=edit)
        if "logits" in wanted:
            logits = values.pop(logits_key)
            values["logits"] = tf.reshape(logits, [tf.shape(logits)[0], -1])
        return {k: values[k] for k in wanted}

    num_outputs = int(np.prod(program.shapes[logits_key][1:]))
    return SummitModel(spec=spec, layers=chosen, channels={c: channels[c] for c in chosen}, links=links,
                       input_size=model.input_size, value_range=program.value_range,
                       class_to_output=class_mapping(num_outputs), features_fn=features,
                       inner_channels={}, supports_relu_redirect=True, description=description,
                       tensors_fn=tensors, pre_activations=program.pre_activations(chosen),
                       edited_fn=edited, link_outputs=program.link_outputs(links),
                       layer_activations=graph_links.layer_activations(program.nodes, chosen))


def load(paths: Sequence[str], layers: Sequence[str] | None = None, spec: str | None = None) -> SummitModel:
    """``tflite:PATH[+PATH...]``; layers and defaults: :func:`graph_links.candidate_layers`."""
    if not paths or any(not p for p in paths):
        raise ValueError(f"tflite spec needs PATH[+PATH...], got {'+'.join(paths)!r}")
    program = build_program(paths)
    spec = spec or "tflite:" + "+".join(paths)
    description = f"TFLite {' + '.join(paths)}"
    return summit_model(program, spec, layers, program.default_layers, description=description)
