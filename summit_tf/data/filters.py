"""Record filters for streamed sources (TFRecords, TFDS), applied before any image is decoded.

Each element is a dict with at least ``label`` (int32, -1 = no class). The per-class cap keeps the first
``max_per_class`` records of each class in stream order with a ``scan`` over 1,000 counters; when the
kept classes are listed, the stream stops as soon as every one of them is full.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from summit_tf import imagenet


def _class_mask(classes: Sequence[int]) -> tf.Tensor:
    mask = np.zeros(imagenet.NUM_CLASSES, dtype=bool)
    mask[np.asarray(classes, dtype=np.int64)] = True
    return tf.constant(mask)


def _cap_per_class(ds: tf.data.Dataset, cap: int, classes: Sequence[int] | None) -> tf.data.Dataset:
    wanted = _class_mask(classes) if classes is not None else None

    def step(counts, element):
        label = tf.cast(element["label"], tf.int64)
        keep = counts[label] < cap
        counts = tf.tensor_scatter_nd_add(counts, [[label]], [tf.cast(keep, tf.int64)])
        all_full = tf.constant(False) if wanted is None else tf.reduce_all((counts >= cap) | ~wanted)
        return counts, (element, keep, all_full)

    ds = ds.scan(tf.zeros([imagenet.NUM_CLASSES], tf.int64), step)
    if wanted is not None:
        # Stop after the record that fills the last wanted class (its own all_full is True, so keep it).
        ds = ds.scan(tf.constant(False), lambda done_before, item: (item[2], (item, done_before)))
        ds = ds.take_while(lambda item, done_before: ~done_before).map(lambda item, done_before: item)
    return ds.filter(lambda element, keep, all_full: keep).map(lambda element, keep, all_full: element)


def apply(ds: tf.data.Dataset, classes: Sequence[int] | None, max_per_class: int | None,
          max_images: int | None) -> tf.data.Dataset:
    """Drop records without a class, then keep the listed classes, the first N per class, the first M."""
    ds = ds.filter(lambda e: e["label"] >= 0)
    if classes is not None:
        mask = _class_mask(classes)
        ds = ds.filter(lambda e: tf.gather(mask, e["label"]))
    if max_per_class is not None:
        ds = _cap_per_class(ds, max_per_class, classes)
    if max_images is not None:
        ds = ds.take(max_images)
    return ds
