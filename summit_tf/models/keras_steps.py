"""A functional Keras model run operation by operation, so interventions can edit tensors inside it.

Keras runs a functional model as one call; an intervention must replace a tensor as it is made, so that
everything after it reads the edited value. :class:`Stepwise` reads the model's own graph from its public
``get_config()`` (each operation's inbound nodes, with ``keras_history`` naming the tensors they read),
calls the operations in dependency order and passes every tensor named in ``editable`` through ``edit``.
The layers named ``split`` run in two steps, so the tensor before their activation,
``pre_activation_key(name)``, exists and can be edited for that layer alone: an activation layer (ReLU,
Activation) edits its input as it reads it; a layer with a fused activation (``Conv2D(activation="relu")``)
runs as a linear twin (same weights) followed by ``layer.activation``.

:func:`link_outputs` names, per link, the tensor where the network sums the link's kernel output: the
pre-activation of the layer (or concatenated branch) the link ends in, which the link's whole linear piece
reaches (its kernel composes every 1x1 map, folded BatchNorm and the one spatial conv on the way, so
subtracting ``x_I ⋆ K`` there equals zeroing those kernel entries, for this link's destination only):
``pre_activation_key(layer)`` of an activated layer (ResNet's ReLU after the residual ``add``, a ReLU
after BatchNorm, a fused activation), the sum itself for a residual sum without activation (MobileNetV2,
EfficientNet), a linear conv branch of a concatenation. All links into one layer share that tensor (a
block link and its skip link both end in the residual sum). A chosen layer copied into a concatenation
(an identity link whose input is the branch itself) gets none.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from summit_tf.models.base import Edit, Link, layer_of_key, pre_activation_key
from summit_tf.models.graph_links import Node

History = tuple[str, int, int]  # (operation name, node index, output index), Keras's ``keras_history``
OUTPUT = "/output"  # key of the model's first output ("/" never occurs in Keras names)


@dataclass(frozen=True)
class _Call:
    """One call of one operation: its arguments as serialized by Keras (tensors as ``__keras_tensor__``)."""

    op: Any
    name: str
    node: int
    args: Any
    kwargs: dict
    reads: tuple[History, ...]
    training: bool  # whether ``op.call`` takes ``training`` (BatchNorm, Dropout, nested models)


def _tensor(value: Any) -> History | None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return str(name), int(node), int(index)
    return None


def _reads(value: Any) -> list[History]:
    found = _tensor(value)
    if found is not None:
        return [found]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    return [h for v in items for h in _reads(v)]


def _fill(value: Any, tensors: Mapping[History, tf.Tensor]) -> Any:
    """The serialized arguments with every Keras tensor replaced by its computed value."""
    found = _tensor(value)
    if found is not None:
        return tensors[found]
    if isinstance(value, dict):
        return {k: _fill(v, tensors) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, tensors) for v in value]
    return value


def _has_training(op: Any) -> bool:
    call = getattr(op, "call", None)
    try:
        return call is not None and "training" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False


def _calls(model: keras.Model) -> tuple[list[_Call], list[History], list[History]]:
    """Every call of every operation in dependency order, the model's inputs and its outputs."""
    config = model.get_config()
    if not isinstance(config, dict) or "input_layers" not in config or "output_layers" not in config:
        raise ValueError("interventions need a functional Keras model (keras.Model(inputs, outputs)); "
                         f"{type(model).__name__} does not expose its graph")

    def histories(entries: Any) -> list[History]:
        entries = [entries] if entries and isinstance(entries[0], str) else entries
        return [(str(n), int(k), int(i)) for n, k, i in entries]

    operations = {op.name: op for op in model.operations}
    pending = []
    for entry in config["layers"]:
        op = operations[entry["name"]]
        for k, node in enumerate(entry.get("inbound_nodes", [])):
            args, kwargs = node.get("args", []), node.get("kwargs", {})
            pending.append(_Call(op, entry["name"], k, args, kwargs, tuple(_reads([args, kwargs])),
                                 _has_training(op)))
    inputs, outputs = histories(config["input_layers"]), histories(config["output_layers"])
    ready = {(name, 0) for name, _, _ in inputs}
    ordered: list[_Call] = []
    while pending:  # config order is topological for most models; shared layers may need another round
        left = [c for c in pending if not all((n, k) in ready for n, k, _ in c.reads)]
        done = [c for c in pending if c not in left]
        if not done:
            raise ValueError(f"cannot order the model's operations: {[c.name for c in left][:5]} read "
                             "tensors that nothing computes")
        ordered += done
        ready |= {(c.name, c.node) for c in done}
        pending = left
    return ordered, inputs, outputs


def _activation(layer: Any) -> Callable[[tf.Tensor], tf.Tensor]:
    activation = getattr(layer, "activation", None)
    if not callable(activation):
        raise ValueError(f"layer {layer.name}: no callable activation to split off its pre-activation")
    return activation


def linear_twin(layer: keras.layers.Layer, name: str) -> keras.layers.Layer:
    """A built copy of ``layer`` (same weights) without its activation: the pre-activation of a layer with
    a fused one."""
    twin = layer.__class__.from_config({**layer.get_config(), "activation": "linear", "name": name})
    twin.build(layer.input.shape)
    twin.set_weights(layer.get_weights())
    return twin


class Stepwise:
    """Runs ``model`` call by call. ``split``: layers whose pre-activation (``pre_activation_key(name)``)
    is computed on its own, to be edited or asked for (module docstring)."""

    def __init__(self, model: keras.Model, split: Sequence[str]) -> None:
        self.calls, self.inputs, self.outputs = _calls(model)
        self.by_name = {c.name: c for c in self.calls if c.node == 0}
        self.split = set(split)
        self._twins: dict[str, keras.layers.Layer] = {}
        calls = {(c.name, c.node) for c in self.calls}
        shared = sorted(name for name in self.split if (name, 1) in calls)
        if shared:
            raise ValueError(f"layers {shared} are called more than once: no single pre-activation")

    def _twin(self, name: str) -> keras.layers.Layer:
        """A copy of layer ``name`` without its activation (variables made eagerly, outside any trace)."""
        if name in self._twins:
            return self._twins[name]
        with tf.init_scope():
            twin = linear_twin(self.by_name[name].op, pre_activation_key(name).replace("/", "_"))
        self._twins[name] = twin
        return twin

    def needed(self, keys: Sequence[str]) -> set[tuple[str, int]]:
        """The calls that the tensors ``keys`` (operation names, pre-activations) depend on."""
        producers = {(c.name, c.node): c for c in self.calls}
        seen: set[tuple[str, int]] = set()
        names = [layer_of_key(key) for key in keys if key != OUTPUT]
        todo = [(name, 0) for name in names] + [self.outputs[0][:2]] * (OUTPUT in keys)
        while todo:
            key = todo.pop()
            if key in seen or key not in producers:
                continue
            seen.add(key)
            todo.extend((n, k) for n, k, _ in producers[key].reads)
        return seen

    def run(self, x: tf.Tensor, keys: Sequence[str], edit: Edit | None = None,
            editable: Set[str] = frozenset()) -> dict[str, tf.Tensor]:
        """Every tensor computed on the way to ``keys`` for the model input ``x``, by key: operation names
        (first call, first output), ``pre_activation_key(name)`` of ``split`` layers and :data:`OUTPUT`.
        ``edit(key, tensor, lookup)`` replaces each ``editable`` tensor as it is made."""
        tensors: dict[History, tf.Tensor] = {self.inputs[0]: x}
        named: dict[str, tf.Tensor] = {self.inputs[0][0]: x}
        wanted = self.needed(keys)

        def edited(key: str, value: tf.Tensor) -> tf.Tensor:
            return edit(key, value, named.__getitem__) if edit is not None and key in editable else value

        for call in self.calls:
            if (call.name, call.node) not in wanted:
                continue
            args = _fill(call.args, tensors)
            kwargs = _fill(call.kwargs, tensors)
            if call.training:
                kwargs["training"] = False
            if call.name in self.split and isinstance(call.op, keras.layers.ReLU | keras.layers.Activation):
                pre = edited(pre_activation_key(call.name), args[0])
                named[pre_activation_key(call.name)] = pre
                out = call.op(pre, *args[1:], **kwargs)
            elif call.name in self.split:
                pre = edited(pre_activation_key(call.name), self._twin(call.name)(*args, **kwargs))
                named[pre_activation_key(call.name)] = pre
                out = _activation(call.op)(pre)
            else:
                out = call.op(*args, **kwargs)
            outs = list(out) if isinstance(out, list | tuple) else [out]
            if len(outs) == 1 and call.node == 0:
                outs[0] = edited(call.name, outs[0])
                named[call.name] = outs[0]
            for index, value in enumerate(outs):
                tensors[(call.name, call.node, index)] = value
        if self.outputs[0] in tensors:
            named[OUTPUT] = tensors[self.outputs[0]]
        return named


def link_start(nodes: Mapping[str, Node], link: Link) -> str:
    """The tensor a link's walk started from: its layer, or the concatenated branch at its offset."""
    dst = nodes[link.dst]
    if dst.op != "concat":
        return link.dst
    offset = 0
    for branch in dst.inputs:
        if offset == link.dst_offset and nodes[branch].channels == link.cout:
            return branch
        offset += nodes[branch].channels
    raise ValueError(f"link {link.name}: no branch of {link.dst} at channel {link.dst_offset}")


def pre_activation_of(nodes: Mapping[str, Node], key: str) -> str:
    """The tensor before ``key``'s activation: ``key`` itself when linear, else ``pre_activation_key(key)``
    (``key`` must then be split in :class:`Stepwise`)."""
    return key if nodes[key].activation == "linear" else pre_activation_key(key)


def pre_parts(nodes: Mapping[str, Node], key: str) -> list[str]:
    """The tensors whose concatenation is ``key``'s pre-activation (one unless ``key`` is a concat)."""
    node = nodes[key]
    if node.op == "concat":
        return [part for branch in node.inputs for part in pre_parts(nodes, branch)]
    return [pre_activation_of(nodes, key)]


def link_outputs(nodes: Mapping[str, Node], links: Sequence[Link]) -> dict[str, str]:
    """Link name -> the tensor where the network sums the link's kernel output (module docstring)."""
    found = {}
    for link in links:
        start = link_start(nodes, link)
        out = pre_activation_of(nodes, start)
        if out != link.input and nodes[start].channels == link.cout:
            found[link.name] = out
    return found
