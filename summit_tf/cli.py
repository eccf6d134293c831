"""What every summit-tf command line shares: absl flags on a private FlagValues, errors as exit code 2, and
TensorFlow's C++ start-up notices kept off the terminal."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import NoReturn

from absl import flags

HELP_ARGS = ("-h", "--help", "-help", "--helpfull")

TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_TF_LOG_LEVEL = 1  # TF's C++ INFO records off; its warnings and errors still show

# absl's notice, printed once per library copy before its first record while logging is uninitialized.
_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# A C++ log record's first line: absl's format (TF 2.21) or tsl's older one.
_RECORD = re.compile(r"(?P<absl>[IWEF])\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] "
                     r"|\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+: (?P<tsl>[IWEF]) \S+:\d+\] ")
_SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL's scale: 0 info, 1 warning, 2 error, 3 fatal


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
    for name in fv:  # back to the defaults; not fv.unparse_flags(), which logs through the root logger and so
        fv[name].unparse()  # configures it (log_to_stderr then did nothing)
    try:
        rest = fv(list(argv))[1:]
    except flags.Error as e:
        return fail(str(e))
    if rest and not positional:
        return fail(f"unexpected arguments: {' '.join(rest)}")
    return rest


USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)  # bad input: one ``error:`` line, exit 2


def run_command(fv: flags.FlagValues, argv: Sequence[str], usage: str, body: Callable[..., int | None],
                positional: bool = False, logs: bool = True) -> int:
    """The one way a command line runs: parse ``argv`` into ``fv`` (see :func:`parse`), show the library's
    log records (``logs``), call ``body()`` (``body(arguments)`` with ``positional``) and map bad input
    (:data:`USER_ERRORS`, which library errors derive from) to one ``error:`` line and exit code 2.
    Returns ``body``'s exit code (None counts as 0)."""
    parsed = parse(fv, argv, usage, positional)
    if isinstance(parsed, int):
        return parsed
    if logs:
        log_to_stderr()
    try:
        code = body(parsed) if positional else body()
    except USER_ERRORS as e:
        return fail(str(e))
    return 0 if code is None else code


def require(fv: flags.FlagValues, *names: str) -> None:
    """``ValueError`` naming the first flag of ``names`` that has no value."""
    for name in names:
        if fv[name].value in (None, "", []):
            raise ValueError(f"--{name} is required")


def entry_point(main: Callable[[Sequence[str]], int]) -> Callable[[Sequence[str] | None], NoReturn]:
    """A console script / ``__main__`` runner for ``main(argv) -> exit code``: TensorFlow's start-up
    records quieted (:func:`quiet_tensorflow`), then ``sys.exit(main(argv))``."""

    def run(argv: Sequence[str] | None = None) -> NoReturn:
        quiet_tensorflow()
        sys.exit(main(sys.argv if argv is None else list(argv)))

    return run


def fail(message: str) -> int:
    """Report a user error on one stderr line; the exit code for bad input."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def log_to_stderr() -> None:
    """Show the library's INFO and WARNING records on stderr, as absl's ``app.run`` did for the tools that
    used it; a no-op where the host program has already configured logging. Call it after :func:`parse`, so
    that a bad flag still gives exactly one stderr line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(name)s: %(message)s", stream=sys.stderr)


def drop_native_logs(text: str, min_level: int) -> str:
    """``text`` without the C++ log records below ``min_level`` (``TF_CPP_MIN_LOG_LEVEL``'s scale).

    A record's continuation lines go with it (absl writes a multi-line message as one record), and absl's
    uninitialized-logging notice goes unless ``min_level`` is 0; any other text is kept, in order.
    """
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        record = _RECORD.match(line)
        if record:
            keep = _SEVERITIES.index(record.group("absl") or record.group("tsl")) >= min_level
        elif line.rstrip("\r\n") == _ABSL_PREINIT:
            keep = min_level == 0
        if keep:
            kept.append(line)
    return "".join(kept)


@contextmanager
def _stderr_without_native_logs(min_level: int) -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 and write it back filtered (all of it if the body
    raises). Python's ``sys.stderr``, if it is descriptor 2, writes to the real stream meanwhile, so Python
    text is never mistaken for a record's continuation."""
    python_stderr = sys.stderr
    python_stderr.flush()
    try:
        swap = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a StringIO-like object
        swap = False
    saved = os.dup(2)
    ok = False
    try:
        with tempfile.TemporaryFile() as captured, open(saved, "w", buffering=1, closefd=False,
                                                        errors="backslashreplace") as real:
            os.dup2(captured.fileno(), 2)
            if swap:
                sys.stderr = real
            try:
                yield
                ok = True
            finally:
                sys.stderr = python_stderr
                if swap:
                    _handlers_write_to(real, python_stderr)
                os.dup2(saved, 2)
                captured.seek(0)
                text = captured.read().decode(errors="replace")
                real.write(drop_native_logs(text, min_level) if ok else text)
    finally:
        os.close(saved)


def _handlers_write_to(old: object, new: object) -> None:
    """Logging handlers made on ``old`` (a stand-in for sys.stderr, about to be closed) write to ``new``:
    TensorFlow makes its logger's handler on sys.stderr while it is imported."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # placeholders have none
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


class _FilteredLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, min_level: int):
        self.loader, self.min_level = loader, min_level

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps its real loader
        with _stderr_without_native_logs(self.min_level):
            self.loader.exec_module(module)


class _FilteredImport(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, min_level: int):
        self.module, self.min_level = module, min_level

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)  # one import; the real finders locate the module
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader, self.min_level)
        return spec


def filter_import_logs(module: str, min_level: int) -> None:
    """Filter the C++ log records below ``min_level`` that the first import of the top-level ``module``
    writes to stderr, leaving all other output. TensorFlow needs this: its libraries log while they load
    (e.g. ``oneDNN custom operations are on``, once per library copy), before ``TF_CPP_MIN_LOG_LEVEL`` is
    applied. A no-op once ``module`` is imported or its filter is installed."""
    pending = any(isinstance(f, _FilteredImport) and f.module == module for f in sys.meta_path)
    if min_level > 0 and module not in sys.modules and not pending:
        sys.meta_path.insert(0, _FilteredImport(module, min_level))


def quiet_tensorflow() -> None:
    """For a command line, before anything imports TensorFlow: ``TF_CPP_MIN_LOG_LEVEL`` defaults to 1 (the
    user's value wins), and the records TF's libraries print while loading obey it too."""
    level = os.environ.setdefault(TF_LOG_LEVEL_ENV, str(DEFAULT_TF_LOG_LEVEL))
    filter_import_logs("tensorflow", int(level) if level.isdigit() else 0)
