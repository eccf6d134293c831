"""Export the viewer and one run as a static site that any web server can host.

``python -m summit_tf.export_site --run_dir=DIR --out=SITE``

The export itself is :mod:`summit_tf.viewer.static_site`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from summit_tf.cli import fail, parse
from summit_tf.viewer.static_site import export_site

FLAGS = flags.FlagValues()
flags.DEFINE_string("run_dir", None, "run directory (classes.json, ag/, feature-vis/)", flag_values=FLAGS)
flags.DEFINE_string("out", None, "Folder for the static site (created, or replacing an earlier export).",
                    flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first); returns the exit code."""
    parsed = parse(FLAGS, argv, __doc__ or "")
    if isinstance(parsed, int):
        return parsed
    if not FLAGS.run_dir or not FLAGS.out:
        return fail("--run_dir and --out are required")
    try:
        count = export_site(FLAGS.run_dir, FLAGS.out)
    except (FileNotFoundError, FileExistsError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot write {FLAGS.out}: {exc}")
    print(f"wrote {count} files to {FLAGS.out}; serve it with any static web server, "
          f"e.g. python -m http.server --directory {FLAGS.out}", file=sys.stderr)
    return 0


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(main(sys.argv if argv is None else argv))


if __name__ == "__main__":
    run()
