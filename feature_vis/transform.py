"""Random image transforms that feature visualizations must survive (Lucid's transformation robustness).

A transform is ``f(images [B, H, W, C], generator) -> images``; :func:`compose` chains them. Every random
transform takes ``per_image``: with ``True`` (our default) each image of the batch gets its own draw, so a
batch of images with independent objectives behaves like that many separate Lucid renders; with ``False``
one draw is shared by the whole batch, as in Lucid (which renders one objective per batch).

Differences from Lucid, all deliberate: scaling zooms about the centre on a canvas of unchanged size
(Lucid resizes the canvas, which would need one graph per scale and cannot differ per image), filling
uncovered pixels with the pad grey; rotation uses bilinear interpolation (Lucid's default was nearest)
and exact pi. Both resamplings have exact gradients (they are gathers, not ``ImageProjectiveTransform``,
whose registered gradient is only an approximate adjoint).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

Transform = Callable[[tf.Tensor, tf.random.Generator], tf.Tensor]

PAD_VALUE = 0.5
STANDARD_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
# -10..10 degrees, with 0 drawn 6 times out of 26 (Lucid adds 5 extra zeros).
STANDARD_ANGLES = tuple(range(-10, 11)) + 5 * (0,)


def _choice(generator: tf.random.Generator, values: Sequence[float], batch: tf.Tensor,
            per_image: bool) -> tf.Tensor:
    """Uniform draws from ``values``: ``[batch]`` independent ones, or one repeated ``batch`` times."""
    count = batch if per_image else 1
    index = generator.uniform([count], 0, len(values), dtype=tf.int32)
    picked = tf.gather(tf.constant(values, tf.float32), index)
    return picked if per_image else tf.repeat(picked, batch)


def pad(width: int, value: float = PAD_VALUE) -> Transform:
    """Constant border of ``width`` pixels, so that jitter and rotation do not always cut the same edge."""

    def apply(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        del generator
        return tf.pad(images, [[0, 0], [width, width], [width, width], [0, 0]], constant_values=value)

    return apply


def jitter(d: int, per_image: bool = True) -> Transform:
    """Random crop ``d`` pixels smaller in height and width (offsets uniform in 0..d, as random_crop)."""

    def apply(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
        count = batch if per_image else 1
        offsets = generator.uniform([count, 2], 0, d + 1, dtype=tf.int32)
        if not per_image:
            offsets = tf.repeat(offsets, batch, axis=0)
        rows = offsets[:, :1] + tf.range(height - d)[None, :]
        cols = offsets[:, 1:] + tf.range(width - d)[None, :]
        cropped = tf.gather(images, rows, axis=1, batch_dims=1)
        return tf.gather(cropped, cols, axis=2, batch_dims=1)

    return apply


def affine_resample(images: tf.Tensor, matrices: tf.Tensor, fill: float = PAD_VALUE) -> tf.Tensor:
    """Bilinear resampling about the image centre, same output size, constant ``fill`` outside.

    ``matrices`` ``[B, 2, 2]`` maps an output pixel's (row, col) offset from the centre to the source
    offset. Pixels between the image and the fill interpolate with the fill (scipy's ``grid-constant``).
    """
    batch, height, width, channels = tf.shape(images)[0], images.shape[1], images.shape[2], images.shape[3]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    ys, xs = np.meshgrid(np.arange(height) - cy, np.arange(width) - cx, indexing="ij")
    offsets = tf.constant(np.stack([ys.ravel(), xs.ravel()]), tf.float32)  # [2, H*W]
    source = tf.matmul(matrices, offsets[None])  # [B, 2, H*W]
    # One pixel of fill all around, then clamp: anything further out samples only the fill.
    sy = tf.clip_by_value(source[:, 0] + cy + 1.0, 0.0, height + 1.0)
    sx = tf.clip_by_value(source[:, 1] + cx + 1.0, 0.0, width + 1.0)
    y0, x0 = tf.floor(sy), tf.floor(sx)
    wy, wx = (sy - y0)[..., None], (sx - x0)[..., None]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1, x1 = tf.minimum(y0 + 1, height + 1), tf.minimum(x0 + 1, width + 1)
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=fill)
    flat = tf.reshape(padded, [batch, (height + 2) * (width + 2), channels])

    def corner(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        return tf.gather(flat, y * (width + 2) + x, axis=1, batch_dims=1)

    top = corner(y0, x0) * (1.0 - wx) + corner(y0, x1) * wx
    bottom = corner(y1, x0) * (1.0 - wx) + corner(y1, x1) * wx
    return tf.reshape(top * (1.0 - wy) + bottom * wy, [batch, height, width, channels])


def scale_matrices(scales: tf.Tensor) -> tf.Tensor:
    """Inverse maps for zooming by ``scales`` (> 1 magnifies): source offset = output offset / scale."""
    inverse = 1.0 / scales
    zeros = tf.zeros_like(inverse)
    return tf.reshape(tf.stack([inverse, zeros, zeros, inverse], axis=1), [-1, 2, 2])


def rotation_matrices(degrees: tf.Tensor) -> tf.Tensor:
    """Inverse maps rotating the content counter-clockwise (as shown) by ``degrees``: 90 = np.rot90."""
    theta = degrees * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    return tf.reshape(tf.stack([cos, sin, -sin, cos], axis=1), [-1, 2, 2])


def random_scale(scales: Sequence[float], per_image: bool = True, fill: float = PAD_VALUE) -> Transform:
    """Zoom by a factor drawn from ``scales``, about the centre, keeping the canvas size."""

    def apply(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        drawn = _choice(generator, scales, tf.shape(images)[0], per_image)
        return affine_resample(images, scale_matrices(drawn), fill)

    return apply


def random_rotate(degrees: Sequence[float], per_image: bool = True, fill: float = PAD_VALUE) -> Transform:
    """Rotate about the centre by an angle (degrees) drawn from ``degrees``."""

    def apply(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        drawn = _choice(generator, degrees, tf.shape(images)[0], per_image)
        return affine_resample(images, rotation_matrices(drawn), fill)

    return apply


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""

    def apply(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        for transform in transforms:
            images = transform(images, generator)
        return images

    return apply


def standard_transforms(per_image: bool = True) -> list[Transform]:
    """Lucid's ``standard_transforms``: pad 12 (grey), jitter 8, scale 0.90..1.10, rotate -10..10, jitter 4.

    The output is 12 pixels larger than the input in height and width (128 -> 140).
    """
    return [
        pad(12),
        jitter(8, per_image),
        random_scale(STANDARD_SCALES, per_image),
        random_rotate(STANDARD_ANGLES, per_image),
        jitter(4, per_image),
    ]
