"""``load(spec)``: one spec string -> a deterministic, streaming batch pipeline of images in [0, 1].

The record stream of a source is: all records in a fixed order, filtered (classes, first N per class,
first M), then sharded (every ``num_shards``-th record, or whole files for TFRecords when no stateful
filter is set and there are enough files). ``index`` is a record's position in that stream, given before
decoding, so an image that fails to decode leaves a gap; ``skip_records`` drops the first records of the
stream without decoding them (resuming a run). ``num_records`` is the length of the whole stream
(``skip_records`` not subtracted) where it is known without reading the data.

``data_service="grpc://HOST:PORT"`` runs the decoding on the workers of a ``tf.data`` service (CPU
machines decoding for a GPU machine) with dynamic sharding: every record once, batches in any order. So
it takes ``folder:``/``labels:`` data, whose record numbers are a column fixed before reading (a
TFRecord stream is numbered as it is read, which splits across workers would not do), and no
``skip_records`` (a resume needs ordered batches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from summit_tf import imagenet
from summit_tf.data import filters, listing, tfds_source, tfrecords
from summit_tf.data.preprocess import check_ratio, check_resize, decode, resize_image

SPEC_HELP = "tfrecord:GLOB | folder:DIR | labels:FILE | tfds:NAME[/SPLIT]"


@dataclass
class ImageSource:
    """A loaded data spec.

    ``dataset`` yields ``{"image": float32 [B, S, S, 3] in [0, 1], "label": int32 [B] (0..999),
    "index": int64 [B]}``. ``num_records`` counts the filtered, sharded stream when known cheaply
    (folder, labels, unfiltered TFDS), else None; images skipped as corrupt are
    ``num_records - skip_records - images seen``, and they show as gaps in ``index``. ``classes`` lists the
    class ids present when known without reading the images.
    """

    spec: str
    dataset: tf.data.Dataset
    num_records: int | None
    classes: np.ndarray | None


def _check_args(image_size: int, batch_size: int, num_shards: int, shard_index: int, skip_records: int,
                max_images: int | None, max_images_per_class: int | None,
                classes: Sequence[int] | None) -> list[int] | None:
    def positive(name: str, value: int | None) -> None:
        if value is not None and (not isinstance(value, int | np.integer) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    for name, value in (("image_size", image_size), ("batch_size", batch_size), ("num_shards", num_shards),
                        ("max_images", max_images), ("max_images_per_class", max_images_per_class)):
        positive(name, value)
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in 0..{num_shards - 1} for num_shards={num_shards}, "
                         f"got {shard_index}")
    if skip_records < 0:
        raise ValueError(f"skip_records must be >= 0, got {skip_records}")
    if classes is None:
        return None
    wanted = sorted({int(c) for c in classes})
    if not wanted or wanted[0] < 0 or wanted[-1] >= imagenet.NUM_CLASSES:
        raise ValueError(f"classes must be a non-empty list of class ids in 0..999, got {list(classes)!r}")
    return wanted


def _decoded_batches(records: tf.data.Dataset, *, from_file: bool, skip_records: int, image_size: int,
                     resize: str, half_pixel_centers: bool, batch_size: int, max_ratio: int,
                     data_service: str | None) -> tf.data.Dataset:
    """records ``{"encoded" or "path", "label"[, "index"]}`` -> indexed, skipped, decoded, batched."""
    if "index" in records.element_spec:
        ds = records.map(lambda record: (record["index"], record)).skip(skip_records)
    else:
        ds = records.enumerate().skip(skip_records)

    def prepare(index: tf.Tensor, record: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        encoded = tf.io.read_file(record["path"]) if from_file else record["encoded"]
        return {"image": resize_image(decode(encoded, image_size, max_ratio), image_size, resize,
                                      half_pixel_centers),
                "label": tf.cast(record["label"], tf.int32), "index": tf.cast(index, tf.int64)}

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # A corrupt or unreadable image raises inside `prepare`; dropping it leaves a gap in `index`.
    ds = ds.ignore_errors()
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)
    if data_service is None:
        return ds
    return ds.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC, service=data_service))


def _listed(kind: str, arg: str, wanted: list[int] | None, max_per_class: int | None, max_images: int | None,
            num_shards: int, shard_index: int) -> tuple[tf.data.Dataset, int, np.ndarray]:
    paths, labels = listing.list_folder(arg) if kind == "folder" else listing.read_labels_file(arg)
    positions = listing.select(labels, wanted, max_per_class, max_images)[shard_index::num_shards]
    if not len(positions):
        raise ValueError(f"{kind}:{arg}: no images left after the class/count filters and sharding")
    paths, labels = paths[positions], labels[positions]
    records = tf.data.Dataset.from_tensor_slices({"path": paths.astype(str), "label": labels,
                                                  "index": np.arange(len(positions), dtype=np.int64)})
    return records, len(positions), np.unique(labels)


def _tfrecord(pattern: str, wanted: list[int] | None, max_per_class: int | None, max_images: int | None,
              num_shards: int, shard_index: int) -> tf.data.Dataset:
    files = tfrecords.list_files(pattern)
    stateful = max_per_class is not None or max_images is not None
    by_file = num_shards > 1 and not stateful and len(files) >= num_shards
    if by_file:
        files = files[shard_index::num_shards]
    records = tfrecords.read_records(files).map(tfrecords.parser(), num_parallel_calls=tf.data.AUTOTUNE,
                                                deterministic=True)
    records = filters.apply(records, wanted, max_per_class, max_images)
    return records if by_file or num_shards == 1 else records.shard(num_shards, shard_index)


def _tfds(arg: str, wanted: list[int] | None, max_per_class: int | None, max_images: int | None,
          num_shards: int, shard_index: int) -> tuple[tf.data.Dataset, int | None]:
    records, total = tfds_source.records(arg)
    records = filters.apply(records, wanted, max_per_class, max_images).shard(num_shards, shard_index)
    unfiltered = wanted is None and max_per_class is None and max_images is None
    count = math.ceil((total - shard_index) / num_shards) if unfiltered else None
    return records, count


def _split(spec: str) -> tuple[str, str]:
    kind, sep, arg = spec.partition(":")
    if not sep or not arg or kind not in ("tfrecord", "folder", "labels", "tfds"):
        raise ValueError(f"unknown data spec {spec!r}; expected one of: {SPEC_HELP}")
    return kind, arg


def list_classes(spec: str) -> np.ndarray | None:
    """The sorted class ids of ``spec``'s images where the file list says so without reading any image
    (``folder:``, ``labels:``); None for ``tfrecord:`` and ``tfds:``, whose labels are known only by reading
    every record (for ImageNet train as much I/O as a whole aggregation pass)."""
    kind, arg = _split(spec)
    if kind == "folder":
        return np.unique(listing.list_folder(arg)[1])
    if kind == "labels":
        return np.unique(listing.read_labels_file(arg)[1])
    return None


def load(spec: str, *, image_size: int, resize: str = "squash", half_pixel_centers: bool = True,
         batch_size: int = 32, num_shards: int = 1, shard_index: int = 0, skip_records: int = 0,
         max_images: int | None = None, max_images_per_class: int | None = None,
         classes: Sequence[int] | None = None, max_jpeg_ratio: int = 1,
         data_service: str | None = None) -> ImageSource:
    """The batch pipeline for ``tfrecord:GLOB | folder:DIR | labels:FILE | tfds:NAME[/SPLIT]``
    (``half_pixel_centers=False``: TF1's resize grid; ``max_jpeg_ratio`` > 1: large JPEGs decoded
    downscaled in the DCT domain; see :mod:`summit_tf.data.preprocess`; ``data_service``: decoded by a
    ``tf.data`` service, see above)."""
    check_resize(resize)
    check_ratio(max_jpeg_ratio)
    wanted = _check_args(image_size, batch_size, num_shards, shard_index, skip_records, max_images,
                         max_images_per_class, classes)
    kind, arg = _split(spec)
    from_file = kind in ("folder", "labels")
    if data_service is not None and not from_file:
        raise ValueError(f"data_service reads folder: and labels: data only (their records are numbered "
                         f"before reading), got {spec!r}")
    if data_service is not None and skip_records:
        raise ValueError("data_service delivers batches in any order: it cannot resume (skip_records)")
    num_records: int | None = None
    present: np.ndarray | None = None
    if from_file:
        records, num_records, present = _listed(kind, arg, wanted, max_images_per_class, max_images,
                                                num_shards, shard_index)
    elif kind == "tfrecord":
        records = _tfrecord(arg, wanted, max_images_per_class, max_images, num_shards, shard_index)
    else:
        records, num_records = _tfds(arg, wanted, max_images_per_class, max_images, num_shards,
                                           shard_index)
    dataset = _decoded_batches(records, from_file=from_file, skip_records=skip_records,
                               image_size=image_size, resize=resize, half_pixel_centers=half_pixel_centers,
                               batch_size=batch_size, max_ratio=max_jpeg_ratio, data_service=data_service)
    return ImageSource(spec=spec, dataset=dataset, num_records=num_records, classes=present)
