"""Channel images in batches: many channels (any layers) or one layer's diverse images per optimization,
with the steps traced once for a whole run (the channels live in variables)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from feature_vis import objectives, transform
from feature_vis.optimize import Optimization, RenderSettings, render_vis
from summit_tf.models import SummitModel

log = logging.getLogger(__name__)


def objective_tensors(model: SummitModel, layers: Sequence[str],
                      pre_activation: bool = True) -> dict[str, str]:
    """The tensor each layer's channel objective reads: its pre-activation where the model has one and
    ``pre_activation`` is set (Lucid's default), else the layer's output."""
    chosen = {layer: model.pre_activations.get(layer, layer) if pre_activation else layer for layer in layers}
    plain = [layer for layer, key in chosen.items() if key == layer]
    if pre_activation and plain:
        log.info("%s: no pre-activation tensor for %s; their objectives read the layer output",
                 model.spec, ", ".join(plain))
    return chosen


def check_pairs(model: SummitModel, pairs: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """``pairs`` as (layer, int channel), after checking each layer is the model's and each channel inside
    it: a channel out of range would make an all-zero one-hot objective, silently."""
    pairs = [(layer, int(ch)) for layer, ch in pairs]
    model.check_layers([layer for layer, _ in pairs])
    for layer in dict.fromkeys(layer for layer, _ in pairs):
        bad = [ch for name, ch in pairs if name == layer and not 0 <= ch < model.channels[layer]]
        if bad:
            raise ValueError(f"{layer} has {model.channels[layer]} channels; out of range: {bad[:10]}")
    return pairs


def channel_key(pairs: Sequence[tuple[str, int]], diversity: int = 0) -> str:
    """The random-stream key of a batch of channels: its first channel, size and diversity."""
    return f"{pairs[0][0]}:{pairs[0][1]}:{len(pairs)}:{diversity}"


class ChannelRenderer:
    """Renders batches of up to ``batch`` channels of ``layers`` with one traced optimization.

    Which channel each image maximizes lives in int variables that the objective reads, so every batch
    reuses the traced steps; a shorter batch is padded with copies of its last channel (discarded).
    Channel images (``diversity=0``) may mix any of ``layers``; diversity images (``d`` per channel,
    Lucid's ``channel - 1e2 * diversity`` per group) take one layer, because Gram matrices over the whole
    batch for every layer would cost more than the model.
    """

    def __init__(self, model: SummitModel, layers: Sequence[str], batch: int,
                 settings: RenderSettings = RenderSettings(), diversity: int = 0,
                 transforms: Sequence[transform.Transform] | None = None) -> None:
        if batch < 1 or diversity < 0:
            raise ValueError(f"need batch >= 1 and diversity >= 0, got {batch} and {diversity}")
        self.model, self.layers = model, model.check_layers(list(dict.fromkeys(layers)))
        if not self.layers or (diversity and len(self.layers) != 1):
            need = "one layer (diversity images render one layer at a time)" if diversity else "layers"
            raise ValueError(f"need {need}, got {len(self.layers)}")
        self.batch, self.diversity = batch, diversity
        images = batch * max(1, diversity)
        self.layer_of = tf.Variable(tf.zeros([images], tf.int32), trainable=False)
        self.channel_of = tf.Variable(tf.zeros([images], tf.int32), trainable=False)
        read = objective_tensors(model, self.layers, settings.pre_activation)
        if diversity:
            objective = objectives.diverse_channels(self.layers[0], self.channel_of, diversity,
                                                    channel_tensor=read[self.layers[0]])
        else:
            objective = objectives.channel_table([read[layer] for layer in self.layers], self.layer_of,
                                                 self.channel_of)
        self.optimization = Optimization(model, objective, images, settings, transforms)

    def render(self, pairs: Sequence[tuple[str, int]], key: str | None = None,
               progress_label: str | None = None, on_step: Callable[[int], None] | None = None) -> np.ndarray:
        """Images of ``pairs`` (at most ``batch``): ``[N, S, S, 3]``, or ``[N, d, S, S, 3]`` with diversity.

        ``key`` (default :func:`channel_key`) picks the random start under ``settings.seed``; the rest as
        :func:`render_vis`.
        """
        if not 1 <= len(pairs) <= self.batch:
            raise ValueError(f"expected 1 to {self.batch} channels, got {len(pairs)}")
        for layer, _ in pairs:
            if layer not in self.layers:
                raise ValueError(f"layer {layer!r} is not one of this renderer's: {', '.join(self.layers)}")
        pairs = check_pairs(self.model, pairs)
        padded = pairs + pairs[-1:] * (self.batch - len(pairs))
        repeat = max(1, self.diversity)
        self.layer_of.assign(np.repeat([self.layers.index(layer) for layer, _ in padded], repeat))
        self.channel_of.assign(np.repeat([ch for _, ch in padded], repeat))
        key = channel_key(pairs, self.diversity) if key is None else key
        images = self.optimization.run(key, progress_label, on_step)[:len(pairs) * repeat]
        return images.reshape(len(pairs), self.diversity, *images.shape[1:]) if self.diversity else images

    def tracing_count(self) -> int:
        """How often the steps were traced (one per step function when all batches reused them)."""
        steps = [self.optimization.plain_step, self.optimization.redirected_step]
        return sum(step.experimental_get_tracing_count() for step in steps if step is not None)


def render_channels(model: SummitModel, pairs: Sequence[tuple[str, int]], settings: RenderSettings,
                    diversity: int = 0, progress_label: str | None = None) -> np.ndarray:
    """One image per (layer, channel) (``[N, S, S, 3]``), or with ``diversity=d`` d diverse images each
    (``[N, d, S, S, 3]``, Lucid's ``channel - 1e2 * diversity`` within each channel's group), all in one
    optimization; the channels may come from different layers. For many batches, reuse a
    :class:`ChannelRenderer` (traced once)."""
    pairs = check_pairs(model, pairs)
    layers = list(dict.fromkeys(layer for layer, _ in pairs))
    if diversity and len(layers) > 1:  # one optimization: each layer's Gram matrices on its own images
        per_image = [pair for pair in pairs for _ in range(diversity)]
        read = objective_tensors(model, layers, settings.pre_activation)
        objective = objectives.diverse_layer_channels(per_image, diversity, tensors=read)
        images = render_vis(model, objective, len(per_image), settings, key=channel_key(pairs, diversity),
                        progress_label=progress_label)
        return images.reshape(len(pairs), diversity, *images.shape[1:])
    renderer = ChannelRenderer(model, layers, len(pairs), settings, diversity=diversity)
    return renderer.render(pairs, progress_label=progress_label)
