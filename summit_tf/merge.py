"""Command line: sum aggregates files (shards, class splits) into one.

    python -m summit_tf.merge --out=all.h5 shard0.h5 shard1.h5 ...

Inputs that cannot be summed (see :mod:`summit_tf.aggregation.merge`) end with one ``error:`` line and
exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from summit_tf.aggregation.merge import merge
from summit_tf.cli import entry_point, require, run_command

FLAGS = flags.FlagValues()
flags.DEFINE_string("out", None, "merged aggregates file (.h5)", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "replace an existing output", flag_values=FLAGS)



def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first); returns the exit code."""
    def body(inputs: list[str]) -> None:
        require(FLAGS, "out")
        if not inputs:
            raise ValueError("no input files: python -m summit_tf.merge --out=all.h5 shard0.h5 shard1.h5 ...")
        out = Path(FLAGS.out)
        if out.exists() and not FLAGS.overwrite:
            raise FileExistsError(f"output {out} exists; pass --overwrite to replace it")
        try:
            with merge(inputs, out) as merged:
                print(f"wrote {out}: {len(inputs)} inputs, {merged.num_images} images in "
                      f"{merged.classes.size} classes, {merged.num_skipped} skipped", file=sys.stderr)
        except OSError as e:  # an unreadable input: still bad input (MergeError is a ValueError)
            raise FileNotFoundError(str(e)) from None

    return run_command(FLAGS, argv, __doc__ or "", body, positional=True, logs=False)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
