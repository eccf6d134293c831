"""Interventions: run a model with channels ablated and link kernel entries cut, many ablations at once.

An :class:`Ablation` names channels per SUMMIT layer and kernel entries ``K[:, :, i, j]`` per link. A
channel is replaced by its mean over the data (``mode="mean"``, the default: the network keeps seeing a
typical value, not an out-of-distribution zero) or by 0. An edge cut subtracts ``x_i ⋆ K[:, :, i, j]``
(the link's own stride and padding) from the tensor where the network sums the link's output
(``SummitModel.link_outputs``): exactly the forward pass with those kernel entries set to zero, for every
link kind, because a link is one linear piece. Cuts read the link input as the intervened network
computed it, so channel ablations below a cut are seen by it.

:class:`Intervener` evaluates M ablations in one batched pass: the images are tiled to ``[M * B]`` at the
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
           means: Mapping[str, np.ndarray] | None) -> None:
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


def _layer_edit(x: tf.Tensor, keep: tf.Tensor, fill: tf.Tensor) -> tf.Tensor:
    """x [M*B, H, W, C] -> ``x * keep[m] + fill[m]`` per mask m: kept channels exactly as they were (x * 1
    + 0), ablated ones replaced by their value (x * 0 + value)."""
    m = tf.shape(keep)[0]
    shape = tf.shape(x)
    xm = tf.reshape(x, tf.concat([[m, shape[0] // m], shape[1:]], 0))
    return tf.reshape(xm * keep[:, None, None, None, :] + fill[:, None, None, None, :], shape)


def _cut_edit(pre: tf.Tensor, x: tf.Tensor, link: Link, ins: tf.Tensor, kernels: tf.Tensor) -> tf.Tensor:
    """pre [M*B, h, w, cout] minus, per mask m, ``x_I ⋆ kernels[m]``: the link's kernel restricted to the
    inputs I that any mask cuts, zero wherever mask m keeps the pair (cost: |I| / cin of the link's conv)."""
    m = tf.shape(kernels)[0]
    xs = tf.gather(x, ins, axis=-1)
    xs = tf.reshape(xs, tf.concat([[m, tf.shape(xs)[0] // m], tf.shape(xs)[1:]], 0))
    if link.kernel.shape[:2] == (1, 1):  # output pixel p reads input pixel p * stride (SAME and VALID alike)
        s = link.stride
        part = tf.einsum("mbhwi,mic->mbhwc", xs[:, :, ::s, ::s], kernels[:, 0, 0])
    else:
        part = tf.map_fn(lambda a: tf.nn.conv2d(a[0], a[1], link.stride, link.padding), (xs, kernels),
                         fn_output_signature=tf.float32)
    return pre - tf.reshape(part, tf.shape(pre))


@dataclass(frozen=True)
class Masks:
    """M ablations as tensors: ``keep``/``fill`` ``[M, C]`` for every layer, ``ins`` ``[|I|]`` and
    ``kernels`` ``[M, kh, kw, |I|, cout]`` for every link with an output of its own. Every layer and link
    is edited, as the identity where no mask touches it (``x * 1 + 0``; minus a zero kernel), so every set
    of masks has the same keys and one trace serves them all, whatever M and the cut inputs |I| (each
    trace holds its own copy of the network's constants)."""

    size: int
    tensors: dict[str, tf.Tensor]


class Intervener:
    """Runs one model under ablations: ``run(images, masks)["logits"]`` is ``[M, B, outputs]``.

    ``mode``: ``"mean"`` (``means``: layer -> per-channel mean) or ``"zero"``. One trace serves every set
    of masks (:class:`Masks`) for one image size and key set: it is made with the mask count M, the cut
    inputs |I| and the batch left open, so a new class's graph or a new random draw does not trace the
    network again (``reduce_retracing`` alone opened one size at a time: a new trace for most classes'
    edge cuts, each holding the network's constants, ~0.2-0.5 GB a class on MobileNetV1).
    """

    def __init__(self, model: SummitModel, mode: str = "mean",
                 means: Mapping[str, np.ndarray] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model, self.mode, self.means = model, mode, means
        self.links = {link.name: link for link in model.links}
        self._cuttable = [name for name in self.links if name in model.link_outputs]
        self._cuts: dict[str, list[Link]] = {}  # links into one layer may share its sum (block and skip link)
        for name in self._cuttable:
            self._cuts.setdefault(model.link_outputs[name], []).append(self.links[name])
        self._fn = tf.function(self._run, autograph=False, reduce_retracing=True)
        self._traced: set[tuple] = set()

    def masks(self, ablations: Sequence[Ablation]) -> Masks:
        """Check ``ablations`` against the model and turn them into :class:`Masks`."""
        model = self.model
        _check(model, ablations, self.mode, self.means)
        m, tensors = len(ablations), {}
        for layer in model.layers:
            keep = np.ones((m, model.channels[layer]), np.float32)
            for k, a in enumerate(ablations):
                keep[k, [int(c) for c in a.channels.get(layer, ())]] = 0.0
            value = np.asarray(self.means[layer], np.float64) if self.mode == "mean" and \
                (keep < 1).any() else 0.0
            tensors[f"keep/{layer}"] = tf.constant(keep)
            tensors[f"fill/{layer}"] = tf.constant(((1.0 - keep) * value).astype(np.float32))
        for name in self._cuttable:
            link = self.links[name]
            per_mask = [{(int(i), int(j)) for i, j in a.edges.get(name, ())} for a in ablations]
            ins = sorted({i for pairs in per_mask for i, _ in pairs}) or [0]  # no cut: a zero kernel
            pos = {c: k for k, c in enumerate(ins)}
            kernels = np.zeros((m, *link.kernel.shape[:2], len(ins), link.cout), np.float32)
            for k, pairs in enumerate(per_mask):
                for i, j in pairs:
                    kernels[k, :, :, pos[i], j] = link.kernel[:, :, i, j]
            tensors[f"ins/{name}"] = tf.constant(ins, tf.int32)
            tensors[f"kernels/{name}"] = tf.constant(kernels)
        return Masks(m, tensors)

    def _run(self, images: tf.Tensor, tensors: dict[str, tf.Tensor],
             keys: tuple[str, ...]) -> dict[str, tf.Tensor]:
        layers = set(self.model.layers)
        m = tf.shape(tensors[f"keep/{self.model.layers[0]}"])[0]

        def edit(key: str, value: tf.Tensor, lookup) -> tf.Tensor:
            for link in self._cuts.get(key, ()):
                value = _cut_edit(value, lookup(link.input), link, tensors[f"ins/{link.name}"],
                                  tensors[f"kernels/{link.name}"])
            if key in layers:
                value = _layer_edit(value, tensors[f"keep/{key}"], tensors[f"fill/{key}"])
            return value

        shape = tf.shape(images)
        tiled = tf.reshape(tf.broadcast_to(images[None], tf.concat([[m], shape], 0)),
                           tf.concat([[m * shape[0]], shape[1:]], 0))
        values = self.model.edited_tensors(tiled, keys, edit)
        return {k: tf.reshape(v, tf.concat([[m, shape[0]], tf.shape(v)[1:]], 0)) for k, v in values.items()}

    def traces(self) -> int:
        """How many times the network was traced (one per image size and key set)."""
        return int(self._fn.experimental_get_tracing_count())

    def run(self, images: tf.Tensor, masks: Masks | Sequence[Ablation],
            keys: Sequence[str] = ("logits",)) -> dict[str, tf.Tensor]:
        """The tensors ``keys`` under every mask, ``[M, B, ...]``, for images ``[B, S, S, 3]`` in [0, 1]
        (ablations are turned into masks on each call: build :meth:`masks` once for many batches)."""
        if not isinstance(masks, Masks):
            masks = self.masks(masks)
        images, keys = tf.convert_to_tensor(images, tf.float32), tuple(keys)
        trace = (keys, tuple(images.shape[1:]))
        if trace not in self._traced:  # the one trace, sizes that vary between calls left open
            self._fn.get_concrete_function(tf.TensorSpec([None, *images.shape[1:]], tf.float32),
                                           {k: _open_spec(k, v) for k, v in masks.tensors.items()}, keys)
            self._traced.add(trace)
        return self._fn(images, masks.tensors, keys)


def _open_spec(name: str, value: tf.Tensor) -> tf.TensorSpec:
    """``value``'s spec with the mask count (first axis) and, for cut kernels, the cut inputs left open."""
    shape = [None, *value.shape[1:]]
    if name.startswith("kernels/"):
        shape[3] = None
    return tf.TensorSpec(shape, value.dtype)


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


def save_means(path: str | os.PathLike, means: Mapping[str, np.ndarray], model_spec: str,
               made_from: str) -> Path:
    """Write the means (one float64 array per layer, plus what made them: the model and ``made_from``, a
    description of the data and its options that a reuse compares) atomically as ``.npz``."""
    with atomic.writing(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, __model__=np.array(model_spec), __data__=np.array(made_from),
                 __layers__=np.array(list(means)), **{f"layer{k}": v for k, v in enumerate(means.values())})
    return Path(path)


def load_means(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str, str]:
    """(layer -> means, model spec, what made them) from :func:`save_means`' file."""
    with np.load(path) as f:
        layers = [str(x) for x in f["__layers__"]]
        return ({layer: f[f"layer{k}"] for k, layer in enumerate(layers)}, str(f["__model__"]),
                str(f["__data__"]))
