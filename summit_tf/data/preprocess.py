"""Decode one encoded image and bring it to the model's square input size, in [0, 1].

SUMMIT resized the whole image to the input size without keeping the aspect ratio (``squash``); the
Inception/slim evaluation recipe crops the central 87.5 % first (``center_crop``). Both use bilinear
interpolation without antialiasing. TF2 samples at half-pixel centres; TF1's ``resize_images``, which the
original SUMMIT ran, sampled output pixel ``i`` at input coordinate ``i * in / out`` (``half_pixel_centers=
False``: the image shifts by up to half an input pixel). Scaling into the model's own value range is the
model's job.

``decode(encoded, image_size, max_ratio)`` may decode a large JPEG at 1/2, 1/4 or 1/8 of its size in the
DCT domain (``decode_jpeg(ratio=)``, far less work than a full decode) when its shorter side is at least
that many times the target size: the resize then starts from a smaller, slightly differently filtered
image, so counts may differ a little from a full decode (measured in BUILD_NOTES); ``max_ratio=1``, the
default, always decodes in full.
"""

from __future__ import annotations

import tensorflow as tf

from summit_tf.vocabulary import JPEG_RATIOS, RESIZE_MODES

CENTER_CROP_FRACTION = 0.875


def check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize {resize!r}; expected one of: {', '.join(RESIZE_MODES)}")
    return resize


def check_ratio(max_ratio: int) -> int:
    if max_ratio not in JPEG_RATIOS:
        raise ValueError(f"max_ratio (JPEG DCT-domain downscaling) must be one of {JPEG_RATIOS}, "
                         f"got {max_ratio!r}")
    return max_ratio


def decode(encoded: tf.Tensor, image_size: int | None = None, max_ratio: int = 1) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes -> uint8 ``[H, W, 3]`` (grey and RGBA become RGB); raises on corrupt data.

    With ``max_ratio`` > 1 a JPEG whose shorter side is at least ``r * image_size`` is decoded at ``1/r``
    of its size, ``r`` the largest of :data:`JPEG_RATIOS` up to ``max_ratio`` that fits."""
    check_ratio(max_ratio)
    ratios = [r for r in JPEG_RATIOS if r <= max_ratio]
    if len(ratios) == 1:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    else:
        if image_size is None:
            raise ValueError("decode: max_ratio > 1 needs the target image_size")

        def downscaled() -> tf.Tensor:
            shape = tf.image.extract_jpeg_shape(encoded)
            fits = [tf.reduce_min(shape[:2]) >= r * image_size for r in ratios[1:]]
            branch = tf.reduce_sum(tf.cast(tf.stack(fits), tf.int32))  # index of the largest r that fits
            return tf.switch_case(branch, [lambda r=r: tf.io.decode_jpeg(encoded, channels=3, ratio=r)
                                           for r in ratios])

        def full() -> tf.Tensor:
            return tf.io.decode_image(encoded, channels=3, expand_animations=False)

        image = tf.cond(tf.io.is_jpeg(encoded), downscaled, full)
    image.set_shape([None, None, 3])
    return image


def resize_image(image: tf.Tensor, image_size: int, resize: str = "squash",
                 half_pixel_centers: bool = True) -> tf.Tensor:
    """uint8 or float ``[H, W, 3]`` -> float32 ``[S, S, 3]`` in [0, 1] (bilinear; ``half_pixel_centers=False``
    samples as TF1 did, edge pixels clamped)."""
    check_resize(resize)
    image = tf.image.convert_image_dtype(image, tf.float32)
    if resize == "center_crop":
        image = tf.image.central_crop(image, CENTER_CROP_FRACTION)
    # The kernel behind both tf.image.resize (bilinear, no antialias) and TF1's resize_images.
    image = tf.raw_ops.ResizeBilinear(images=image[tf.newaxis], size=[image_size, image_size],
                                      half_pixel_centers=half_pixel_centers)[0]
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([image_size, image_size, 3])
    return image


def decode_and_resize(encoded: tf.Tensor, image_size: int, resize: str = "squash") -> tf.Tensor:
    return resize_image(decode(encoded), image_size, resize)
