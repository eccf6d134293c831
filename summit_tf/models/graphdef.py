"""Run a frozen TF1 GraphDef's forward pass with TF2 ops, without sessions.

Importing a GraphDef with ``tf.graph_util.import_graph_def`` gives a black box that only returns the
tensors asked for when it was wrapped, and its ReLUs have TF's own gradient. Rebuilding the forward pass
node by node instead lets a ``tf.function`` return any inner tensor and swap every ReLU for Lucid's
redirected one. The supported ops are those of image classifiers frozen in the TF1 era (InceptionV1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from summit_tf.models import relu_gradients

NodeDef = tf.compat.v1.NodeDef


def read_graph_def(path: str | Path) -> tf.compat.v1.GraphDef:
    """Parse a binary GraphDef file, with a clear error for anything else."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(path).read_bytes())
    except Exception as err:  # protobuf raises its own DecodeError
        raise ValueError(f"{path}: not a binary TensorFlow GraphDef ({err})") from err
    if not graph_def.node:
        raise ValueError(f"{path}: the GraphDef has no nodes")
    return graph_def


def _str(node: NodeDef, key: str, default: str) -> str:
    return node.attr[key].s.decode() if key in node.attr else default


def _ints(node: NodeDef, key: str) -> list[int]:
    return list(node.attr[key].list.i) if key in node.attr else []


def _conv2d(node: NodeDef, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    dilations = _ints(node, "dilations") or None
    return tf.nn.conv2d(x, w, _ints(node, "strides"), _str(node, "padding", "VALID"),
                        data_format=_str(node, "data_format", "NHWC"), dilations=dilations)


def _pool(fn: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
    def apply(node: NodeDef, x: tf.Tensor) -> tf.Tensor:
        return fn(x, _ints(node, "ksize"), _ints(node, "strides"), _str(node, "padding", "VALID"),
                  data_format=_str(node, "data_format", "NHWC"))

    return apply


def _lrn(node: NodeDef, x: tf.Tensor) -> tf.Tensor:
    a = node.attr
    depth_radius = a["depth_radius"].i if "depth_radius" in a else 5
    bias = a["bias"].f if "bias" in a else 1.0
    alpha = a["alpha"].f if "alpha" in a else 1.0
    beta = a["beta"].f if "beta" in a else 0.5
    return tf.nn.local_response_normalization(x, depth_radius, bias, alpha, beta)


def _flag(node: NodeDef, key: str) -> bool:
    return key in node.attr and node.attr[key].b  # reading a missing key would insert it


def _matmul(node: NodeDef, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.linalg.matmul(a, b, transpose_a=_flag(node, "transpose_a"),
                            transpose_b=_flag(node, "transpose_b"))


def _bias_add(node: NodeDef, x: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.nn.bias_add(x, b, data_format=_str(node, "data_format", "NHWC"))


# op type -> f(node, *inputs); Relu, Const and Placeholder are handled by the evaluator itself.
_OPS: dict[str, Callable[..., tf.Tensor]] = {
    "Conv2D": _conv2d,
    "BiasAdd": _bias_add,
    "Add": lambda node, a, b: a + b,
    "AddV2": lambda node, a, b: a + b,
    "MaxPool": _pool(tf.nn.max_pool2d),
    "AvgPool": _pool(tf.nn.avg_pool2d),
    "LRN": _lrn,
    "Concat": lambda node, axis, *xs: tf.concat(xs, axis),
    "ConcatV2": lambda node, *xs_axis: tf.concat(xs_axis[:-1], xs_axis[-1]),
    "Reshape": lambda node, x, shape: tf.reshape(x, shape),
    "MatMul": _matmul,
    "Softmax": lambda node, x: tf.nn.softmax(x),
    "Identity": lambda node, x: tf.identity(x),
}
SUPPORTED_OPS = frozenset({*_OPS, "Relu", "Const", "Placeholder"})


def _input_name(ref: str, node: NodeDef) -> str:
    name, _, index = ref.partition(":")
    if index not in ("", "0"):
        raise ValueError(
            f"node {node.name!r} reads output {index} of {name!r}; only single-output ops are supported"
        )
    return name


class GraphDefFunction:
    """The forward pass of a frozen GraphDef with one image input, evaluated op by op with TF2 ops.

    Constants become eager tensors once, at construction, so tracing captures them instead of embedding
    copies in every traced graph. Call :meth:`evaluate` inside a ``tf.function(autograph=False)``: the
    evaluator is plain Python over the node list, and AutoGraph would take seconds to convert it.
    """

    def __init__(self, graph_def: tf.compat.v1.GraphDef, input_name: str = "input") -> None:
        self.nodes: dict[str, NodeDef] = {node.name: node for node in graph_def.node}
        if input_name not in self.nodes or self.nodes[input_name].op != "Placeholder":
            raise ValueError(f"the GraphDef has no Placeholder named {input_name!r}")
        self.input_name = input_name
        self._consts = {
            name: tf.constant(tf.make_ndarray(node.attr["value"].tensor))
            for name, node in self.nodes.items()
            if node.op == "Const"
        }

    def inputs_of(self, name: str) -> list[str]:
        """Data inputs of node ``name`` (control dependencies dropped)."""
        node = self.node(name)
        return [_input_name(ref, node) for ref in node.input if not ref.startswith("^")]

    def node(self, name: str) -> NodeDef:
        if name not in self.nodes:
            raise KeyError(f"the GraphDef has no node {name!r}")
        return self.nodes[name]

    def const(self, name: str) -> np.ndarray:
        """The value of Const node ``name``."""
        if name not in self._consts:
            raise KeyError(f"the GraphDef has no Const node {name!r}")
        return self._consts[name].numpy()

    def _topological(self, outputs: Iterable[str]) -> list[str]:
        """Nodes needed for ``outputs`` in evaluation order, checking that every op is supported."""
        order: list[str] = []
        state: dict[str, bool] = {}  # False: on the stack, True: done
        for root in outputs:
            stack = [(root, False)]
            while stack:
                name, expanded = stack.pop()
                if expanded:
                    state[name] = True
                    order.append(name)
                    continue
                if state.get(name) is True:
                    continue
                if state.get(name) is False:
                    raise ValueError(f"the GraphDef has a cycle through {name!r}")
                node = self.node(name)
                if node.op not in SUPPORTED_OPS:
                    raise ValueError(
                        f"node {name!r} has op {node.op!r}, which this reader does not support "
                        f"(supported: {', '.join(sorted(SUPPORTED_OPS))})"
                    )
                state[name] = False
                stack.append((name, True))
                stack.extend((dep, False) for dep in self.inputs_of(name) if state.get(dep) is not True)
        return order

    def check(self, outputs: Iterable[str]) -> None:
        """Raise now, with the node's name, if ``outputs`` need an unknown node or an unsupported op."""
        self._topological(outputs)

    def evaluate(
        self, x: tf.Tensor, outputs: Iterable[str], relu_redirect: bool = False,
        edit: Callable[[str, tf.Tensor, Callable[[str], tf.Tensor]], tf.Tensor] | None = None,
    ) -> dict[str, tf.Tensor]:
        """Tensors of ``outputs`` for input batch ``x`` (fed to the input Placeholder as it is);
        ``edit(node, tensor, lookup)`` (interventions) replaces each computed node's value as it is made."""
        outputs = list(outputs)
        def relu(t: tf.Tensor) -> tf.Tensor:
            return relu_gradients.apply(t, "relu", relu_redirect)

        values: dict[str, tf.Tensor] = {}
        for name in self._topological(outputs):
            node = self.nodes[name]
            if node.op == "Placeholder":
                if name != self.input_name:
                    raise ValueError(f"the outputs depend on a second Placeholder {name!r}")
                values[name] = x
            elif node.op == "Const":
                values[name] = self._consts[name]
            else:
                args = [values[dep] for dep in self.inputs_of(name)]
                values[name] = relu(args[0]) if node.op == "Relu" else _OPS[node.op](node, *args)
                if edit is not None:
                    values[name] = edit(name, values[name], values.__getitem__)
        return {name: values[name] for name in outputs}


def import_reference(
    graph_def: tf.compat.v1.GraphDef, outputs: Iterable[str], input_name: str = "input"
) -> Callable[[tf.Tensor], Mapping[str, tf.Tensor]]:
    """TF's own executor on the same GraphDef (``import_graph_def`` under ``wrap_function``): f(x) -> dict.

    The yardstick for :class:`GraphDefFunction`: a model loaded through the interpreter is checked against it.
    """

    def imported() -> None:
        tf.graph_util.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imported, [])
    graph = wrapped.graph
    return wrapped.prune(
        feeds=graph.get_tensor_by_name(f"{input_name}:0"),
        fetches={name: graph.get_tensor_by_name(f"{name}:0") for name in outputs},
    )
