"""DCT-domain JPEG downscaling picks the largest ratio whose image still covers the target size."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from summit_tf.data.preprocess import decode


def encoded(height: int, width: int, png: bool = False) -> tf.Tensor:
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels) if png else tf.io.encode_jpeg(pixels, quality=95)


@pytest.mark.parametrize("height, width, size, max_ratio, expected", [
    (900, 1000, 224, 4, (225, 250)),   # shorter side 900 >= 4 x 224
    (895, 1000, 224, 4, (448, 500)),   # 895 < 896: ratio 2
    (447, 1000, 224, 8, (447, 1000)),  # 447 < 448: full size
    (900, 1000, 224, 2, (450, 500)),   # capped at max_ratio
    (900, 1000, 100, 8, (113, 125)),   # ratio 8 (libjpeg rounds up)
])
def test_ratio_choice(height, width, size, max_ratio, expected):
    assert tuple(decode(encoded(height, width), size, max_ratio).shape[:2]) == expected


def test_full_decode_and_non_jpeg_unchanged():
    jpeg = encoded(900, 1000)
    full = tf.io.decode_image(jpeg, channels=3).numpy()
    assert np.array_equal(decode(jpeg).numpy(), full)
    assert np.array_equal(decode(jpeg, 224, 1).numpy(), full)
    png = encoded(900, 1000, png=True)
    assert np.array_equal(decode(png, 100, 8).numpy(), tf.io.decode_image(png, channels=3).numpy())
    with pytest.raises(ValueError, match="max_ratio"):
        decode(jpeg, 224, 3)
    with pytest.raises(ValueError, match="image_size"):
        decode(jpeg, None, 2)
