"""Random image transforms that feature visualizations must survive (Lucid's transformation robustness).

A transform is ``f(images [B, H, W, C], generator) -> images``; :func:`compose` chains them. Lucid's
standard transforms (pad, jitter, scale, rotate, jitter) are all geometric, so here each is an
:class:`Affine` map from output pixels to input pixels, and :func:`compose` chains consecutive maps into
one: the whole chain is a single bilinear resampling (one interpolation instead of three, and the cost of
one sparse matrix product per step). Each stage keeps its own fill for what falls outside its input
canvas: the pad grey 0.5 around the image (padding is exactly a fill), and 0 where the rotation reaches
outside its canvas (Lucid's ``tf.contrib.image.rotate`` fills with 0). A later stage's fill is blended in
with the bilinear weight of the out-of-canvas pixels at its own sampling point.

Every random transform takes ``per_image``: with ``True`` (our default) each image of the batch gets its
own draw, so a batch of images with independent objectives behaves like that many separate Lucid renders;
with ``False`` one draw is shared by the batch, as in Lucid (which renders one objective per batch).

Deliberate differences from Lucid: scaling zooms about the centre on a canvas of unchanged size (Lucid
resizes the canvas, which cannot differ per image; the uncovered border takes the pad grey); rotation is
bilinear (Lucid's default was nearest) with exact pi (Lucid: 3.14). Gradients are exact (the adjoint of
the sampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

Transform = Callable[[tf.Tensor, tf.random.Generator], tf.Tensor]
# (generator, batch, height, width) -> (matrices [B, 2, 2], offsets [B, 2]): input = M @ output + t.
MapDraw = Callable[[tf.random.Generator, tf.Tensor, int, int], tuple[tf.Tensor, tf.Tensor]]

PAD_VALUE = 0.5
ROTATE_FILL = 0.0  # Lucid's rotate (tf.contrib.image.rotate) fills the uncovered corners with 0
STANDARD_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
# -10..10 degrees, with 0 drawn 6 times out of 26 (Lucid adds 5 extra zeros).
STANDARD_ANGLES = tuple(range(-10, 11)) + 5 * (0,)


def _grid(height: int, width: int) -> tf.Tensor:
    """``[2, height * width]`` (row, col) of every output pixel, row-major."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return tf.constant(np.stack([rows.ravel(), cols.ravel()]), tf.float32)


def resample(images: tf.Tensor, matrices: tf.Tensor, offsets: tf.Tensor, height: int, width: int,
             fill: float = PAD_VALUE) -> tf.Tensor:
    """Bilinear sampling: output pixel (r, c) of image b reads the input at ``M_b @ (r, c) + t_b``.

    Outside the input the value is ``fill``, interpolated with the edge pixels (scipy's ``grid-constant``).
    Written as one sparse ``[B*h*w, B*H*W]`` matrix times the pixels, whose gradient is its transpose.
    """
    source = tf.matmul(matrices, _grid(height, width)[None]) + offsets[:, :, None]  # [B, 2, N]
    return _sample(images, source, height, width, fill)


def _sample(images: tf.Tensor, source: tf.Tensor, height: int, width: int, fill: float) -> tf.Tensor:
    """:func:`resample` at explicit points ``source`` ``[B, 2, height * width]``."""
    batch = tf.shape(images)[0]
    in_h, in_w, channels = images.shape[1], images.shape[2], images.shape[3]
    sy = tf.clip_by_value(source[:, 0], -2.0, in_h + 1.0)
    sx = tf.clip_by_value(source[:, 1], -2.0, in_w + 1.0)
    y0, x0 = tf.floor(sy), tf.floor(sx)
    fy, fx = sy - y0, sx - x0
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    base = (tf.range(batch) * in_h * in_w)[:, None]
    weights, columns = [], []
    corners = ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx))
    for dy, dx, w in corners:
        y, x = y0 + dy, x0 + dx
        inside = (y >= 0) & (y < in_h) & (x >= 0) & (x < in_w)
        weights.append(tf.where(inside, w, 0.0))
        columns.append(base + tf.clip_by_value(y, 0, in_h - 1) * in_w + tf.clip_by_value(x, 0, in_w - 1))
    weights = tf.stop_gradient(tf.stack(weights, axis=-1))  # [B, N, 4]
    count = batch * height * width
    indices = tf.stack([tf.repeat(tf.range(count, dtype=tf.int64), 4),
                        tf.cast(tf.reshape(tf.stack(columns, axis=-1), [-1]), tf.int64)], axis=1)
    shape = tf.cast(tf.stack([count, batch * in_h * in_w]), tf.int64)
    matrix = tf.sparse.SparseTensor(indices, tf.reshape(weights, [-1]), shape)
    pixels = tf.sparse.sparse_dense_matmul(matrix, tf.reshape(images, [-1, channels]))
    outside = 1.0 - tf.reshape(tf.reduce_sum(weights, axis=-1), [-1, 1])
    return tf.reshape(pixels + fill * outside, [batch, height, width, channels])


def _coverage(points: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """``[B, N]`` bilinear weight of the in-canvas pixels at ``points`` ``[B, 2, N]`` on a ``height`` x
    ``width`` canvas: 1 inside, 0 a pixel or more outside (the share :func:`resample` does not fill)."""

    def along(v: tf.Tensor, n: int) -> tf.Tensor:
        v = tf.clip_by_value(v, -2.0, n + 1.0)
        v0 = tf.floor(v)
        frac = v - v0
        return (1.0 - frac) * tf.cast((v0 >= 0) & (v0 <= n - 1), tf.float32) + \
            frac * tf.cast((v0 >= -1) & (v0 <= n - 2), tf.float32)

    return along(points[:, 0], height) * along(points[:, 1], width)


class Affine:
    """A geometric transform: output size ``size(h, w)``, random maps ``draw(...)``, and ``fill`` for
    output pixels whose source lies outside the input canvas."""

    def __init__(self, size: Callable[[int, int], tuple[int, int]], draw: MapDraw,
                 fill: float = PAD_VALUE) -> None:
        self.size, self.draw, self.fill = size, draw, fill

    def __call__(self, images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        return _apply_affines(images, [self], generator)


def _apply_affines(images: tf.Tensor, affines: Sequence[Affine], generator: tf.random.Generator) -> tf.Tensor:
    """Chain the maps of ``affines`` (applied in order) and resample once.

    Each output pixel is traced back stage by stage (input of the first = M1 (M2 (...) + t2) + t1); the
    first stage's fill is the sampling's own, and each later stage blends its fill in with the share of
    its own sampling point that falls outside its input canvas (:func:`_coverage`), innermost first.
    """
    if not affines:
        return images
    batch, h, w = tf.shape(images)[0], images.shape[1], images.shape[2]
    stages = []
    for affine in affines:
        stages.append((*affine.draw(generator, batch, h, w), h, w, affine.fill))
        h, w = affine.size(h, w)
    points = tf.tile(_grid(h, w)[None], [batch, 1, 1])
    blends = []
    for m, t, in_h, in_w, fill in reversed(stages):
        points = tf.matmul(m, points) + t[:, :, None]
        blends.append((_coverage(points, in_h, in_w), fill))
    out = _sample(images, points, h, w, affines[0].fill)
    for coverage, fill in reversed(blends[:-1]):  # the second stage first
        inside = tf.reshape(coverage, [batch, h, w, 1])
        out = inside * out + (1.0 - inside) * fill
    return out


def _identity(batch: tf.Tensor) -> tf.Tensor:
    return tf.eye(2, batch_shape=[batch])


def _draw(generator: tf.random.Generator, values: Sequence[float], batch: tf.Tensor,
          per_image: bool) -> tf.Tensor:
    """Uniform draws from ``values``: ``[batch]`` independent ones, or one repeated ``batch`` times."""
    index = generator.uniform([batch if per_image else 1], 0, len(values), dtype=tf.int32)
    picked = tf.gather(tf.constant(values, tf.float32), index)
    return picked if per_image else tf.repeat(picked, batch)


def _about_centre(matrices: tf.Tensor, h: int, w: int) -> tf.Tensor:
    """Offsets that make ``matrices`` act about the image centre (the centre maps to itself)."""
    centre = tf.constant([(h - 1) / 2.0, (w - 1) / 2.0])
    return centre - tf.linalg.matvec(matrices, tf.broadcast_to(centre, [tf.shape(matrices)[0], 2]))


def pad(width: int, value: float = PAD_VALUE) -> Affine:
    """Constant border of ``width`` pixels, so that jitter and rotation do not always cut the same edge."""

    def draw(generator, batch, h, w):
        return _identity(batch), tf.fill([batch, 2], -float(width))

    return Affine(lambda h, w: (h + 2 * width, w + 2 * width), draw, fill=value)


def jitter(d: int, per_image: bool = True) -> Affine:
    """Random crop ``d`` pixels smaller in height and width (offsets uniform in 0..d, as random_crop)."""

    def draw(generator, batch, h, w):
        offsets = generator.uniform([batch if per_image else 1, 2], 0, d + 1, dtype=tf.int32)
        offsets = tf.cast(offsets if per_image else tf.repeat(offsets, batch, axis=0), tf.float32)
        return _identity(batch), offsets

    return Affine(lambda h, w: (h - d, w - d), draw)


def scale_matrices(scales: tf.Tensor) -> tf.Tensor:
    """Maps for zooming by ``scales`` (> 1 magnifies): input offset = output offset / scale."""
    return tf.eye(2, batch_shape=[tf.shape(scales)[0]]) / scales[:, None, None]


def rotation_matrices(degrees: tf.Tensor) -> tf.Tensor:
    """Maps rotating the content counter-clockwise (as shown) by ``degrees``: 90 = np.rot90."""
    theta = degrees * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    return tf.reshape(tf.stack([cos, sin, -sin, cos], axis=1), [-1, 2, 2])


def random_scale(scales: Sequence[float], per_image: bool = True, fill: float = PAD_VALUE) -> Affine:
    """Zoom by a factor drawn from ``scales``, about the centre, keeping the canvas size."""

    def draw(generator, batch, h, w):
        m = scale_matrices(_draw(generator, scales, batch, per_image))
        return m, _about_centre(m, h, w)

    return Affine(lambda h, w: (h, w), draw, fill=fill)


def random_rotate(degrees: Sequence[float], per_image: bool = True, fill: float = ROTATE_FILL) -> Affine:
    """Rotate about the centre by an angle (degrees) drawn from ``degrees``; the corners that come from
    outside the canvas take ``fill`` (0, as Lucid's rotate)."""

    def draw(generator, batch, h, w):
        m = rotation_matrices(_draw(generator, degrees, batch, per_image))
        return m, _about_centre(m, h, w)

    return Affine(lambda h, w: (h, w), draw, fill=fill)


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order; each run of consecutive :class:`Affine` becomes one resampling."""

    def apply(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
        run: list[Affine] = []
        for transform in transforms:
            if isinstance(transform, Affine):
                run.append(transform)
                continue
            images = transform(_apply_affines(images, run, generator), generator)
            run = []
        return _apply_affines(images, run, generator)

    return apply


def standard_transforms(per_image: bool = True) -> list[Transform]:
    """Lucid's ``standard_transforms``: pad 12 (grey), jitter 8, scale 0.90..1.10, rotate -10..10 (corners
    0), jitter 4.

    The output is 12 pixels larger than the input in height and width (128 -> 140).
    """
    return [
        pad(12),
        jitter(8, per_image),
        random_scale(STANDARD_SCALES, per_image),
        random_rotate(STANDARD_ANGLES, per_image),
        jitter(4, per_image),
    ]
