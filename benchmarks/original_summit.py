"""The original SUMMIT aggregation algorithm, as the baseline of ``benchmarks/aggregate.py``.

Written from the published description (shared/FACTS.md), not from SUMMIT's code: per image, every
link's per-pair maps come from ``depthwise_conv2d`` with the link kernel as channel-multiplier filter
(``[B, H, W, Cin * Cout]``), reduced by a spatial max; the top-k inputs of every output channel and the
mass selection of every layer are then found with NumPy in Python loops over images and channels.

Two deliberate differences keep the counts comparable with summit-tf's (the check of the benchmark):
ties go to the lower channel index (a stable descending sort; SUMMIT's ``sorted(..., reverse=True)``
preferred the higher one), and the influence stride is the conv's own times ``stride`` (SUMMIT used 3).
The baseline is generous to SUMMIT in one way: one forward pass per batch serves every layer, where
SUMMIT ran one pass over the data per layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from summit_tf.models.base import Link, SummitModel


def mass_channels(scores: np.ndarray, tau: float) -> list[int]:
    """Channels of one image taken by decreasing share until the share taken reaches ``tau``."""
    scores = np.maximum(scores.astype(np.float64), 0.0)  # summit-tf: negative scores hold no mass
    total = float(scores.sum())
    order = np.argsort(-scores, kind="stable")
    taken, chosen = 0.0, []
    for c in order:
        if chosen and (taken >= tau * total or scores[c] <= 0):
            break
        chosen.append(int(c))
        taken += float(scores[c])
    return chosen


def top_k_inputs(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest entries of one output channel's influences, ties by the lower index."""
    return np.argsort(-values, kind="stable")[:k]


class OriginalSummit:
    """Counts A (mass selection of spatial maxima) and I (top-k of naive per-pair maxima) per class."""

    def __init__(self, model: SummitModel, layers: list[str], links: list[Link], slots: np.ndarray,
                 tau: float, topk: int, stride: int = 1) -> None:
        self.model, self.layers, self.links = model, layers, links
        self.slots, self.tau, self.topk, self.stride = slots, tau, topk, stride
        k = int(slots.max()) + 1
        self.A = {layer: np.zeros((k, model.channels[layer]), np.int64) for layer in layers}
        self.I = {link.name: np.zeros((k, link.cout, link.cin), np.int64) for link in links}
        self._maps = {link.name: self._naive_max(link) for link in links}

    def _naive_max(self, link: Link):
        kernel = tf.constant(link.kernel)
        step = link.stride * self.stride

        @tf.function
        def pair_maxima(x: tf.Tensor) -> tf.Tensor:  # one image -> [Cin * Cout], pair (i, j) at i*Cout + j
            maps = tf.nn.depthwise_conv2d(x, kernel, [1, step, step, 1], link.padding)
            return tf.reduce_max(maps, axis=[1, 2])[0]

        return pair_maxima

    def trace(self, feats: Mapping[str, tf.Tensor]) -> None:
        """Build the per-image functions on one image's features (keeps tracing out of timings)."""
        for link in self.links:
            self._maps[link.name](feats[link.input][:1])

    def update(self, feats: Mapping[str, tf.Tensor], labels: np.ndarray) -> None:
        """Add one batch of features (``model.features`` output) with ImageNet class ids ``labels``."""
        rows = self.slots[labels]
        for layer in self.layers:
            scores = tf.reduce_max(feats[layer], axis=[1, 2]).numpy()
            for n in range(scores.shape[0]):
                for c in mass_channels(scores[n], self.tau):
                    self.A[layer][rows[n], c] += 1
        for link in self.links:
            x = feats[link.input]
            for n in range(labels.size):
                flat = self._maps[link.name](x[n:n + 1]).numpy()
                pairs = flat.reshape(link.cin, link.cout)
                for j in range(link.cout):
                    for i in top_k_inputs(pairs[:, j], self.topk):
                        self.I[link.name][rows[n], j, i] += 1
