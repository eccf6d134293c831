"""The one grammar for channel selections and class lists, and that every tool uses it."""

import ast
from pathlib import Path

import pytest

from summit_tf import spec_grammar as g

ROOT = Path(__file__).resolve().parents[1]


def test_ids_and_classes():
    assert g.parse_ids("7, 0,480-482,481") == (0, 7, 480, 481, 482)
    assert g.parse_ids("") == ()
    assert g.parse_classes("0,217,480-482") == (0, 217, 480, 481, 482)
    assert g.parse_classes(None) is None and g.parse_classes("  ") is None
    for bad in ("x", "1-", "-3", "5-2", "1.5", "2-x"):
        with pytest.raises(ValueError, match="^classes: "):
            g.parse_classes(bad)
    with pytest.raises(ValueError, match="^--compare: "):
        g.parse_classes("a,b", "--compare")
    with pytest.raises(ValueError, match="longer than"):
        g.parse_channels("a:0-999999999")
    with pytest.raises(ValueError, match="no class ids"):
        g.parse_classes(",")


def test_channel_selections():
    assert g.parse_channels("a:1,3-5;b/x:0;a:2") == {"a": (1, 2, 3, 4, 5), "b/x": (0,)}
    assert g.parse_channels("mixed4b/3x3_bottleneck: 7 ; ") == {"mixed4b/3x3_bottleneck": (7,)}
    assert g.parse_channels(None) == {} and g.parse_channels("") == {}
    assert g.parse_channels("0,7,42", default_layer="conv") == {"conv": (0, 7, 42)}
    assert g.parse_channels("0;b:1", default_layer="a") == {"a": (0,), "b": (1,)}
    for bad in ("a", "a:x", "a:1-", ":3", "a:", "a:-1"):
        with pytest.raises(ValueError, match="^--channels"):
            g.parse_channels(bad, "--channels")
    text = "b:3,1;a:2;c:"
    with pytest.raises(ValueError):
        g.parse_channels(text)
    selection = {"b": [3, 1, 3], "a": (2,), "empty": ()}
    assert g.format_channels(selection) == "a:2;b:1,3"
    assert g.parse_channels(g.format_channels(selection)) == {"a": (2,), "b": (1, 3)}


def test_the_tools_share_one_grammar():
    """The old parsers are gone: no module but spec_grammar defines a parser of these texts."""
    defined = set()
    for folder in ("summit_tf", "feature_vis", "experiments"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in (
                    "parse_channels",
                    "parse_classes",
                    "parse_exclude_channels",
                    "class_ids",
                    "parse_ids",
                ):
                    defined.add(f"{path.relative_to(ROOT)}:{node.name}")
    assert defined == {
        "summit_tf/spec_grammar.py:parse_channels",
        "summit_tf/spec_grammar.py:parse_classes",
        "summit_tf/spec_grammar.py:parse_ids",
    }


def test_class_ranges_work_for_the_graph_tool_too(tmp_path):
    from summit_tf import store
    from summit_tf.graph import __main__ as graph_cli
    from synthetic import aggregates as synthetic

    agg = synthetic.from_counts(
        {"l0": 2, "l1": 2},
        {"l0": [[3, 1], [1, 1], [2, 2]], "l1": [[1, 3], [1, 1], [2, 2]]},
        {"l1/conv": ("l0", "l1", 0, [[[2, 1], [0, 4]]] * 3)},
        classes=[480, 481, 482],
    )
    store.save(tmp_path / "run.h5", agg)
    argv = [
        "graph",
        f"--aggregates={tmp_path / 'run.h5'}",
        f"--out_dir={tmp_path / 'out'}",
        "--classes=480-481",
    ]
    assert graph_cli.main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "ag").iterdir()) == ["ag-480.json", "ag-481.json"]
    argv[-1] = "--classes=480-490"
    assert graph_cli.main(argv) == 2
