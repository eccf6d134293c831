"""Command line: fetch the project's public assets ahead of time (the library: :mod:`summit_tf.assets`).

    python -m summit_tf.download [--assets=inception_v1,inception_v1_labels]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from summit_tf.assets.download import ASSETS, AssetError, resolve
from summit_tf.cli import entry_point, run_command

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags
flags.DEFINE_string("assets", "", f"comma-separated asset names (default: all): {', '.join(ASSETS)}",
                    flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Fetch the assets named by ``--assets`` (comma-separated; default all) and print where they are.

    Returns the exit code: 2 for bad input, 1 when an asset cannot be fetched.
    """
    def body() -> int:
        names = [n for n in FLAGS.assets.split(",") if n] if FLAGS.assets else list(ASSETS)
        unknown = [n for n in names if n not in ASSETS]
        if unknown:
            raise ValueError(f"unknown asset(s) {unknown}; known assets: {', '.join(ASSETS)}")
        for name in names:
            try:
                print(f"{name}\t{resolve(name)}")
            except AssetError as err:  # the input was fine; the network or the file was not
                print(f"error: {err}", file=sys.stderr)
                return 1
        return 0

    return run_command(FLAGS, argv, __doc__ or "", body)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
