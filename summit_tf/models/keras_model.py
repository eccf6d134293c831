"""Keras models: ``keras:PATH[?options]`` (a ``.keras``/``.h5`` file or a SavedModel folder) and
``keras_app:NAME[?options]`` (``keras.applications``, e.g. ``keras_app:MobileNet?weights=none``).

Options (``?key=value&...``): ``weights=imagenet|none|FILE`` (applications; ``imagenet`` is the default and
is downloaded by Keras, ``none`` builds random weights, which is what the tests use offline),
``size=S`` (input size when the model leaves it open; applications default to 224 or their own), and
``range=LO,HI`` (the value range of a file model; default [0, 255] for Keras files, [-1, 1] for
SavedModels).

Layers come from the model's own functional graph (``get_config()``, public; ``keras.ops`` calls such as
ConvNeXt's ``x + y`` included): outputs of activations of any kind (ReLU, ReLU6, swish, hard-swish, GELU
..., fused or after BatchNorm) of convolutions and sums, residual sums, and channel concatenations
(:func:`graph_links.candidate_layers`: Inception/DenseNet-style blocks by default, else every
candidate, e.g. ``conv_pw_k_relu`` in MobileNet, ``block{b}_conv{c}`` in VGG16). Links are the exact linear
pieces into each chosen layer from every earlier chosen layer reached, skip links of residual blocks
included, BatchNorm and layer scales folded into the kernels (:mod:`graph_links`); a ``SeparableConv2D`` is
one k x k link (its depthwise and pointwise stages are both linear), a ``Dense`` on a ``[B, H, W, C]``
tensor a 1x1 convolution, a grouped ``Conv2D`` with one channel a group a depthwise stage, and a
squeeze-and-excitation ``Multiply`` a per-channel gate of the stage it scales. Layer kinds without an
exact linear form (LayerNorm, pooling, nested models) end the linear pieces: the loader logs once which
layers get no incoming link and where their pieces stop. Applications take pixels through their own
``preprocess_input`` (inside ``features``), so ``value_range`` is the per-channel envelope of what the
network sees; logits are the pre-softmax outputs (``classifier_activation=None``; for files ending in a
softmax, ``log`` of the probabilities, which has the same softmax and ranking).

Each layer with an activation also has its pre-activation tensor ``{layer}/pre_activation``: the input of
a ReLU layer, a linear twin (same weights) of a layer with a fused activation, or for a concatenation the
concat of its branches' pre-activations. ``tensors()`` builds one model per requested key set, which runs
only the layers those keys depend on.

Interventions (``edited_tensors``, :mod:`summit_tf.intervene`) run the model call by call
(:mod:`keras_steps`), every layer output and link output editable; a link's output is the pre-activation
of the layer (or concatenated branch) it ends in, shared by a residual block's link and its skip link.

A SavedModel folder is converted by the TFLite converter to a float flatbuffer (BatchNorm and activations
fused, numerics unchanged) and loaded by :mod:`summit_tf.models.tflite`: Keras 3 cannot rebuild layer
graphs from SavedModels.
"""

from __future__ import annotations

import functools
import importlib
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from summit_tf.models import graph_links, keras_steps, relu_gradients, tflite
from summit_tf.models.base import Edit, SummitModel, layer_of_key, pre_activation_key
from summit_tf.models.graph_links import Node

log = logging.getLogger(__name__)

OPTIONS = ("weights", "size", "range")
_IDENTITY_LAYERS = ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "Identity",
                    "ActivityRegularization")


def parse_options(arg: str) -> tuple[str, dict[str, str]]:
    """``NAME?key=value&key=value`` -> (NAME, options); unknown keys raise with the known ones."""
    name, _, query = arg.partition("?")
    options = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            known = ", ".join(f"{o}=..." for o in OPTIONS)
            raise ValueError(f"bad option {item!r} in {arg!r}; options: {known}")
        options[key] = value
    return name, options


def _value_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"range must be LO,HI (e.g. range=-1,1), got {text!r}") from None
    return lo, hi


# ----------------------------------------------------------------------------------------------- graph
def _relu_kind(layer: keras.layers.Layer) -> str:
    """A layer's activation by name: ``linear``, ``relu``, ``relu6``, or any other (``silu``, ``gelu``,
    ``hard_silu``, ``leaky_relu`` ...); ``other`` for an unnamed callable. Only ReLU/ReLU6 get the
    feature-visualization redirect."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.ReLU):
        if config.get("negative_slope", 0.0) or config.get("threshold", 0.0):
            return "leaky_relu"
        return {None: "relu", 6.0: "relu6"}.get(config.get("max_value"), "clipped_relu")
    name = config.get("activation", "linear")
    return name if isinstance(name, str) else "other"


def _activation_of(layer: keras.layers.Layer) -> str:
    has = "activation" in layer.get_config() or isinstance(layer, keras.layers.ReLU)
    return _relu_kind(layer) if has else "linear"


def _parents(inbound: list) -> tuple[str, ...]:
    """Layer names feeding a layer, from its serialized inbound node (Keras 3 ``keras_history``)."""
    found: list[str] = []

    def visit(value):
        if isinstance(value, dict):
            history = value.get("config", {}).get("keras_history") if value.get("class_name") == \
                "__keras_tensor__" else None
            if history:
                found.append(history[0])
                return
            for v in value.values():
                visit(v)
        elif isinstance(value, list | tuple):
            for v in value:
                visit(v)

    visit(inbound)
    return tuple(found)


def _rank(op) -> int:
    """Rank of an operation's one output tensor; 0 for several outputs (such layers stay opaque)."""
    shape = getattr(op.output, "shape", None)
    return len(shape) if shape is not None else 0


def _channels(op) -> int:
    return int(op.output.shape[-1] or 0) if _rank(op) else 0


def _value(variable) -> np.ndarray:
    return np.array(variable.numpy(), dtype=np.float64)


def _node(layer: keras.layers.Layer, parents: tuple[str, ...]) -> Node:
    """Describe one single-call layer for link finding."""
    kind = type(layer).__name__
    config = layer.get_config()
    channels = _channels(layer)
    act = _activation_of(layer)
    base = dict(key=layer.name, inputs=parents, channels=channels, activation=act, label=kind)
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        strides, dilation = tuple(config["strides"]), tuple(config.get("dilation_rate", (1, 1)))
        groups = int(config.get("groups", 1))
        plain = strides[0] == strides[1] and dilation == (1, 1) and \
            config.get("data_format", "channels_last") == "channels_last"
        bias = _value(layer.bias) if config.get("use_bias") else None
        if kind == "SeparableConv2D":
            dw = _value(layer.depthwise_kernel)
            pw = _value(layer.pointwise_kernel)
            kh, kw, cin, mult = dw.shape
            kernel = np.einsum("hwim,imj->hwij", dw, pw[0, 0].reshape(cin, mult, -1))
            op = "conv"
        else:
            kernel = _value(layer.kernel)
            op = "conv" if kind == "Conv2D" else "depthwise"
        if kind == "Conv2D" and groups != 1:  # grouped: only the depthwise case (one channel a group)
            if kernel.shape[2] == 1 and groups == channels:
                kernel, op = kernel.transpose(0, 1, 3, 2), "depthwise"
            else:
                plain = False
        return Node(**base, op=op if plain else "other", kernel=kernel, stride=int(strides[0]),
                    padding=config["padding"].upper(), bias=bias)
    if kind == "Dense" and len(layer.input.shape) == 4:  # a Dense on [B, H, W, C] is a 1x1 convolution
        bias = _value(layer.bias) if config.get("use_bias") else None
        return Node(**base, op="conv", kernel=_value(layer.kernel)[None, None], bias=bias)
    if kind == "BatchNormalization" and config.get("axis") in (-1, 3, [-1], [3]):
        eps = float(config["epsilon"])
        gamma = _value(layer.gamma) if config.get("scale", True) else 1.0
        beta = _value(layer.beta) if config.get("center", True) else 0.0
        scale = gamma / np.sqrt(_value(layer.moving_variance) + eps)
        scale = np.broadcast_to(scale, (channels,)).astype(np.float64)
        return Node(**base, op="scale", kernel=scale, bias=beta - _value(layer.moving_mean) * scale)
    if kind == "LayerScale" and len(layer.weights) == 1 and tuple(layer.weights[0].shape) == (channels,):
        return Node(**base, op="scale", kernel=_value(layer.weights[0]))  # ConvNeXt: x * gamma per channel
    if kind == "Add":
        return Node(**base, op="add")
    if kind == "Multiply" and len(parents) == 2:
        return Node(**{**base, "activation": "linear"}, op="other")  # a gate when one factor is global
    if kind == "Concatenate" and config.get("axis") in (-1, 3):
        return Node(**base, op="concat")
    if kind == "ZeroPadding2D":
        return Node(**base, op="pad")
    if kind in ("ReLU", "Activation") or kind in _IDENTITY_LAYERS:
        return Node(**base, op="identity")
    if kind == "InputLayer":
        return Node(**base, op="input")
    return Node(**{**base, "activation": "linear"}, op="other")


_REDUCING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Reshape", "GlobalAveragePooling1D")


def _spatial(model: keras.Model, nodes: Sequence[Node]) -> set[str]:
    """Rank-4 tensors on the image path: not computed from a global pooling (gates, the head)."""
    operations = model.operations
    rank4 = {op.name for op in operations if not isinstance(op, keras.Model) and _rank(op) == 4}
    reducing = {op.name for op in operations if type(op).__name__ in _REDUCING}
    return graph_links.main_path(nodes, rank4, reducing)


def _with_gates(nodes: list[Node], spatial: set[str]) -> list[Node]:
    """A two-input ``Multiply`` of an image-path tensor by a global one is a squeeze-and-excitation gate."""
    out = []
    for n in nodes:
        if n.label == "Multiply" and len(n.inputs) == 2 and n.key in spatial:
            inside = [i in spatial for i in n.inputs]
            if sum(inside) == 1:
                main = n.inputs[inside.index(True)]
                gate = n.inputs[inside.index(False)]
                n = replace(n, op="gate", inputs=(main, gate))
        out.append(n)
    return out


def _operations(model: keras.Model) -> dict:
    """Name -> layer or ``keras.ops`` operation of a functional model (``get_layer`` knows only layers)."""
    return {op.name: op for op in model.operations}


def describe(model: keras.Model) -> list[Node]:
    """The functional graph of ``model`` as link-finding nodes, in the model's layer order."""
    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential) or \
            not hasattr(model, "get_config"):
        raise ValueError("only functional Keras models expose their layer graph (a Sequential: "
                         "keras.Model(model.inputs, model.outputs))")
    layers = model.get_config().get("layers", [])
    operations = _operations(model)
    nodes = []
    for entry in layers:
        layer = operations[entry["name"]]
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(layer, keras.layers.Layer):  # a keras.ops call in the graph (ConvNeXt's ``x + y``)
            parents = _parents(inbound)
            op = "add" if type(layer).__name__ == "Add" and len(parents) == 2 else "other"
            nodes.append(Node(layer.name, op, parents, _channels(layer),
                              label=f"keras.ops.{type(layer).__name__}"))
            continue
        if len(inbound) > 1 or isinstance(layer, keras.Model):
            log.info("layer %s is shared or nested: treated as opaque", layer.name)
            channels = _channels(layer) if len(inbound) <= 1 else 0
            nodes.append(Node(layer.name, "other", _parents(inbound), channels, label=type(layer).__name__))
            continue
        nodes.append(_node(layer, _parents(inbound)))
    return nodes


# ----------------------------------------------------------------------------------------------- redirect
class RedirectedReLU(keras.layers.Layer):
    """ReLU/ReLU6 whose gradient is Lucid's redirect (:mod:`summit_tf.models.relu_gradients`)."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, x):
        return relu_gradients.apply(x, self.kind, relu_redirect=True)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


def _redirected_clone(model: keras.Model) -> keras.Model:
    """A copy of ``model`` whose ReLU/ReLU6 activations (layers or fused) redirect their gradient."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        kind = _activation_of(layer)
        if kind not in ("relu", "relu6"):
            return layer.__class__.from_config(config)
        if isinstance(layer, keras.layers.ReLU | keras.layers.Activation):
            return RedirectedReLU(kind, name=layer.name)
        inner = layer.__class__.from_config({**config, "activation": "linear", "name": f"{layer.name}_lin"})
        return keras.Sequential([inner, RedirectedReLU(kind, name=f"{layer.name}_redirect")], name=layer.name)

    with tf.init_scope():  # built on first use, maybe while a tf.function traces: weights copy eagerly
        copy = keras.models.clone_model(model, clone_function=clone)
        for layer in model.layers:
            if layer.weights:
                copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


# ------------------------------------------------------------------------------------------ pre-activation
def _has_pre_activation(nodes: Mapping[str, Node], key: str) -> bool:
    """A layer with a non-linear activation has a tensor before it; a concat has one if a branch has."""
    node = nodes[key]
    if node.op == "concat":
        return any(_has_pre_activation(nodes, k) for k in node.inputs)
    return node.activation != "linear"


def _pre_activation(source: keras.Model, original: keras.Model, nodes: Mapping[str, Node], key: str,
                    made: dict[str, keras.KerasTensor]) -> keras.KerasTensor:
    """Layer ``key``'s tensor before its activation, as a symbolic tensor of ``source`` (``original`` or
    its redirected clone): an activation layer's input, a linear twin (same weights) of a layer with a
    fused activation, or for a concat the concat of its branches' pre-activations (Lucid's ``_pre_relu``).
    ``made`` keeps each one built once per model. New layers are named ``{key}_pre_activation``: an
    automatic name would advance Keras's global name counters and rename later models' layers."""
    if key in made:
        return made[key]
    node = nodes[key]
    name = f"{key}_pre_activation"
    while name in {layer.name for layer in source.layers}:
        name += "_"
    layer = _operations(original)[key]
    if node.op == "concat":
        parts = [_pre_activation(source, original, nodes, k, made) if _has_pre_activation(nodes, k)
                 else _operations(source)[k].output for k in node.inputs]
        made[key] = keras.layers.Concatenate(axis=-1, name=name)(parts)
    elif isinstance(layer, keras.layers.ReLU | keras.layers.Activation):
        made[key] = source.get_layer(key).input
    else:
        made[key] = keras_steps.linear_twin(layer, name)(source.get_layer(key).input)
    return made[key]


# ----------------------------------------------------------------------------------------------- model
def _ends_in_softmax(model: keras.Model) -> bool:
    last = model.layers[-1]
    return isinstance(last, keras.layers.Softmax) or last.get_config().get("activation") == "softmax"


def _summit_model(model: keras.Model, spec: str, layers: Sequence[str] | None,
                  preprocess: Callable[[tf.Tensor], tf.Tensor], value_range: tuple[float, float],
                  description: str) -> SummitModel:
    shape = model.input_shape
    if not isinstance(shape, tuple) or len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"{spec}: expected one square image input [None, S, S, 3], got {shape} "
                         "(give the size with ?size=S)")
    nodes = describe(model)
    spatial = _spatial(model, nodes)
    nodes = _with_gates(nodes, spatial)
    candidates, defaults = graph_links.candidate_layers(nodes, spatial)
    channels_of = {n.key: n.channels for n in nodes}
    probe = SummitModel(spec=spec, layers=candidates, channels={c: channels_of[c] for c in candidates},
                        links=[], input_size=int(shape[1]), value_range=value_range,
                        class_to_output=np.zeros(0), features_fn=lambda images: {})
    chosen = probe.check_layers(layers if layers is not None else defaults)
    if not chosen:
        raise ValueError(f"{spec}: no layers chosen; layers: {', '.join(candidates) or '(none)'}")
    links = graph_links.find_links(nodes, candidates, chosen)
    keys = list(dict.fromkeys([*chosen, *graph_links.link_inputs(links)]))
    softmax = _ends_in_softmax(model)

    def logits_of(output: tf.Tensor) -> tf.Tensor:
        logits = tf.math.log(tf.maximum(output, 1e-30)) if softmax else output
        return tf.reshape(logits, [tf.shape(logits)[0], -1])

    by_key = {n.key: n for n in nodes}
    pre_activations = {c: pre_activation_key(c) for c in chosen if _has_pre_activation(by_key, c)}
    layer_of = {pre: layer for layer, pre in pre_activations.items()}
    redirected = functools.cache(lambda: _redirected_clone(model))

    @functools.cache
    def extractor(wanted: tuple[str, ...], redirect: bool) -> keras.Model:
        """A model computing just ``wanted`` (Keras runs only the layers its outputs depend on)."""
        with tf.init_scope():  # built on first use, maybe while a tf.function traces
            source = redirected() if redirect else model
            made: dict[str, keras.KerasTensor] = {}

            def symbolic(key: str) -> keras.KerasTensor:
                if key == "logits":
                    return source.outputs[0]
                if key in layer_of:
                    return _pre_activation(source, model, by_key, layer_of[key], made)
                return _operations(source)[key].output

            net = keras.Model(source.inputs, {key: symbolic(key) for key in wanted})
            # Any image size: feature visualization feeds 140 px (128 + the transforms' 12) to models built
            # for 224. Only the layers the keys need run, so a fixed-size head never sees other sizes.
            net.input_spec = None
            return net

    @functools.cache
    def traced(wanted: tuple[str, ...], redirect: bool) -> tf.types.experimental.PolymorphicFunction:
        """One ``tf.function`` per key set: the extractor's new weights (twins, the redirected clone)
        are created in its first trace, the only one where TF allows creating variables."""

        def run(images: tf.Tensor) -> Mapping[str, tf.Tensor]:
            net = extractor(wanted, redirect)
            out = dict(net(preprocess(tf.convert_to_tensor(images, tf.float32)), training=False))
            if "logits" in out:
                out["logits"] = logits_of(out["logits"])
            return out

        return tf.function(run, reduce_retracing=True, autograph=False)  # plain Python: no AutoGraph

    def tensors(images: tf.Tensor, wanted: tuple[str, ...], relu_redirect: bool = False
                ) -> Mapping[str, tf.Tensor]:
        return traced(tuple(wanted), relu_redirect)(images)

    feature_keys = (*keys, "logits")

    def features(images: tf.Tensor, relu_redirect: bool = False) -> Mapping[str, tf.Tensor]:
        return tensors(images, feature_keys, relu_redirect)

    # Interventions: the model run call by call (keras_steps), every layer and link output editable.
    link_outputs = keras_steps.link_outputs(by_key, links)
    parts = {pre: keras_steps.pre_parts(by_key, layer) for layer, pre in pre_activations.items()}
    pre_keys = dict.fromkeys([*link_outputs.values(), *(p for ps in parts.values() for p in ps)])
    split = [layer_of_key(key) for key in pre_keys if layer_of_key(key) != key]  # layers run in two steps
    stepwise = functools.cache(lambda: keras_steps.Stepwise(model, split))
    editable = frozenset([*chosen, *link_outputs.values()])

    def edited(images: tf.Tensor, wanted: tuple[str, ...], edit: Edit) -> dict[str, tf.Tensor]:
        sources = {key: [keras_steps.OUTPUT] if key == "logits" else parts.get(key, [key]) for key in wanted}
        x = preprocess(tf.convert_to_tensor(images, tf.float32))
        named = stepwise().run(x, [k for ks in sources.values() for k in ks], edit, editable)
        out = {key: named[ks[0]] if len(ks) == 1 else tf.concat([named[k] for k in ks], axis=-1)
               for key, ks in sources.items()}
        if "logits" in out:
            out["logits"] = logits_of(out["logits"])
        return out

    num_outputs = int(np.prod(model.outputs[0].shape[1:]))
    return SummitModel(spec=spec, layers=chosen, channels={c: channels_of[c] for c in chosen}, links=links,
                       input_size=int(shape[1]), value_range=value_range,
                       class_to_output=tflite.class_mapping(num_outputs), features_fn=features,
                       supports_relu_redirect=True, description=description, tensors_fn=tensors,
                       pre_activations=pre_activations, edited_fn=edited, link_outputs=link_outputs,
                       layer_activations=graph_links.layer_activations(nodes, chosen))


def _scaler(value_range: tuple[float, float]) -> Callable[[tf.Tensor], tf.Tensor]:
    lo, hi = value_range
    return lambda images: images * (hi - lo) + lo


def _saved_model(path: Path, layers: Sequence[str] | None, spec: str, value_range: tuple[float, float]):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    with tempfile.TemporaryDirectory() as folder:
        flat = Path(folder) / "model.tflite"
        flat.write_bytes(converter.convert())
        program = tflite.build_program([str(flat)])
    program.value_range = value_range
    description = f"SavedModel {path}"
    return tflite.summit_model(program, spec, layers, program.default_layers, description=description)


def load_file(arg: str, layers: Sequence[str] | None = None, spec: str | None = None) -> SummitModel:
    """``keras:PATH[?size=S&range=LO,HI]``: a ``.keras``/``.h5`` file or a SavedModel folder."""
    name, options = parse_options(arg)
    spec = spec or f"keras:{arg}"
    if "weights" in options:
        raise ValueError(f"{spec}: weights=... applies to keras_app: models only")
    path = Path(name).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no Keras model at {str(path)!r} (expected a .keras/.h5 file or a "
                                "SavedModel folder)")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"{spec}: folder {path} is not a SavedModel (no saved_model.pb)")
        return _saved_model(path, layers, spec, _value_range(options.get("range", "-1,1")))
    if path.suffix not in (".keras", ".h5"):
        raise ValueError(f"{spec}: expected a .keras or .h5 file or a SavedModel folder, got {path.name!r}")
    model = _functional(keras.models.load_model(path, compile=False), spec)
    if "size" in options:
        model = _with_input_size(model, int(options["size"]))
    value_range = _value_range(options.get("range", "0,255"))
    return _summit_model(model, spec, layers, _scaler(value_range), value_range, f"Keras model {path}")


def _functional(model: keras.Model, spec: str) -> keras.Model:
    """A Sequential as a functional model of the same layers: only those list their ``operations``."""
    if not isinstance(model, keras.Sequential):
        return model
    try:
        inputs = model.inputs
    except AttributeError as error:  # never built: Keras gives it no input layer
        raise ValueError(f"{spec}: a Sequential model without an input shape (start it with keras.Input)"
                         ) from error
    return keras.Model(inputs, model.outputs, name=model.name)


def _with_input_size(model: keras.Model, size: int) -> keras.Model:
    """Rebuild a model whose input size is open (None) at ``size`` x ``size``."""
    config = model.get_config()
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            shape = entry["config"].get("batch_shape") or entry["config"].get("batch_input_shape")
            entry["config"]["batch_shape"] = [shape[0], size, size, shape[-1]]
            entry["config"].pop("batch_input_shape", None)
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def applications() -> list[str]:
    """Model constructors in ``keras.applications`` (``MobileNet``, ``ResNet50`` ...)."""
    return sorted(n for n in dir(keras.applications) if n[:1].isupper())


def load_application(arg: str, layers: Sequence[str] | None = None, spec: str | None = None) -> SummitModel:
    """``keras_app:NAME[?weights=imagenet|none|FILE&size=S]`` from ``keras.applications``."""
    name, options = parse_options(arg)
    spec = spec or f"keras_app:{arg}"
    if name not in applications():
        raise ValueError(f"{spec}: unknown application {name!r}; keras.applications has: "
                         f"{', '.join(applications())}")
    if "range" in options:
        raise ValueError(f"{spec}: an application's value range comes from its preprocess_input; drop range=")
    weights = options.get("weights", "imagenet")
    weights = None if weights.lower() == "none" else weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"{spec}: weights file {weights!r} not found (or use weights=imagenet|none)")
    constructor = getattr(keras.applications, name)
    kwargs = {"input_shape": (int(options["size"]),) * 2 + (3,)} if "size" in options else {}
    try:
        model = constructor(weights=weights, classifier_activation=None, **kwargs)
    except TypeError:  # an application without classifier_activation ends in a softmax, handled later
        model = constructor(weights=weights, **kwargs)
    return from_application(model, name, spec, layers, f"keras.applications.{name} (weights={weights})")


def from_application(model: keras.Model, name: str, spec: str, layers: Sequence[str] | None = None,
                     description: str = "") -> SummitModel:
    """Wrap an already built ``keras.applications`` model ``name`` (its ``preprocess_input`` inside)."""
    constructor = getattr(keras.applications, name)
    module = importlib.import_module(f"keras.applications.{constructor.__module__.rsplit('.', 1)[-1]}")
    preprocess_input = module.preprocess_input

    def preprocess(images: tf.Tensor) -> tf.Tensor:
        return tf.convert_to_tensor(preprocess_input(images * 255.0))

    ends = preprocess(tf.constant([[[[0.0] * 3, [1.0] * 3]]])).numpy()
    value_range = (float(ends[..., 0, :].min()), float(ends[..., 1, :].max()))
    return _summit_model(model, spec, layers, preprocess, value_range,
                         description or f"keras.applications.{name}")
