"""Command line: write a ``folder:`` or ``labels:`` image set as ImageNet TFRecords (the library:
:mod:`summit_tf.data.tfrecord_writer`).

    python -m summit_tf.data.build_tfrecords --data=folder:DIR --out=PREFIX --shards=N
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from summit_tf.cli import entry_point, run_command
from summit_tf.data.tfrecord_writer import build, shard_path

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags
flags.DEFINE_string("data", None, "folder:DIR or labels:FILE", flag_values=FLAGS)
flags.DEFINE_string("out", None, "output prefix; shards are PREFIX-00000-of-0000N", flag_values=FLAGS)
flags.DEFINE_integer("shards", 1, "number of output files", flag_values=FLAGS)
flags.DEFINE_integer("max_images_per_class", None, "keep the first N images of each class", flag_values=FLAGS)
flags.DEFINE_integer("max_images", None, "keep the first N images (after the per-class cap)",
                     flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the command line on ``argv`` (program name first); returns the exit code (2: bad input)."""
    def body() -> None:
        if not FLAGS.data or not FLAGS.out:
            raise ValueError("--data=folder:DIR|labels:FILE and --out=PREFIX are required")
        outputs, skipped = build(FLAGS.data, FLAGS.out, FLAGS.shards, FLAGS.max_images_per_class,
                                 FLAGS.max_images)
        for path in skipped:
            print(f"skipped (cannot decode): {path}", file=sys.stderr)
        print(f"wrote {len(outputs)} shard(s) {shard_path(FLAGS.out, 0, FLAGS.shards)} ...; "
              f"{len(skipped)} image(s) skipped")

    return run_command(FLAGS, argv, __doc__ or "", body)


run = entry_point(main)  # ``python -m``


if __name__ == "__main__":
    run()
