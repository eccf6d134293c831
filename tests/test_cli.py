"""The command-line entry path keeps TensorFlow's C++ start-up records off stderr (they are printed while
TF's libraries load, before TF_CPP_MIN_LOG_LEVEL applies), on any CPU: the records are simulated here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from summit_tf.cli import drop_native_logs, filter_import_logs

PREINIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
INFO = "I0000 00:00:1796466463.384921    6434 port.cc:153] oneDNN custom operations are on.\n"
INFO_2_LINES = ("I0000 00:00:1796466463.443678    6434 cpu_feature_guard.cc:227] This TensorFlow binary is "
                "optimized.\nTo enable the following instructions: AVX2 AVX512F, rebuild TensorFlow.\n")
WARNING = "W0102 15:04:05.123456   77 loader.cc:9] a warning\n"
ERROR = "E0000 00:00:1796466463.5    6434 cuda_executor.cc:1] failed call to cuInit\n"
OLD_INFO = "2026-01-30 22:44:42.456316: I tensorflow/core/util/port.cc:153] oneDNN ops are on.\n"
FATAL = "F0000 00:00:1796466463.6    6434 x.cc:2] fatal\n"
PLAIN = "a line of Python output\n"


def test_drop_native_logs_by_level():
    text = PLAIN + PREINIT + INFO + INFO_2_LINES + WARNING + OLD_INFO + ERROR + FATAL
    assert drop_native_logs(text, 0) == text
    assert drop_native_logs(text, 1) == PLAIN + WARNING + ERROR + FATAL
    assert drop_native_logs(text, 2) == PLAIN + ERROR + FATAL
    assert drop_native_logs(text, 3) == PLAIN + FATAL
    assert drop_native_logs(PLAIN + PLAIN, 3) == PLAIN + PLAIN
    assert drop_native_logs("", 1) == ""
    # a line after a record continues it (absl prints a multi-line message as one record)
    assert drop_native_logs(WARNING + PLAIN + INFO + PLAIN, 1) == WARNING + PLAIN


NOISY = """
import os, sys
os.write(2, {noise!r})
print("from Python", file=sys.stderr)
VALUE = 42
{tail}
"""


def _module(tmp_path, monkeypatch, name: str, tail: str = "") -> None:
    noise = (PREINIT + INFO + INFO_2_LINES + WARNING).encode()
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(NOISY.format(noise=noise, tail=tail)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_filter_import_logs_keeps_everything_but_the_records_below_the_level(tmp_path, monkeypatch, capfd):
    _module(tmp_path, monkeypatch, "noisy_native")
    filter_import_logs("noisy_native", 1)
    filter_import_logs("noisy_native", 1)  # idempotent: one filter
    import noisy_native

    assert noisy_native.VALUE == 42
    assert type(noisy_native.__loader__).__name__ == "SourceFileLoader"  # its real loader
    assert "noisy_native" not in repr(sys.meta_path)
    assert capfd.readouterr().err == "from Python\n" + WARNING  # Python text is never held back


def test_filter_import_logs_writes_everything_back_when_the_import_fails(tmp_path, monkeypatch, capfd):
    _module(tmp_path, monkeypatch, "broken_native", tail="raise ImportError('no library')")
    filter_import_logs("broken_native", 3)
    with pytest.raises(ImportError, match="no library"):
        import broken_native  # noqa: F401
    assert capfd.readouterr().err == "from Python\n" + PREINIT + INFO + INFO_2_LINES + WARNING


HANDLER_AT_IMPORT = """
import logging, sys
from summit_tf.cli import filter_import_logs
filter_import_logs("noisy_handler", 1)
import noisy_handler
logging.getLogger("noisy_handler").warning("after the import")
"""


def test_filter_import_logs_leaves_handlers_made_meanwhile_on_stderr(tmp_path):
    """A module that makes a logging handler on sys.stderr while imported (as TensorFlow does) can log after
    the import: its handler does not keep the import's stand-in for stderr, closed by then."""
    tail = "import logging\nlogging.getLogger('noisy_handler').addHandler(logging.StreamHandler(sys.stderr))"
    module = NOISY.format(noise=WARNING.encode(), tail=tail)
    (tmp_path / "noisy_handler.py").write_text(textwrap.dedent(module))
    paths = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run([sys.executable, "-c", HANDLER_AT_IMPORT], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "from Python\n" + WARNING + "after the import\n", done.stderr


# Stands in front of the real TensorFlow: C++-style start-up records on fd 2, a line of Python text, then
# the real package.
FAKE_TF = f"""
import os, sys
os.write(2, {(PREINIT + INFO).encode()!r})
print("from Python", file=sys.stderr)
sys.path.remove(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
del sys.modules["tensorflow"]
import tensorflow
"""


def test_python_m_tools_are_quiet_unless_the_user_asks(tmp_path):
    """``python -m`` a tool that imports TF at its top, with a bad flag: by default no INFO record and no
    absl notice reaches stderr (whatever this machine's TF prints), Python's text does, the error is last;
    ``TF_CPP_MIN_LOG_LEVEL=0`` (the user's choice) shows the records."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TF)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "summit_tf.examples", "--pth=x"]
    quiet = subprocess.run(command, capture_output=True, text=True, env=env)
    assert quiet.returncode == 2
    lines = quiet.stderr.splitlines()
    assert lines[0] == "from Python" and lines[-1] == "error: Unknown command line flag 'pth'", quiet.stderr
    assert not [line for line in lines if re.match(r"I\d{4} |.*absl::InitializeLog", line)], quiet.stderr
    loud = subprocess.run(command, capture_output=True, text=True, env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.returncode == 2
    assert loud.stderr.startswith(PREINIT + INFO + "from Python\n")
    assert loud.stderr.splitlines()[-1].startswith("error: ")


LOGS_AFTER_PARSE = """
import logging
from absl import flags
from summit_tf.cli import log_to_stderr, parse
fv = flags.FlagValues()
flags.DEFINE_integer("n", 3, "a number", flag_values=fv)
for argv in (["x", "--n=4"], ["x"]):
    parse(fv, argv, "usage")
    log_to_stderr()
    logging.getLogger("tool").info("n=%d", fv.n)
"""


def test_parse_leaves_logging_to_log_to_stderr():
    """Parsing (twice: back to the defaults) configures no logging, so the tool's INFO records show."""
    done = subprocess.run([sys.executable, "-c", LOGS_AFTER_PARSE], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "I tool: n=4\nI tool: n=3\n", done.stderr
