"""Export the viewer and one run as a static site that any web server can host.

``python -m summit_tf.export_site --run_dir=DIR --out=SITE``

The export itself is :mod:`summit_tf.viewer.static_site`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from summit_tf.cli import entry_point, require, run_command
from summit_tf.viewer.static_site import export_site

FLAGS = flags.FlagValues()
flags.DEFINE_string("run_dir", None, "run directory (classes.json, ag/, feature-vis/)", flag_values=FLAGS)
flags.DEFINE_string("out", None, "Folder for the static site (created, or replacing an earlier export).",
                    flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first); returns the exit code."""
    def body() -> None:
        require(FLAGS, "run_dir", "out")
        try:
            count = export_site(FLAGS.run_dir, FLAGS.out)
        except (FileNotFoundError, FileExistsError):
            raise
        except OSError as exc:
            raise ValueError(f"cannot write {FLAGS.out}: {exc}") from None
        print(f"wrote {count} files to {FLAGS.out}; serve it with any static web server, "
              f"e.g. python -m http.server --directory {FLAGS.out}", file=sys.stderr)

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
