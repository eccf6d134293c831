"""The README's Python blocks run as written (in a scratch folder), so the documented API cannot rot."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_python_blocks_run(shared, tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert blocks, "the README lost its Python API section"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    channels, edges = (int(n) for n in re.search(r"(\d+) channels, (\d+) edges", out).groups())
    assert channels > 9 and edges > 0
    assert (tmp_path / "runs" / "api" / "tench.png").stat().st_size > 10_000
    assert not os.path.exists(tmp_path / "runs" / "api" / "aggregates.h5.ckpt.h5")
