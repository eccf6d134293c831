"""Command line: write the InceptionV1 structural fixture (:mod:`synthetic.inception_v1`) into a folder.

    python -m synthetic --out=DIR [--seed=0]     # then --model=inception_v1:DIR/InceptionV1.pb
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from absl import flags

from summit_tf.cli import entry_point, require, run_command
from synthetic.inception_v1 import write_fixture

FLAGS = flags.FlagValues()  # private: importing never touches absl's global flags
flags.DEFINE_string("out", "", "folder to write InceptionV1.pb and its label file into", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the random weights and labels", flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Write the fixture into ``--out`` and print the two paths; 0 on success, 2 for bad input."""
    def body() -> None:
        require(FLAGS, "out")
        try:
            for path in write_fixture(Path(FLAGS.out), seed=FLAGS.seed):
                print(path)
        except OSError as err:
            raise ValueError(str(err)) from None

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)


if __name__ == "__main__":
    entry_point(main)()
