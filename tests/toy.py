"""A small random CNN wrapped as a SummitModel, so kernels and pipelines can be tested in seconds.

Layers: ``conv1`` (3x3, 8 ch), ``conv2`` (3x3 stride 2, 12 ch), ``sep3`` (depthwise 3x3 + pointwise, 16 ch).
Links: ``conv2`` (kind conv from conv1), ``sep3`` (kind separable, input ``sep3/depthwise``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from summit_tf.models.base import Link, SummitModel


def toy_model(size: int = 33, seed: int = 0, num_outputs: int = 1000) -> SummitModel:
    rng = np.random.default_rng(seed)
    k1 = rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32)
    k2 = rng.normal(0, 0.3, (3, 3, 8, 12)).astype(np.float32)
    dw = rng.normal(0, 0.5, (3, 3, 12, 1)).astype(np.float32)
    dwb = rng.normal(0, 0.1, (12,)).astype(np.float32)
    pw = rng.normal(0, 0.4, (1, 1, 12, 16)).astype(np.float32)
    fc = rng.normal(0, 0.3, (16, num_outputs)).astype(np.float32)
    b1, b2, b3 = (rng.normal(0, 0.1, (n,)).astype(np.float32) for n in (8, 12, 16))

    @tf.function
    def features(images):
        x = images * 2.0 - 1.0
        c1 = tf.nn.relu(tf.nn.conv2d(x, k1, 1, "SAME") + b1)
        c2 = tf.nn.relu(tf.nn.conv2d(c1, k2, 2, "SAME") + b2)
        d3 = tf.nn.relu6(tf.nn.depthwise_conv2d(c2, dw, [1, 1, 1, 1], "SAME") + dwb)
        s3 = tf.nn.relu6(tf.nn.conv2d(d3, pw, 1, "SAME") + b3)
        logits = tf.matmul(tf.reduce_mean(s3, axis=[1, 2]), fc)
        return {"conv1": c1, "conv2": c2, "sep3": s3, "sep3/depthwise": d3, "logits": logits}

    links = [
        Link("conv2", src="conv1", dst="conv2", input="conv1", kernel=k2, stride=2, kind="conv"),
        Link("sep3", src="conv2", dst="sep3", input="sep3/depthwise", kernel=pw, kind="separable"),
    ]
    return SummitModel(
        spec="toy",
        layers=["conv1", "conv2", "sep3"],
        channels={"conv1": 8, "conv2": 12, "sep3": 16},
        links=links,
        input_size=size,
        value_range=(-1.0, 1.0),
        class_to_output=np.arange(1000, dtype=np.int64) % num_outputs,
        features_fn=features,
    )


@dataclasses.dataclass
class MemorySource:
    """An in-memory input stream with the engine's ``Source`` fields (``summit_tf.aggregation.plan``)."""

    spec: str
    dataset: tf.data.Dataset
    num_records: int | None
    classes: list[int] | None
