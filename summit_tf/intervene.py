"""Interventions: run a model with channels ablated and link kernel entries cut, many ablations at once.

An :class:`Ablation` names channels per SUMMIT layer and kernel entries ``K[:, :, i, j]`` per link. A
channel is replaced by its mean over the data (``mode="mean"``, the default: the network keeps seeing a
typical value, not an out-of-distribution zero) or by 0. An edge cut subtracts ``x_i ⋆ K[:, :, i, j]``
(the link's own stride and padding) from the tensor where the network sums the link's output
(``SummitModel.link_outputs``): exactly the forward pass with those kernel entries set to zero, for every
link kind, because a link is one linear piece. Cuts read the link input as the intervened network
computed it, so channel ablations below a cut are seen by it.

:class:`Intervention` evaluates M ablations in one batched pass: the images are tiled to ``[M * B]`` at the
input and every edit reshapes its tensor to ``[M, B, ...]`` and applies mask ``m`` to slice ``m``. Tiling
at the input, not at the first edited layer, keeps residual sums (MobileNetV2) whose other branch comes
from before the edit the same size; the layers below the first edit are computed M times.

:func:`channel_means` makes the means in one streaming pass; :func:`save_means` / :func:`load_means`
keep them in a run directory (``channel_means.npz``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from summit_tf import atomic
from summit_tf.models.base import Link, SummitModel
from summit_tf.progress import Progress

MODES = ("mean", "zero")
MEANS_FILE = "channel_means.npz"


@dataclass(frozen=True)
class Ablation:
    """Channels to replace, per layer, and kernel entries ``(i, j)`` of ``K[:, :, i, j]`` to cut, per link
    name (``i``: the link's input channel, ``j``: its kernel output column). Empty: the plain network."""

    channels: Mapping[str, Sequence[int]] = field(default_factory=dict)
    edges: Mapping[str, Sequence[tuple[int, int]]] = field(default_factory=dict)

    def size(self) -> tuple[int, int]:
        """(channels ablated, edges cut)."""
        return (sum(len(set(c)) for c in self.channels.values()),
                sum(len(set(map(tuple, e))) for e in self.edges.values()))


def _check(model: SummitModel, ablations: Sequence[Ablation], mode: str,
           means: Mapping[str, np.ndarray] | None) -> dict[str, Link]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not ablations:
        raise ValueError("ablations: give at least one (an empty Ablation() is the plain network)")
    links = {link.name: link for link in model.links}
    for a in ablations:
        for layer, chans in a.channels.items():
            if layer not in model.channels:
                raise ValueError(f"ablation of unknown layer {layer!r}; layers: {', '.join(model.layers)}")
            bad = [c for c in chans if not 0 <= int(c) < model.channels[layer]]
            if bad:
                raise ValueError(f"{layer}: channels {bad[:5]} outside 0..{model.channels[layer] - 1}")
            if mode == "mean":
                if means is None or layer not in means:
                    raise ValueError(f"mode='mean' needs the channel means of {layer!r} (channel_means)")
                if np.shape(means[layer]) != (model.channels[layer],):
                    raise ValueError(f"means[{layer!r}] has shape {np.shape(means[layer])}, expected "
                                     f"({model.channels[layer]},)")
        for name, pairs in a.edges.items():
            if name not in links:
                raise ValueError(f"edge cut on unknown link {name!r}; links: {', '.join(links)}")
            if name not in model.link_outputs:
                raise ValueError(f"{model.spec}: link {name!r} has no output tensor of its own; its edges "
                                 "cannot be cut exactly")
            link = links[name]
            bad = [p for p in pairs if not (0 <= p[0] < link.cin and 0 <= p[1] < link.cout)]
            if bad:
                raise ValueError(f"link {name}: pairs {bad[:5]} outside [0, {link.cin}) x [0, {link.cout})")
    return links


def _layer_edit(keep: np.ndarray, value: np.ndarray):
    """x [M*B, H, W, C] -> kept channels as they are, the others replaced by ``value`` (per mask)."""
    m = keep.shape[0]
    keep_t = tf.constant(keep[:, None, None, None, :], tf.float32)
    fill = tf.constant((1.0 - keep)[:, None, None, None, :] * value[None, None, None, None, :], tf.float32)

    def apply(x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        xm = tf.reshape(x, tf.concat([[m, shape[0] // m], shape[1:]], 0))
        return tf.reshape(xm * keep_t + fill, shape)

    return apply


def _cut_edit(link: Link, per_mask: Sequence[set[tuple[int, int]]]):
    """pre [M*B, h, w, cout] minus, per mask, ``x_I ⋆ (K ⊙ E_m)`` over the inputs I and outputs J that any
    mask cuts (the dense kernel restricted to them; zero where mask m keeps the pair)."""
    m = len(per_mask)
    ins = sorted({i for pairs in per_mask for i, _ in pairs})
    outs = sorted({j for pairs in per_mask for _, j in pairs})
    pos_i, pos_j = {c: k for k, c in enumerate(ins)}, {c: k for k, c in enumerate(outs)}
    kernels = np.zeros((m, *link.kernel.shape[:2], len(ins), len(outs)), np.float32)
    for k, pairs in enumerate(per_mask):
        for i, j in pairs:
            kernels[k, :, :, pos_i[i], pos_j[j]] = link.kernel[:, :, i, j]
    scatter = np.zeros((len(outs), link.cout), np.float32)
    scatter[np.arange(len(outs)), outs] = 1.0
    pointwise = link.kernel.shape[:2] == (1, 1)
    kernels_t, scatter_t, ins_t = tf.constant(kernels), tf.constant(scatter), tf.constant(ins, tf.int32)

    def apply(pre: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        xs = tf.gather(x, ins_t, axis=-1)
        xs = tf.reshape(xs, tf.concat([[m, tf.shape(xs)[0] // m], tf.shape(xs)[1:]], 0))
        if pointwise:  # a 1x1 kernel: output pixel p reads input pixel p * stride (SAME and VALID alike)
            s = link.stride
            part = tf.einsum("mbhwi,mij->mbhwj", xs[:, :, ::s, ::s], kernels_t[:, 0, 0])
        else:
            part = tf.stack([tf.nn.conv2d(xs[k], kernels_t[k], link.stride, link.padding) for k in range(m)])
        part = tf.einsum("mbhwj,jc->mbhwc", part, scatter_t)
        return pre - tf.reshape(part, tf.shape(pre))

    return apply


class Intervention:
    """M ablations of one model, evaluated together: ``run(images)["logits"]`` is ``[M, B, outputs]``.

    Build once and call on every batch (one trace). ``means``: layer -> per-channel mean (``mode="mean"``).
    """

    def __init__(self, model: SummitModel, ablations: Sequence[Ablation], mode: str = "mean",
                 means: Mapping[str, np.ndarray] | None = None) -> None:
        links = _check(model, ablations, mode, means)
        self.model, self.size = model, len(ablations)
        layer_edits, link_edits = {}, {}
        for layer in model.layers:
            keep = np.ones((self.size, model.channels[layer]), np.float32)
            for k, a in enumerate(ablations):
                keep[k, [int(c) for c in a.channels.get(layer, ())]] = 0.0
            if (keep < 1).any():
                value = np.asarray(means[layer], np.float64) if mode == "mean" else np.zeros(keep.shape[1])
                layer_edits[layer] = _layer_edit(keep, value.astype(np.float32))
        for name in dict.fromkeys(n for a in ablations for n in a.edges):
            per_mask = [{(int(i), int(j)) for i, j in a.edges.get(name, ())} for a in ablations]
            if any(per_mask):
                link_edits[model.link_outputs[name]] = (links[name], _cut_edit(links[name], per_mask))
        self.layer_edits, self.link_edits = layer_edits, link_edits
        self._fn = tf.function(self._run, autograph=False, reduce_retracing=True)

    def _edit(self, key: str, value: tf.Tensor, lookup) -> tf.Tensor:
        if key in self.link_edits:
            link, apply = self.link_edits[key]
            value = apply(value, lookup(link.input))
        if key in self.layer_edits:
            value = self.layer_edits[key](value)
        return value

    def _run(self, images: tf.Tensor, keys: tuple[str, ...]) -> dict[str, tf.Tensor]:
        images = tf.convert_to_tensor(images, tf.float32)
        shape = tf.shape(images)
        tiled = tf.reshape(tf.broadcast_to(images[None], tf.concat([[self.size], shape], 0)),
                           tf.concat([[self.size * shape[0]], shape[1:]], 0))
        values = self.model.edited_tensors(tiled, keys, self._edit)
        return {k: tf.reshape(v, tf.concat([[self.size, shape[0]], tf.shape(v)[1:]], 0))
                for k, v in values.items()}

    def run(self, images: tf.Tensor, keys: Sequence[str] = ("logits",)) -> dict[str, tf.Tensor]:
        """The tensors ``keys`` of every ablation, ``[M, B, ...]``, for images ``[B, S, S, 3]`` in [0, 1]."""
        return self._fn(images, tuple(keys))


def channel_means(model: SummitModel, batches: Iterable[tf.Tensor], layers: Sequence[str] | None = None,
                  total: int | None = None) -> dict[str, np.ndarray]:
    """Per-channel mean of each layer's output over every image and position, one streaming pass
    (sums in float64 on the host). ``batches`` yields images ``[B, S, S, 3]`` in [0, 1]."""
    layers = model.check_layers(layers if layers is not None else model.layers)
    if not layers:
        raise ValueError("channel_means: no layers")

    @tf.function(reduce_retracing=True)
    def sums(images: tf.Tensor) -> dict[str, tf.Tensor]:
        values = model.tensors(images, layers)
        return {k: (tf.reduce_sum(v, axis=[0, 1, 2]), tf.cast(tf.reduce_prod(tf.shape(v)[:3]), tf.float32))
                for k, v in values.items()}

    acc = {layer: np.zeros(model.channels[layer], np.float64) for layer in layers}
    counts = dict.fromkeys(layers, 0.0)
    progress = Progress("channel means", total)
    for images in batches:
        for layer, (s, n) in sums(images).items():
            acc[layer] += s.numpy()
            counts[layer] += float(n)
        progress.update(int(images.shape[0]))
    progress.finish()
    if not counts[layers[0]]:
        raise ValueError("channel_means: the data gave no images")
    return {layer: acc[layer] / counts[layer] for layer in layers}


def save_means(path: str | os.PathLike, means: Mapping[str, np.ndarray], model_spec: str, data: str) -> Path:
    """Write the means (one float64 array per layer, plus what made them) atomically as ``.npz``."""
    with atomic.writing(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, __model__=np.array(model_spec), __data__=np.array(data),
                 __layers__=np.array(list(means)), **{f"layer{k}": v for k, v in enumerate(means.values())})
    return Path(path)


def load_means(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str, str]:
    """(layer -> means, model spec, data spec) from :func:`save_means`' file."""
    with np.load(path) as f:
        layers = [str(x) for x in f["__layers__"]]
        return ({layer: f[f"layer{k}"] for k, layer in enumerate(layers)}, str(f["__model__"]),
                str(f["__data__"]))
