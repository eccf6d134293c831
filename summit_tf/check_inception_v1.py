"""Command line: check a downloaded copy of Lucid's InceptionV1.pb against TF's own import of it.

    python -m summit_tf.check_inception_v1 [--path=InceptionV1.pb] [--batch=2]

Every layer, link input and the logits of :func:`summit_tf.models.inception_v1.load` are compared with
``tf.graph_util.import_graph_def`` on random images (a file with unexpected ops shows here). Exit code 0
when they match, 1 when they do not, 2 for bad input.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from summit_tf.cli import entry_point, run_command

FLAGS = flags.FlagValues()  # the check's flags; private: importing never touches absl's global flags
flags.DEFINE_string("path", "", "InceptionV1.pb (default: assets folder, cache or download)",
                    flag_values=FLAGS)
flags.DEFINE_integer("batch", 2, "random images to compare on", lower_bound=1, flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Check a file (module docstring); returns 0 when it matches, 1 when it does not, 2 for bad input."""
    def body() -> int:
        from summit_tf.models.inception_v1 import check_against_import  # imports TensorFlow: not for --help

        try:
            errors = check_against_import(FLAGS.path or None, FLAGS.batch)
        except OSError as err:  # unreadable file or failed download (AssetError is a FileNotFoundError)
            raise FileNotFoundError(str(err)) from None
        for key, error in errors.items():
            print(f"{key}\t{error:.2e}")
        worst = max(errors, key=errors.get)
        ok = errors[worst] < 1e-4
        print(f"{'OK' if ok else 'MISMATCH'}: largest relative difference {errors[worst]:.2e} ({worst})")
        return 0 if ok else 1

    return run_command(FLAGS, argv, __doc__ or "", body)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
