"""Write a ``folder:`` or ``labels:`` image set as ImageNet TFRecords (``build_imagenet_data.py`` layout;
command line: ``python -m summit_tf.data.build_tfrecords``).

Shard ``j`` is ``PREFIX-0000j-of-0000N`` and holds the ``j``-th contiguous slice of the list, so reading the
shards in name order gives the list's order back. Every image is decoded once to check it and read its
size (unreadable ones are skipped and named); JPEGs are stored byte for byte, other formats re-encoded as
JPEG (quality 95). Each shard is written to a temporary file and renamed; existing shards are kept, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from summit_tf import atomic
from summit_tf.data import listing, tfrecords
from summit_tf.progress import Progress

JPEG_QUALITY = 95


def shard_path(prefix: str, index: int, count: int) -> str:
    return f"{prefix}-{index:05d}-of-{count:05d}"


def _checked(paths: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """(position, bytes, label, height, width) of the images that decode; broken ones are dropped."""

    def load(position, path, label):
        contents = tf.io.read_file(path)
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        encoded = tf.cond(tf.io.is_jpeg(contents), lambda: contents,
                          lambda: tf.io.encode_jpeg(image, quality=JPEG_QUALITY))
        shape = tf.shape(image)
        return position, encoded, label, shape[0], shape[1]

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths.astype(str), labels))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return ds.prefetch(tf.data.AUTOTUNE)


def write_shard(path: str, paths: np.ndarray, labels: np.ndarray, progress: Progress) -> list[str]:
    """Write one shard atomically; return the files that could not be decoded."""
    seen = np.zeros(len(paths), dtype=bool)
    with atomic.writing(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for position, encoded, label, height, width in _checked(paths, labels).as_numpy_iterator():
            seen[position] = True
            writer.write(tfrecords.make_example(encoded, int(label), int(height), int(width),
                                                os.path.basename(paths[position])))
            progress.update()
    progress.update(int((~seen).sum()))
    return [str(p) for p in paths[~seen]]


def build(spec: str, prefix: str, shards: int, max_images_per_class: int | None = None,
          max_images: int | None = None) -> tuple[list[str], list[str]]:
    """Write all shards; return ``(shard paths, skipped image files)``."""
    kind, _, arg = spec.partition(":")
    if kind not in ("folder", "labels") or not arg:
        raise ValueError(f"data must be folder:DIR or labels:FILE, got {spec!r}")
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    paths, labels = listing.list_folder(arg) if kind == "folder" else listing.read_labels_file(arg)
    keep = listing.select(labels, None, max_images_per_class, max_images)
    paths, labels = paths[keep], labels[keep]
    if shards > len(paths):
        raise ValueError(f"shards={shards} is more than the {len(paths)} images")
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    progress = Progress("build_tfrecords", total=len(paths))
    outputs, skipped = [], []
    for index, part in enumerate(np.array_split(np.arange(len(paths)), shards)):
        path = shard_path(prefix, index, shards)
        outputs.append(path)
        if os.path.exists(path):
            progress.update(len(part))
            continue
        skipped += write_shard(path, paths[part], labels[part], progress)
    progress.finish()
    return outputs, skipped
