"""Objectives to maximize, one value per image of the batch, composable with ``+ - *`` and scalars.

An :class:`Objective` maps the activations dict (``model.features(...)`` plus ``"input"``, the images
before the random transforms) to a ``[batch]`` tensor. Keeping one value per image (Lucid reduces to a
scalar) is what lets one optimization render many channels at once: image ``b`` gets objective ``b``,
and the render loop maximizes the sum, which for independent images is the same as maximizing each.
Operands may be objectives, numbers, or ``[batch]`` arrays of per-image weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

Activations = Mapping[str, tf.Tensor]


class Objective:
    """A function ``activations -> [batch]`` with arithmetic; ``description`` says what it computes."""

    # Makes ``weights_array * objective`` call our __rmul__ instead of NumPy broadcasting over objects.
    __array_ufunc__ = None

    def __init__(self, fn: Callable[[Activations], tf.Tensor], description: str) -> None:
        self.fn = fn
        self.description = description

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
                         f"weights[{array.size}]")

    def __add__(self, other: Objective | float | int | np.ndarray) -> Objective:
        right = self._lift(other)
        return Objective(lambda a: self(a) + right(a), f"({self} + {right})")

    def __radd__(self, other: float | int | np.ndarray) -> Objective:
        return self._lift(other) + self

    def __sub__(self, other: Objective | float | int | np.ndarray) -> Objective:
        right = self._lift(other)
        return Objective(lambda a: self(a) - right(a), f"({self} - {right})")

    def __rsub__(self, other: float | int | np.ndarray) -> Objective:
        return self._lift(other) - self

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), f"-{self}")

    def __mul__(self, other: Objective | float | int | np.ndarray) -> Objective:
        right = self._lift(other)
        return Objective(lambda a: self(a) * right(a), f"{right} * {self}")

    def __rmul__(self, other: float | int | np.ndarray) -> Objective:
        return self.__mul__(other)


def _brief(channels: int | Sequence[int]) -> str:
    """Short text for a channel or a per-image channel list (descriptions stay one line)."""
    if isinstance(channels, (int, np.integer)):
        return str(int(channels))
    chans = [int(c) for c in channels]
    return str(chans) if len(chans) <= 4 else f"[{chans[0]}, {chans[1]}, ... x{len(chans)}]"


def _per_image(values: tf.Tensor, channels: int | Sequence[int]) -> tf.Tensor:
    """Pick ``values[b, channels[b]]`` from ``[B, C]`` (or one channel for every image)."""
    if isinstance(channels, (int, np.integer)):
        return values[:, int(channels)]
    return tf.gather(values, tf.constant(np.asarray(channels, np.int32)), axis=1, batch_dims=1)


def channel(layer: str, channels: int | Sequence[int]) -> Objective:
    """Mean activation of a channel over all positions; ``channels`` may give one channel per image."""
    return Objective(lambda a: _per_image(tf.reduce_mean(a[layer], axis=[1, 2]), channels),
                     f"channel({layer}, {_brief(channels)})")


def neuron(layer: str, channels: int | Sequence[int], row: int | None = None,
           col: int | None = None) -> Objective:
    """Activation of a channel at one position, by default the centre (``H // 2, W // 2`` as Lucid)."""

    def fn(a: Activations) -> tf.Tensor:
        act = a[layer]
        r = act.shape[1] // 2 if row is None else row
        c = act.shape[2] // 2 if col is None else col
        return _per_image(act[:, r, c, :], channels)

    return Objective(fn, f"neuron({layer}, {_brief(channels)}, {row}, {col})")


def direction(layer: str, vectors: np.ndarray) -> Objective:
    """Mean over positions of the dot product with ``vectors`` (``[C]``, or ``[B, C]``: one per image)."""
    vec = tf.constant(np.asarray(vectors, np.float32))

    def fn(a: Activations) -> tf.Tensor:
        weights = vec[None, None, None, :] if vec.shape.rank == 1 else vec[:, None, None, :]
        return tf.reduce_mean(tf.reduce_sum(a[layer] * weights, axis=-1), axis=[1, 2])

    return Objective(fn, f"direction({layer})")


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

    return Objective(fn, f"diversity({layer}, {group_size})")


def _input_like(layer: str) -> Callable[[Activations], tf.Tensor]:
    return lambda a: tf.reshape(a[layer], [tf.shape(a[layer])[0], -1])


def l1(layer: str = "input", constant: float = 0.0) -> Objective:
    """Sum of absolute deviations from ``constant`` (a penalty: subtract it)."""
    flat = _input_like(layer)
    return Objective(lambda a: tf.reduce_sum(tf.abs(flat(a) - constant), axis=1), f"l1({layer})")


def l2(layer: str = "input", constant: float = 0.0, epsilon: float = 1e-6) -> Objective:
    """Euclidean norm of the deviation from ``constant`` (a penalty: subtract it)."""
    flat = _input_like(layer)
    return Objective(lambda a: tf.sqrt(epsilon + tf.reduce_sum(tf.square(flat(a) - constant), axis=1)),
                     f"l2({layer})")


def total_variation(layer: str = "input") -> Objective:
    """Sum of absolute differences between neighbouring pixels (a penalty against noise)."""
    return Objective(lambda a: tf.image.total_variation(a[layer]), f"total_variation({layer})")


def _by_layer(pairs: Sequence[tuple[str, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each layer named in ``pairs``: a 0/1 mask of its images and every image's channel (0 elsewhere)."""
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, (layer, ch) in enumerate(pairs):
        mask, chans = groups.setdefault(layer, (np.zeros(len(pairs), np.float32), np.zeros(len(pairs), int)))
        mask[i], chans[i] = 1.0, ch
    return groups


def _masked_sum(terms: list[tuple[np.ndarray, Objective]]) -> Objective:
    """Sum of per-layer terms, each restricted to its layer's images (no mask when one layer has all)."""
    if len(terms) == 1:
        return terms[0][1]
    total = terms[0][0] * terms[0][1]
    for mask, term in terms[1:]:
        total = total + mask * term
    return total


def layer_channels(pairs: Sequence[tuple[str, int]]) -> Objective:
    """Image b maximizes the mean of channel ``pairs[b][1]`` of layer ``pairs[b][0]``: many layers'
    channels in one batch."""
    return _masked_sum([(mask, channel(layer, chans)) for layer, (mask, chans) in _by_layer(pairs).items()])


def diverse_layer_channels(pairs: Sequence[tuple[str, int]], group_size: int,
                           weight: float = 1e2) -> Objective:
    """SUMMIT's diversity images. ``pairs`` names each image's (layer, channel); consecutive groups of
    ``group_size`` images share one. Per group, Lucid's ``channel - weight * diversity`` with the channel
    term averaged over the group (Lucid's ``channel`` averages over its batch) and the diversity measured
    on that layer."""
    terms = []
    for layer, (mask, chans) in _by_layer(pairs).items():
        mine = None if mask.all() else np.flatnonzero(mask)
        spread = diversity(layer, group_size, mine)
        terms.append((mask, channel(layer, chans) * (1.0 / group_size) - weight * spread))
    return _masked_sum(terms)
