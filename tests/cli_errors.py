"""Shared by the command-line tests: bad input ends with exit code 2 and exactly one ``error:`` line."""

from __future__ import annotations

import os
import subprocess
import sys


def assert_one_error_line(stderr: str, contains: str = "") -> None:
    """``stderr`` is a single ``error: ...`` line (mentioning ``contains``) and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and contains in lines[0], stderr


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m module args...`` showing only TensorFlow's fatal C++ records, so that the tools' own output
    is checked whatever this machine's TF logs (the tools honour the level also for the records TF's libraries
    print while loading; their quiet default is tested in test_cli.py)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env)


def assert_module_exits_2(module: str, *args: str, contains: str = "") -> None:
    """``python -m module args...`` exits 2 with one ``error:`` line mentioning ``contains``."""
    bad = run_module(module, *args)
    assert bad.returncode == 2
    assert_one_error_line(bad.stderr, contains)


def run_main(module: str, *args: str) -> subprocess.CompletedProcess:
    """``module.main([module, *args])`` in this process, its stdout and stderr captured: the command line's
    own behaviour without a new interpreter (and TensorFlow import) per case."""
    import contextlib
    import importlib
    import io

    out, err = io.StringIO(), io.StringIO()
    main = importlib.import_module(module).main
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([module, *args])
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())
