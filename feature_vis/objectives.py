"""Objectives to maximize, one value per image of the batch, composable with ``+ - *`` and scalars.

An :class:`Objective` maps an activations dict to a ``[batch]`` tensor, and names in ``keys`` the tensors
it reads: the render loop asks the model for exactly those (``model.tensors(images, keys)``, so an early
layer's objective never runs the later layers) plus ``"input"``, the images before the random transforms.
Keys are tensor keys of the model: a layer (post-activation), its pre-activation
``pre_activation_key(layer)`` (Lucid's ``mixed4a_pre_relu``, what its channel objectives read), a link
input. Keeping one value per image (Lucid reduces to a scalar) is what lets one optimization render many
channels at once: image ``b`` gets objective ``b``, and the render loop maximizes the sum, which for
independent images is the same as maximizing each. Operands may be objectives, numbers, or ``[batch]``
arrays of per-image weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

Activations = Mapping[str, tf.Tensor]


class Objective:
    """A function ``activations -> [batch]`` with arithmetic; ``description`` says what it computes and
    ``keys`` which tensors of the activations dict it reads."""

    # Makes ``weights_array * objective`` call our __rmul__ instead of NumPy broadcasting over objects.
    __array_ufunc__ = None

    def __init__(self, fn: Callable[[Activations], tf.Tensor], description: str, keys: Iterable[str]) -> None:
        self.fn = fn
        self.description = description
        self.keys = frozenset(keys)

    def __call__(self, activations: Activations) -> tf.Tensor:
        return self.fn(activations)

    def __repr__(self) -> str:
        return self.description

    @staticmethod
    def _lift(other: Objective | float | int | np.ndarray) -> Objective:
        if isinstance(other, Objective):
            return other
        array = np.asarray(other, np.float32)
        value = tf.constant(array)
        return Objective(lambda activations: value, f"{array.item():g}" if array.ndim == 0 else
                         f"weights[{array.size}]", ())

    def __add__(self, other: Objective | float | int | np.ndarray) -> Objective:
        right = self._lift(other)
        return Objective(lambda a: self(a) + right(a), f"({self} + {right})", self.keys | right.keys)

    def __radd__(self, other: float | int | np.ndarray) -> Objective:
        return self._lift(other) + self

    def __sub__(self, other: Objective | float | int | np.ndarray) -> Objective:
        right = self._lift(other)
        return Objective(lambda a: self(a) - right(a), f"({self} - {right})", self.keys | right.keys)

    def __rsub__(self, other: float | int | np.ndarray) -> Objective:
        return self._lift(other) - self

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), f"-{self}", self.keys)

    def __mul__(self, other: Objective | float | int | np.ndarray) -> Objective:
        right = self._lift(other)
        return Objective(lambda a: self(a) * right(a), f"{right} * {self}", self.keys | right.keys)

    def __rmul__(self, other: float | int | np.ndarray) -> Objective:
        return self.__mul__(other)


Channels = int | Sequence[int] | np.ndarray | tf.Tensor | tf.Variable


def _brief(channels: Channels) -> str:
    """Short text for a channel or a per-image channel list (descriptions stay one line)."""
    if isinstance(channels, (int, np.integer)):
        return str(int(channels))
    if isinstance(channels, (tf.Tensor, tf.Variable)):
        return "per-image"
    chans = [int(c) for c in channels]
    return str(chans) if len(chans) <= 4 else f"[{chans[0]}, {chans[1]}, ... x{len(chans)}]"


def _indices(values: Channels) -> int | tf.Tensor | tf.Variable:
    """An int stays an int; a list becomes a constant; tensors and variables stay as they are, so a
    variable is read at every evaluation (a traced step then serves whatever it holds)."""
    if isinstance(values, (int, np.integer)):
        return int(values)
    if isinstance(values, (tf.Tensor, tf.Variable)):
        return values
    return tf.constant(np.asarray(values, np.int32))


def _per_image(values: tf.Tensor, channels: int | tf.Tensor | tf.Variable) -> tf.Tensor:
    """Pick ``values[b, channels[b]]`` from ``[B, C]`` (or one channel for every image).

    A one-hot product, not a batched gather: equal for finite values, and its gradient graph is a few ops
    where the gather's takes ~0.15 s to build per layer of a channel table (traced once per render)."""
    if isinstance(channels, int):
        return values[:, channels]
    return tf.reduce_sum(values * tf.one_hot(channels, tf.shape(values)[1], dtype=values.dtype), axis=1)


def channel(layer: str, channels: Channels) -> Objective:
    """Mean activation of a channel over all positions; ``channels`` may give one channel per image
    (a list, or an int tensor / variable ``[batch]``)."""
    index = _indices(channels)
    return Objective(lambda a: _per_image(tf.reduce_mean(a[layer], axis=[1, 2]), index),
                     f"channel({layer}, {_brief(channels)})", [layer])


def neuron(layer: str, channels: Channels, row: int | None = None, col: int | None = None) -> Objective:
    """Activation of a channel at one position, by default the centre (``H // 2, W // 2`` as Lucid)."""
    index = _indices(channels)

    def fn(a: Activations) -> tf.Tensor:
        act = a[layer]
        r = act.shape[1] // 2 if row is None else row
        c = act.shape[2] // 2 if col is None else col
        return _per_image(act[:, r, c, :], index)

    return Objective(fn, f"neuron({layer}, {_brief(channels)}, {row}, {col})", [layer])


def direction(layer: str, vectors: np.ndarray) -> Objective:
    """Mean over positions of the dot product with ``vectors`` (``[C]``, or ``[B, C]``: one per image)."""
    vec = tf.constant(np.asarray(vectors, np.float32))

    def fn(a: Activations) -> tf.Tensor:
        weights = vec[None, None, None, :] if vec.shape.rank == 1 else vec[:, None, None, :]
        return tf.reduce_mean(tf.reduce_sum(a[layer] * weights, axis=-1), axis=[1, 2])

    return Objective(fn, f"direction({layer})", [layer])


def gram_cosines(activations: tf.Tensor, group_size: int) -> tf.Tensor:
    """``[B / n, n, n]`` cosines between the Gram matrices of the images of each consecutive group."""
    shape = tf.shape(activations)
    channels = activations.shape[-1]
    flat = tf.reshape(activations, [shape[0], -1, channels])
    grams = tf.matmul(flat, flat, transpose_a=True)  # [B, C, C]
    grams = tf.math.l2_normalize(tf.reshape(grams, [shape[0], -1]), axis=1, epsilon=1e-10)
    groups = tf.reshape(grams, [-1, group_size, channels * channels])
    return tf.matmul(groups, groups, transpose_b=True)


def diversity(layer: str, group_size: int, images: Sequence[int] | None = None) -> Objective:
    """Lucid's diversity, within each consecutive group of ``group_size`` images.

    Per image b of a group of n: ``sum_{j != b} cos(G_b, G_j) / n`` with ``G`` the channel Gram matrix over
    positions; summed over a group this is Lucid's ``diversity(layer)`` of that batch. Subtract it (Lucid:
    ``channel - 1e2 * diversity``) to push the images of a group apart in style. ``images`` restricts it
    to those batch indices (consecutive groups among them; 0 elsewhere), so a batch mixing layers only
    builds each layer's Gram matrices for its own images.
    """
    rows = None if images is None else tf.constant(np.asarray(images, np.int32)[:, None])

    def fn(a: Activations) -> tf.Tensor:
        act = a[layer] if rows is None else tf.gather_nd(a[layer], rows)
        if act.shape[0] is not None and act.shape[0] % group_size:
            raise ValueError(f"diversity: {act.shape[0]} images, not a multiple of group size {group_size}")
        cosines = gram_cosines(act, group_size)
        values = tf.reshape(tf.reduce_sum(cosines, axis=2) - tf.linalg.diag_part(cosines), [-1]) / group_size
        if rows is None:
            return values
        return tf.scatter_nd(rows, values, tf.shape(a[layer])[:1])

    return Objective(fn, f"diversity({layer}, {group_size})", [layer])


def _input_like(layer: str) -> Callable[[Activations], tf.Tensor]:
    return lambda a: tf.reshape(a[layer], [tf.shape(a[layer])[0], -1])


def l1(layer: str = "input", constant: float = 0.0) -> Objective:
    """Sum of absolute deviations from ``constant`` (a penalty: subtract it)."""
    flat = _input_like(layer)
    return Objective(lambda a: tf.reduce_sum(tf.abs(flat(a) - constant), axis=1), f"l1({layer})", [layer])


def l2(layer: str = "input", constant: float = 0.0, epsilon: float = 1e-6) -> Objective:
    """Euclidean norm of the deviation from ``constant`` (a penalty: subtract it)."""
    flat = _input_like(layer)
    return Objective(lambda a: tf.sqrt(epsilon + tf.reduce_sum(tf.square(flat(a) - constant), axis=1)),
                     f"l2({layer})", [layer])


def total_variation(layer: str = "input") -> Objective:
    """Sum of absolute differences between neighbouring pixels (a penalty against noise)."""
    return Objective(lambda a: tf.image.total_variation(a[layer]), f"total_variation({layer})", [layer])


def _where_sum(layer_of: tf.Tensor | tf.Variable, terms: Sequence[Callable[[tf.Tensor], Objective]]
               ) -> Callable[[Activations], tf.Tensor]:
    """``value[b] = terms[layer_of[b]](mine)[b]``: term ``i`` (built from the mask ``mine`` of its images)
    is kept only on its own images, the others get 0 and no gradient. ``layer_of`` may be a variable."""

    def fn(a: Activations) -> tf.Tensor:
        total = None
        for i, term in enumerate(terms):
            mine = tf.equal(layer_of, i)
            value = tf.where(mine, term(mine)(a), 0.0)
            total = value if total is None else total + value
        return total

    return fn


def channel_table(layers: Sequence[str], layer_of: Channels, channels: Channels) -> Objective:
    """Image b maximizes the mean of channel ``channels[b]`` of tensor ``layers[layer_of[b]]``.

    Every listed tensor's channel means are computed for the whole batch and masked, so with int variables
    for ``layer_of`` and ``channels`` one traced graph serves any assignment of channels to images (batch
    after batch of a render run) at the cost of a few reductions.
    """
    index, chans = _indices(layer_of), _indices(channels)
    terms = [lambda mine, layer=layer: channel(layer, tf.where(mine, chans, 0)) for layer in layers]
    return Objective(_where_sum(index, terms), f"channel_table({', '.join(layers)})", layers)


def _layer_index(pairs: Sequence[tuple[str, int]]) -> tuple[list[str], list[int], list[int]]:
    """The distinct layers of ``pairs`` (first-seen order), each image's index into them, and its channel."""
    layers = list(dict.fromkeys(layer for layer, _ in pairs))
    return layers, [layers.index(layer) for layer, _ in pairs], [int(ch) for _, ch in pairs]


def layer_channels(pairs: Sequence[tuple[str, int]], tensors: Mapping[str, str] | None = None) -> Objective:
    """Image b maximizes the mean of channel ``pairs[b][1]`` of layer ``pairs[b][0]``: many layers'
    channels in one batch. ``tensors`` maps a layer to the tensor its channel is read from (e.g. its
    pre-activation, :func:`feature_vis.channels.objective_tensors`); by default the layer itself."""
    layers, layer_of, chans = _layer_index(pairs)
    return channel_table([(tensors or {}).get(layer, layer) for layer in layers], layer_of, chans)


def diverse_channels(layer: str, channels: Channels, group_size: int, weight: float = 1e2,
                     images: Sequence[int] | None = None, channel_tensor: str | None = None) -> Objective:
    """Lucid's ``channel - weight * diversity`` per consecutive group of ``group_size`` images of one
    layer, the channel term averaged over the group (Lucid's ``channel`` averages over its batch).
    ``images`` restricts the diversity term to those batch indices (see :func:`diversity`). The channel
    term reads ``channel_tensor`` (default ``layer``) and the diversity term ``layer``, as Lucid's
    ``channel("mixed4a_pre_relu", n) - 1e2 * diversity("mixed4a")``."""
    return (channel(channel_tensor or layer, channels) * (1.0 / group_size)
            - weight * diversity(layer, group_size, images))


def diverse_layer_channels(pairs: Sequence[tuple[str, int]], group_size: int, weight: float = 1e2,
                           tensors: Mapping[str, str] | None = None) -> Objective:
    """SUMMIT's diversity images. ``pairs`` names each image's (layer, channel); consecutive groups of
    ``group_size`` images share one. Per group :func:`diverse_channels` on that layer, its channel term
    read from ``tensors[layer]`` (as :func:`layer_channels`); each layer's Gram matrices are built for
    its own images only."""
    layers, layer_of, chans = _layer_index(pairs)
    index, chans = np.asarray(layer_of), np.asarray(chans)
    rows = [None if len(layers) == 1 else np.flatnonzero(index == i) for i in range(len(layers))]
    read = [(tensors or {}).get(layer, layer) for layer in layers]
    terms = [lambda mine, i=i: diverse_channels(layers[i], np.where(index == i, chans, 0), group_size, weight,
                                                rows[i], read[i])
             for i in range(len(layers))]
    return Objective(_where_sum(tf.constant(index.astype(np.int32)), terms),
                     f"diverse_layer_channels({', '.join(layers)}, {group_size})", [*layers, *read])
