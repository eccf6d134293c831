"""A GraphDef with the exact structure of Lucid's InceptionV1 (``inception5h``) and random weights.

Node names, ops, attributes, the old-style ``Concat`` with its ``{L}/concat_dim`` Const, the auxiliary
heads, the ``/cpu:0`` device on every node and the shapeless ``input`` Placeholder (an old producer
version, so TF reads it as unknown rank) follow the public file; only the weights are random (He-scaled,
seeded). Channel counts per branch are GoogLeNet's except inception5h's 204-channel ``mixed4a_3x3`` and
48-channel ``mixed5a_5x5_bottleneck`` (these make the public file's 13,461,996 parameters exact).
Also writes a synthetic ``ImageNet_alternate_synsets.txt`` for its 1,008 outputs.

The real file cannot be downloaded on every machine; this one has its exact structure and cost, so the
tests and ``benchmarks.aggregate --model=inception_v1:FIXTURE`` use it.
``python -m synthetic --out=DIR`` writes both files (then
``--model=inception_v1:DIR/InceptionV1.pb``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

from summit_tf import atomic, imagenet

# 1x1, 3x3_bottleneck, 3x3, 5x5_bottleneck, 5x5, pool_reduce
MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "mixed3a": (64, 96, 128, 16, 32, 32),
    "mixed3b": (128, 128, 192, 32, 96, 64),
    "mixed4a": (192, 96, 204, 16, 48, 64),
    "mixed4b": (160, 112, 224, 24, 64, 64),
    "mixed4c": (128, 128, 256, 24, 64, 64),
    "mixed4d": (112, 144, 288, 32, 64, 64),
    "mixed4e": (256, 160, 320, 32, 128, 128),
    "mixed5a": (256, 160, 320, 48, 128, 128),
    "mixed5b": (384, 192, 384, 48, 128, 128),
}
NUM_OUTPUTS = 1008
INPUT_SIZE = 224

_AttrValue = tf.compat.v1.AttrValue
_FLOAT = _AttrValue(type=tf.float32.as_datatype_enum)


def _ints(values: Iterable[int]) -> tf.compat.v1.AttrValue:
    return _AttrValue(list=_AttrValue.ListValue(i=list(values)))


class _Builder:
    def __init__(self, seed: int) -> None:
        self.graph_def = tf.compat.v1.GraphDef()
        self.graph_def.versions.producer = 8  # 2015-era: an empty Placeholder shape means "unknown"
        self.rng = np.random.default_rng(seed)

    def node(self, name: str, op: str, inputs: Iterable[str] = (), **attrs: tf.compat.v1.AttrValue) -> str:
        node = self.graph_def.node.add(name=name, op=op, input=list(inputs), device="/cpu:0")
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        tensor = tf.make_tensor_proto(value)
        return self.node(name, "Const", dtype=_AttrValue(type=tensor.dtype), value=_AttrValue(tensor=tensor))

    def conv(self, name: str, x: str, k: int, cin: int, cout: int, stride: int = 1,
             padding: str = "SAME") -> str:
        w = self.rng.normal(0.0, np.sqrt(2.0 / (k * k * cin)), (k, k, cin, cout)).astype(np.float32)
        b = self.rng.normal(0.0, 0.05, (cout,)).astype(np.float32)
        conv = self.node(f"{name}_pre_relu/conv", "Conv2D", [x, self.const(f"{name}_w", w)], T=_FLOAT,
                         strides=_ints([1, stride, stride, 1]), padding=_AttrValue(s=padding.encode()),
                         use_cudnn_on_gpu=_AttrValue(b=True), data_format=_AttrValue(s=b"NHWC"))
        pre = self.node(f"{name}_pre_relu", "BiasAdd", [conv, self.const(f"{name}_b", b)], T=_FLOAT)
        return self.node(name, "Relu", [pre], T=_FLOAT)

    def dense(self, name: str, x: str, cin: int, cout: int, pre: str, act: str | None) -> str:
        w = self.rng.normal(0.0, np.sqrt(1.0 / cin), (cin, cout)).astype(np.float32)
        b = self.rng.normal(0.0, 0.05, (cout,)).astype(np.float32)
        mm = self.node(f"{name}_{pre}/matmul", "MatMul", [x, self.const(f"{name}_w", w)], T=_FLOAT,
                       transpose_a=_AttrValue(b=False), transpose_b=_AttrValue(b=False))
        out = self.node(f"{name}_{pre}", "BiasAdd", [mm, self.const(f"{name}_b", b)], T=_FLOAT)
        return self.node(name, act, [out], T=_FLOAT) if act else out

    def pool(self, name: str, op: str, x: str, k: int, stride: int, padding: str) -> str:
        return self.node(name, op, [x], T=_FLOAT, ksize=_ints([1, k, k, 1]),
                         strides=_ints([1, stride, stride, 1]), padding=_AttrValue(s=padding.encode()),
                         data_format=_AttrValue(s=b"NHWC"))

    def lrn(self, name: str, x: str) -> str:
        return self.node(name, "LRN", [x], T=_FLOAT, depth_radius=_AttrValue(i=5), bias=_AttrValue(f=2.0),
                         alpha=_AttrValue(f=1e-4), beta=_AttrValue(f=0.5))

    def reshape(self, name: str, x: str, shape: list[int]) -> str:
        shape_const = self.const(f"{name}/shape", np.array(shape, np.int32))
        return self.node(name, "Reshape", [x, shape_const], T=_FLOAT)

    def mixed(self, layer: str, x: str, cin: int) -> tuple[str, int]:
        c1, c3b, c3, c5b, c5, cp = MIXED[layer]
        b1 = self.conv(f"{layer}_1x1", x, 1, cin, c1)
        b3 = self.conv(f"{layer}_3x3", self.conv(f"{layer}_3x3_bottleneck", x, 1, cin, c3b), 3, c3b, c3)
        b5 = self.conv(f"{layer}_5x5", self.conv(f"{layer}_5x5_bottleneck", x, 1, cin, c5b), 5, c5b, c5)
        pooled = self.pool(f"{layer}_pool", "MaxPool", x, 3, 1, "SAME")
        bp = self.conv(f"{layer}_pool_reduce", pooled, 1, cin, cp)
        dim = self.const(f"{layer}/concat_dim", np.array(3, np.int32))
        self.node(layer, "Concat", [dim, b1, b3, b5, bp], N=_AttrValue(i=4), T=_FLOAT)
        return layer, c1 + c3 + c5 + cp

    def aux_head(self, index: int, x: str, cin: int) -> str:
        pooled = self.pool(f"head{index}_pool", "AvgPool", x, 5, 3, "VALID")
        bottleneck = self.conv(f"head{index}_bottleneck", pooled, 1, cin, 128)
        flat = self.reshape(f"head{index}_bottleneck/reshape", bottleneck, [-1, 2048])
        hidden = self.dense(f"nn{index}", flat, 2048, 1024, "pre_relu", "Relu")
        return self.dense(f"softmax{index}", hidden, 1024, NUM_OUTPUTS, "pre_activation", "Softmax")


def build_graph_def(seed: int = 0, aux_heads: bool = True) -> tf.compat.v1.GraphDef:
    """Lucid's InceptionV1 graph with seeded random weights (about 13.5 M parameters with the heads)."""
    b = _Builder(seed)
    x = b.node("input", "Placeholder", dtype=_FLOAT, shape=_AttrValue(shape=tf.TensorShape(None).as_proto()))
    b.graph_def.node[0].attr["shape"].shape.Clear()  # empty shape attribute, as in the public file
    x = b.conv("conv2d0", x, 7, 3, 64, stride=2)
    x = b.lrn("localresponsenorm0", b.pool("maxpool0", "MaxPool", x, 3, 2, "SAME"))
    x = b.conv("conv2d1", x, 1, 64, 64, padding="VALID")
    x = b.conv("conv2d2", x, 3, 64, 192)
    x = b.pool("maxpool1", "MaxPool", b.lrn("localresponsenorm1", x), 3, 2, "SAME")
    x, c = b.mixed("mixed3a", x, 192)
    x, c = b.mixed("mixed3b", x, c)
    x = b.pool("maxpool4", "MaxPool", x, 3, 2, "SAME")
    x, c = b.mixed("mixed4a", x, c)
    heads = [b.aux_head(0, x, c)] if aux_heads else []
    for layer in ("mixed4b", "mixed4c", "mixed4d"):
        x, c = b.mixed(layer, x, c)
    if aux_heads:
        heads.append(b.aux_head(1, x, c))
    x, c = b.mixed("mixed4e", x, c)
    x = b.pool("maxpool10", "MaxPool", x, 3, 2, "SAME")
    x, c = b.mixed("mixed5a", x, c)
    x, c = b.mixed("mixed5b", x, c)
    x = b.reshape("avgpool0/reshape", b.pool("avgpool0", "AvgPool", x, 7, 1, "VALID"), [-1, c])
    heads.append(b.dense("softmax2", x, c, NUM_OUTPUTS, "pre_activation", "Softmax"))
    for name, head in zip(("output", "output1", "output2")[-len(heads):], heads, strict=True):
        b.node(name, "Identity", [head], T=_FLOAT)
    return b.graph_def


def alternate_synsets(seed: int = 0) -> list[str]:
    """1,008 label lines: a shuffled subset of the ImageNet synsets with ``dummy`` lines in between."""
    rng = np.random.default_rng(seed)
    synsets = list(imagenet.synsets())
    chosen = [synsets[i] for i in rng.permutation(len(synsets))[:990]]
    lines = chosen + ["dummy"] * (NUM_OUTPUTS - len(chosen))
    order = rng.permutation(NUM_OUTPUTS)
    return [lines[i] for i in order]


def write_fixture(
    folder: Path, graph_def: tf.compat.v1.GraphDef | None = None, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``InceptionV1.pb`` (``graph_def``, else a new one) and ``ImageNet_alternate_synsets.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    pb = folder / "InceptionV1.pb"
    atomic.write_bytes(pb, (graph_def or build_graph_def(seed)).SerializeToString(deterministic=True))
    labels = folder / "ImageNet_alternate_synsets.txt"
    atomic.write_text(labels, "\n".join(alternate_synsets(seed)) + "\n")
    return pb, labels
