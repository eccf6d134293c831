"""Decode one encoded image and bring it to the model's square input size, in [0, 1].

SUMMIT resized the whole image to the input size without keeping the aspect ratio (``squash``); the
Inception/slim evaluation recipe crops the central 87.5 % first (``center_crop``). Both use bilinear
interpolation without antialiasing. TF2 samples at half-pixel centres; TF1's ``resize_images``, which the
original SUMMIT ran, sampled output pixel ``i`` at input coordinate ``i * in / out`` (``half_pixel_centers=
False``: the image shifts by up to half an input pixel). Scaling into the model's own value range is the
model's job.
"""

from __future__ import annotations

import tensorflow as tf

from summit_tf.vocabulary import RESIZE_MODES

CENTER_CROP_FRACTION = 0.875


def check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize {resize!r}; expected one of: {', '.join(RESIZE_MODES)}")
    return resize


def decode(encoded: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes -> uint8 ``[H, W, 3]`` (grey and RGBA become RGB); raises on corrupt data."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
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
