"""Receptive fields: the input pixels that can change a unit, found from the gradient's footprint.

The footprint is the union over a few random images, so units that are dead on one image still show
their field.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from summit_tf.models.base import SummitModel

FIELD_REPEATS = 3
FIELD_CHUNK = 8  # positions per gradient batch (x FIELD_REPEATS images): bounded memory


def receptive_fields(model: SummitModel, layer: str, grid: tuple[int, int], positions: Sequence[int],
                     repeats: int = FIELD_REPEATS, seed: int = 0) -> dict[int, tuple[int, int, int, int]]:
    """Input boxes ``(top, bottom, left, right)`` (inclusive) seen by the units on the diagonal of a layer.

    Rows depend on the unit's row only and columns on its column only, so the unit ``(min(i, H - 1),
    min(i, W - 1))`` gives the rows of grid row ``i`` and the columns of grid column ``i`` at once. A unit
    whose gradient is zero on every random image (dead) gets the whole image.
    """
    size = model.input_size
    height, width = grid
    rng = np.random.default_rng(seed)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    wanted = sorted(set(int(p) for p in positions))
    for start in range(0, len(wanted), FIELD_CHUNK):
        chunk = np.repeat(wanted[start:start + FIELD_CHUNK], repeats)
        ys, xs = np.minimum(chunk, height - 1), np.minimum(chunk, width - 1)
        images = tf.constant(rng.uniform(0, 1, (len(chunk), size, size, 3)).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(images)
            acts = model.tensors(images, [layer])[layer]  # only what the layer depends on
            units = tf.gather_nd(acts, np.stack([np.arange(len(chunk)), ys, xs], axis=1))
            objective = tf.reduce_sum(units)
        touched = np.any(tape.gradient(objective, images).numpy() != 0, axis=-1)
        touched = touched.reshape(-1, repeats, size, size).any(axis=1)
        for i, mask in zip(wanted[start:start + FIELD_CHUNK], touched, strict=True):
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if not len(rows):
                boxes[i] = (0, size - 1, 0, size - 1)
            else:
                boxes[i] = (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))
    return boxes
