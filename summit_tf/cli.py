"""What every summit-tf command line shares: absl flags on a private FlagValues, errors as exit code 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from absl import flags

HELP_ARGS = ("-h", "--help", "-help", "--helpfull")


def parse(fv: flags.FlagValues, argv: Sequence[str], usage: str,
          positional: bool = False) -> list[str] | int:
    """Parse ``argv`` (program name first) into ``fv`` from the defaults.

    Returns the positional arguments (allowed only with ``positional``), or an exit code: 0 after
    ``--help``, 2 after a bad flag or a stray argument (one ``error:`` line, no traceback). Resetting
    first makes repeated in-process calls independent.
    """
    if any(a in HELP_ARGS for a in argv[1:]):
        print(f"{usage}\n\n{fv.get_help()}")
        return 0
    fv.unparse_flags()
    try:
        rest = fv(list(argv))[1:]
    except flags.Error as e:
        return fail(str(e))
    if rest and not positional:
        return fail(f"unexpected arguments: {' '.join(rest)}")
    return rest


def fail(message: str) -> int:
    """Report a user error on one stderr line; the exit code for bad input."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def log_to_stderr() -> None:
    """Show the library's INFO and WARNING records on stderr, as absl's ``app.run`` did for the tools that
    used it; a no-op where the host program has already configured logging. Call it after :func:`parse`, so
    that a bad flag still gives exactly one stderr line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(name)s: %(message)s", stream=sys.stderr)
