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

from summit_tf.aggregation.merge import MergeError, merge
from summit_tf.cli import fail, parse, quiet_tensorflow

FLAGS = flags.FlagValues()
flags.DEFINE_string("out", None, "merged aggregates file (.h5)", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "replace an existing output", flag_values=FLAGS)



def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first); returns the exit code."""
    parsed = parse(FLAGS, argv, __doc__ or "", positional=True)
    if isinstance(parsed, int):
        return parsed
    if not FLAGS.out:
        return fail("--out is required")
    if not parsed:
        return fail("no input files: python -m summit_tf.merge --out=all.h5 shard0.h5 shard1.h5 ...")
    out = Path(FLAGS.out)
    if out.exists() and not FLAGS.overwrite:
        return fail(f"output {out} exists; pass --overwrite to replace it")
    try:
        with merge(parsed, out) as merged:
            print(f"wrote {out}: {len(parsed)} inputs, {merged.num_images} images in {merged.classes.size} "
                  f"classes, {merged.num_skipped} skipped", file=sys.stderr)
    except (MergeError, ValueError, FileNotFoundError, OSError) as e:
        return fail(str(e))
    return 0


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``summit-merge``)."""
    quiet_tensorflow()
    sys.exit(main(sys.argv if argv is None else argv))


if __name__ == "__main__":
    run()
