"""ImageNet TFRecords (``build_imagenet_data.py`` format): the record layout, a tolerant reader, a scanner.

Records carry ``image/encoded`` (JPEG), ``image/class/label`` (1..1000, 0 = background),
``image/class/synset``, ``image/class/text``, ``image/height``, ``image/width``, ``image/filename`` and more.
Our class index is the synset's position in the sorted synset list when the synset is present, else
``label - 1``; records without a class (background) are not part of the stream.

A truncated or corrupt file must not end a run over 1,024 files: each file is read on its own, read
errors end only that file, and a file whose complete records do not add up to its size prints a warning
with the number of records read and a lower bound of those lost (what was cut off a truncated file is
unknowable). :func:`scan` counts the complete records exactly (walking the record headers, without
reading the images) for a report of what was lost.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

import tensorflow as tf

from summit_tf import imagenet

# A record is: uint64 length, uint32 masked CRC of the length, data, uint32 masked CRC of the data.
RECORD_OVERHEAD = 16
READ_BUFFER_BYTES = 8 << 20

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/class/synset": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def list_files(pattern: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"tfrecord:{pattern}: no files match (expected tfrecord:GLOB, e.g. "
                         f"tfrecord:/data/imagenet/train-*)")
    return files


def _synset_table() -> tf.lookup.StaticHashTable:
    synsets = imagenet.synsets()
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(synsets), tf.range(len(synsets), dtype=tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=-1)


def parser():
    """A function serialized record -> ``{"encoded", "label"}`` (label -1 when the record has no class)."""
    table = _synset_table()

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        f = tf.io.parse_single_example(serialized, FEATURES)
        by_synset = table.lookup(f["image/class/synset"])
        label = tf.where(by_synset >= 0, by_synset, f["image/class/label"] - 1)
        label = tf.where((label >= 0) & (label < imagenet.NUM_CLASSES), label, -1)
        return {"encoded": f["image/encoded"], "label": tf.cast(label, tf.int32)}

    return parse


def _warn_if_short(path: tf.Tensor, size: tf.Tensor, count: tf.Tensor, consumed: tf.Tensor) -> tf.Tensor:
    def warn() -> tf.Tensor:
        lost = size - consumed
        mean = tf.maximum(consumed // tf.maximum(count, 1), 1)
        tf.print("WARNING: TFRecord file", path, "ended early (truncated or corrupt) after", count,
                 "complete records;", lost, "bytes after them could not be read: at least",
                 (lost + mean - 1) // mean, "record(s) lost", output_stream=sys.stderr)
        return tf.constant(True)

    return tf.cond(consumed < size, warn, lambda: tf.constant(False))


def _read_one(path: tf.Tensor, size: tf.Tensor) -> tf.data.Dataset:
    """Records of one file; a read error ends this file only, and a short file prints a warning."""
    records = tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER_BYTES).ignore_errors()
    records = records.map(lambda r: (r, tf.constant(False)))
    stream = records.concatenate(tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(True))))

    def count(state, item):
        record, is_end = item
        n, consumed = state
        n = n + tf.cast(~is_end, tf.int64)
        consumed = consumed + tf.where(is_end, tf.constant(0, tf.int64),
                                       tf.cast(tf.strings.length(record), tf.int64) + RECORD_OVERHEAD)
        return (n, consumed), (record, is_end, n, consumed)

    stream = stream.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), count)

    def keep(record, is_end, n, consumed):
        # The end marker never passes; evaluating it prints the warning when the file came up short.
        return tf.cond(is_end, lambda: tf.logical_and(_warn_if_short(path, size, n, consumed), False),
                       lambda: tf.constant(True))

    stream = stream.filter(keep)
    return stream.map(lambda record, is_end, n, consumed: record)


def read_records(files: list[str]) -> tf.data.Dataset:
    """Serialized records of ``files`` in order, one file after the other."""
    sizes = [tf.io.gfile.stat(f).length for f in files]
    paths = tf.data.Dataset.from_tensor_slices((tf.constant(files), tf.constant(sizes, tf.int64)))
    return paths.flat_map(_read_one)


@dataclass(frozen=True)
class RecordFileInfo:
    """What :func:`scan` found in one file: complete records, and the bytes after the last complete one."""

    path: str
    records: int
    size: int
    valid_bytes: int

    @property
    def truncated(self) -> bool:
        return self.valid_bytes < self.size


def scan_file(path: str) -> RecordFileInfo:
    """Walk the record headers (seeking over the data): exact count of complete records."""
    size = tf.io.gfile.stat(path).length
    records = offset = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset + 12 <= size:
            f.seek(offset)
            (length,) = struct.unpack("<Q", f.read(8))
            end = offset + RECORD_OVERHEAD + length
            if end > size:
                break
            records += 1
            offset = end
    return RecordFileInfo(path, records, size, offset)


def scan(pattern: str) -> list[RecordFileInfo]:
    """Per-file complete-record counts for ``pattern``; ``truncated`` files lost their tail."""
    return [scan_file(f) for f in list_files(pattern)]


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values: list[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _floats(values: list[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def make_example(encoded: bytes, class_index: int, height: int, width: int, filename: str) -> bytes:
    """One serialized record in the ``build_imagenet_data.py`` layout (label = class index + 1)."""
    feature = {
        "image/height": _ints([height]),
        "image/width": _ints([width]),
        "image/colorspace": _bytes(b"RGB"),
        "image/channels": _ints([3]),
        "image/class/label": _ints([class_index + 1]),
        "image/class/synset": _bytes(imagenet.synsets()[class_index].encode()),
        "image/class/text": _bytes(imagenet.names()[class_index].encode()),
        "image/object/bbox/xmin": _floats([]),
        "image/object/bbox/xmax": _floats([]),
        "image/object/bbox/ymin": _floats([]),
        "image/object/bbox/ymax": _floats([]),
        "image/object/bbox/label": _ints([]),
        "image/format": _bytes(b"JPEG"),
        "image/filename": _bytes(filename.encode()),
        "image/encoded": _bytes(encoded),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
