"""One source for the words of the settings, and a ``--help`` path free of TensorFlow."""

import ast
import subprocess
import sys
from pathlib import Path

from summit_tf import vocabulary

ROOT = Path(__file__).resolve().parents[1]
WORDS = {name: getattr(vocabulary, name) for name in
         ("ACTIVATION_REDUCERS", "INFLUENCE_REDUCERS", "SELECTION_KINDS", "RESIZE_MODES")}


def test_nothing_else_defines_the_vocabulary():
    """No module assigns these names or spells one of these tuples out again."""
    found = []
    values = {tuple(v) for v in WORDS.values()}
    for folder in ("summit_tf", "feature_vis", "experiments", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "vocabulary.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Assign):
                    names = {t.id for t in node.targets if isinstance(t, ast.Name)}
                    if names & {*WORDS, "SELECT_HELP", "REDUCERS"}:
                        found.append(f"{path.relative_to(ROOT)}: {names}")
                literal = isinstance(node, ast.Tuple | ast.List) and \
                    all(isinstance(e, ast.Constant) for e in node.elts)
                if literal and tuple(e.value for e in node.elts) in values:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_help_paths_import_no_tensorflow():
    code = ("import sys, summit_tf.vocabulary, summit_tf.spec_grammar, summit_tf.aggregation.config; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_public_names_resolve_lazily():
    import summit_tf

    assert sorted(summit_tf.__all__) == sorted(summit_tf._PUBLIC)
    for name in summit_tf.__all__:
        assert getattr(summit_tf, name).__name__  # each one imports


def test_public_names_do_not_shadow_modules():
    """A public name equal to a submodule's would be rebound to the module once that is imported."""
    import pkgutil

    import summit_tf

    modules = {m.name for m in pkgutil.iter_modules(summit_tf.__path__)}
    assert not modules & set(summit_tf.__all__)
