"""The one atomic-write helper: complete files or none, readable by others, no temporaries left."""

import ast
import os
import stat
from pathlib import Path

import pytest

from summit_tf import atomic

ROOT = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_are_complete_readable_and_leave_no_temporaries(tmp_path):
    target = tmp_path / "new" / "folder" / "doc.json"
    assert atomic.write_json(target, {"a": [1, 2]}, indent=1) == target
    assert target.read_text() == '{\n "a": [\n  1,\n  2\n ]\n}'
    assert _mode(target) == 0o644
    atomic.write_text(target, "é")
    assert target.read_bytes() == "é".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["doc.json"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer broke"), atomic.writing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer broke")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_data_reaches_the_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic.write_bytes(tmp_path / "x", b"data")
    assert events == ["fsync", "replace"]


def test_graph_files_are_world_readable(tmp_path):
    from summit_tf.graph import viewer_json
    from summit_tf.graph.attribution import attribution_graph
    from synthetic import aggregates as synthetic

    agg = synthetic.from_counts({"l0": 2, "l1": 2}, {"l0": [[3, 1]], "l1": [[1, 3]]},
                                {"l1/conv": ("l0", "l1", 0, [[[2, 1], [0, 4]]])})
    path = viewer_json.write_ag(tmp_path, attribution_graph(agg, 0))
    assert _mode(Path(path)) == 0o644


def test_no_other_module_renames_files_into_place():
    """Every file writer goes through summit_tf.atomic; the two folder swaps (a downloaded archive's
    folder, an exported site) are the only other renames."""
    allowed = {"summit_tf/atomic.py": 2, "summit_tf/assets/download.py": 1,
               "summit_tf/viewer/static_site.py": 2}
    found = {}
    for folder in ("summit_tf", "feature_vis", "experiments", "benchmarks", "data", "synthetic"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr in ("replace", "rename", "mkstemp") and \
                        isinstance(node.func.value, ast.Name) and node.func.value.id in ("os", "tempfile"):
                    rel = str(path.relative_to(ROOT))
                    found[rel] = found.get(rel, 0) + 1
    assert found == allowed
