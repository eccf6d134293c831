"""Every command line's bad-input paths in one table, in process: exit code 2, one ``error:`` line, no
traceback, nothing written. (Subprocess smoke tests of ``python -m`` live beside each tool's tests.)"""

from __future__ import annotations

import pytest
from cli_errors import assert_one_error_line, run_main

TOOLS = ["summit_tf.aggregate", "summit_tf.merge", "summit_tf.serve", "summit_tf.export_site",
         "summit_tf.download", "summit_tf.check_inception_v1", "summit_tf.examples.__main__",
         "summit_tf.graph.__main__", "summit_tf.data.build_tfrecords", "feature_vis.render",
         "experiments.quickstart", "experiments.inception_imagenet", "experiments.mobilenet_imagenette",
         "experiments.ablations", "synthetic.__main__"]

CASES = [
    ("summit_tf.aggregate", ["--data=folder:/x", "--out=o.h5"], "--model is required"),
    ("summit_tf.aggregate", ["--model=m", "--data=d", "--out=o.h5", "--classes=5-2"], "--classes: range"),
    ("summit_tf.aggregate", ["--model=m", "--data=d", "--out=o.h5", "--activation_select=mass:2"], "TAU"),
    ("summit_tf.aggregate", ["--model=m", "--data=d", "--out=o.h5", "--exclude_channels=a:x"],
     "--exclude_channels of a"),
    ("summit_tf.merge", ["--out=o.h5"], "no input files"),
    ("summit_tf.merge", ["in.h5"], "--out is required"),
    ("summit_tf.serve", [], "--run_dir is required"),
    ("summit_tf.serve", ["--run_dir=.", "--port=70000"], "--port must be in 0..65535"),
    ("summit_tf.export_site", ["--run_dir=x"], "--out is required"),
    ("summit_tf.download", ["--assets=nope"], "unknown asset"),
    ("summit_tf.check_inception_v1", ["--batch=0"], "--batch"),
    ("summit_tf.examples.__main__", ["--model=toy"], "--data is required"),
    ("summit_tf.examples.__main__", ["--model=m", "--data=d", "--out_dir=o", "--num_examples=0"],
     "num_examples must be >= 1"),
    ("summit_tf.graph.__main__", ["--aggregates=x"], "--out_dir is required"),
    ("summit_tf.graph.__main__", ["--aggregates=x", "--out_dir=o", "--workers=-1"], "--workers"),
    ("summit_tf.data.build_tfrecords", ["--data=folder:/x"], "required"),
    ("feature_vis.render", ["--out_dir=x"], "--model is required"),
    ("feature_vis.render", ["--model=m", "--out_dir=x", "--channels=a:1", "--only_graph_nodes=y"],
     "not both"),
    ("experiments.quickstart", ["--stages=nonsense"], "unknown stage"),
    ("experiments.inception_imagenet", ["--compare=1,2,3"], "two class ids"),
    ("experiments.mobilenet_imagenette", ["--figure_classes=1000", "--data=folder:/x"], "0..999"),
    ("synthetic.__main__", [], "--out is required"),
]


@pytest.mark.parametrize("module, args, message", CASES, ids=[f"{m}:{' '.join(a)}" for m, a, _ in CASES])
def test_bad_input_is_one_error_line_and_exit_2(module, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_main(module, *args)
    assert done.returncode == 2, done
    assert_one_error_line(done.stderr, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("module", TOOLS)
def test_unknown_flags_and_stray_arguments(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_main(module, "--no_such_flag=1")
    assert done.returncode == 2 and "no_such_flag" in done.stderr
    assert_one_error_line(done.stderr)
    if module != "summit_tf.merge":  # merge takes its inputs as positional arguments
        done = run_main(module, "stray")
        assert done.returncode == 2
        assert_one_error_line(done.stderr, "unexpected arguments: stray")
    done = run_main(module, "--help")
    assert done.returncode == 0 and done.stderr == "" and "--" in done.stdout
