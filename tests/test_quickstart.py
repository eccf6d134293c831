"""End to end: the quick start's pipeline on a slice of the real assets leaves a complete, consistent run."""

import json

import h5py
import numpy as np
import pytest
from cli_errors import assert_one_error_line
from json_shape import leaf_paths

from experiments import quickstart


def test_run_directory_is_complete_and_consistent(small_run, shared):
    meta = json.loads((small_run / "classes.json").read_text())
    layers = meta["meta"]["layers"]
    classes = {c["target_class"]: c for c in meta["classes"]}
    assert sorted(classes) == [0, 217, 701]
    with h5py.File(small_run / "aggregates.h5") as f:
        np.testing.assert_array_equal(f["classes/index"][()], [0, 217, 701])
        assert int(f.attrs["num_images"]) == 12
    fv = small_run / "feature-vis"
    nodes = 0
    for class_id, info in classes.items():
        graph = json.loads((small_run / "ag" / f"ag-{class_id}.json").read_text())
        assert list(graph) == layers[::-1]
        for layer, kept in graph.items():
            index = layers.index(layer)
            below = {n["channel"] for n in graph[layers[index - 1]]} if index else set()
            for node in kept:
                nodes += 1
                ch = node["channel"]
                assert 0 <= node["count"] <= info["numOfInstances"]  # PageRank may keep an unselected channel
                assert (fv / "channel" / f"{layer}-{ch}-channel.jpg").is_file()
                for d in range(2):
                    assert (fv / f"diversity-{d}" / f"{layer}-{ch}-diversity-{d}.jpg").is_file()
                assert (fv / "dataset-p" / f"{layer}-{ch}-dataset-p-0.jpg").is_file()
                assert all(p["prev_channel"] in below and p["inf"] <= info["numOfInstances"]
                           for p in node["prev_channels"])
    assert nodes > 3 * len(layers) // 2
    published = json.loads((shared / "reference" / "summit-data-ag" / "ag-270.json").read_text())
    published_nodes = [n for kept in published.values() for n in kept]
    for class_id in classes:  # keys in the published order, every leaf of the published type
        graph = json.loads((small_run / "ag" / f"ag-{class_id}.json").read_text())
        run_nodes = [n for kept in graph.values() for n in kept]
        assert {tuple(n) for n in run_nodes} == {tuple(n) for n in published_nodes}
        assert set().union(*map(leaf_paths, run_nodes)) == set().union(*map(leaf_paths, published_nodes))
    assert (small_run / "compare").is_dir()
    for name in ("attribution-graph-0", "class-study-0", "comparison-0-217", "embedding"):
        for ext in ("png", "svg"):
            assert (small_run / "figures" / f"{name}.{ext}").stat().st_size > 1000


def test_second_run_reuses_every_stage(small_run, capsys):
    pipeline = json.loads((small_run / "pipeline.json").read_text())
    argv = ["quickstart", f"--data={pipeline['data']}", f"--out_dir={small_run}", "--max_images_per_class=4",
            "--batch_size=12", "--fv_steps=2", "--fv_size=48", "--fv_diversity=2", "--num_examples=3",
            "--fv_batch_channels=512",
            "--figure_classes=0", "--compare=0,217"]
    assert quickstart.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count(": cached") == 5


def test_bad_flags_exit_2(tmp_path, capsys):
    assert quickstart.main(["quickstart", "--stages=nonsense", f"--out_dir={tmp_path}"]) == 2
    assert "unknown stage" in capsys.readouterr().err


@pytest.mark.parametrize("flag, message", [
    ("--fv_size=0", "--fv_size must be >= 1, got 0"), ("--fv_batch_channels=0", "--fv_batch_channels"),
    ("--fv_diversity=-1", "--fv_diversity must be >= 0"), ("--fv_steps=0", "--fv_steps must be >= 1"),
    ("--num_examples=0", "--num_examples must be >= 1"), ("--node_mass=5", "node_mass must be in (0, 1]")])
def test_later_stages_settings_checked_before_any_work(tmp_path, capsys, flag, message):
    """These used to fail (or pass silently) only after hours of aggregation, some with a traceback."""
    run = tmp_path / "run"
    assert quickstart.main(["quickstart", "--data=folder:/unread", f"--out_dir={run}", flag]) == 2
    assert_one_error_line(capsys.readouterr().err, message)
    assert not run.exists()


def test_nofigures_skips_only_the_figures_stage():
    from experiments import cli

    quickstart.FLAGS.unparse_flags()
    quickstart.FLAGS(["quickstart", "--nofigures", "--data=folder:unused"])
    assert cli.config(quickstart.FLAGS).stages == ("aggregate", "graph", "examples", "feature_vis")
    quickstart.FLAGS.unparse_flags()
    quickstart.FLAGS(["quickstart", "--data=folder:unused", "--stages=graph,figures"])
    assert cli.config(quickstart.FLAGS).stages == ("graph", "figures")
    quickstart.FLAGS.unparse_flags()
    quickstart.FLAGS(["quickstart", "--data=folder:unused", "--stages=figures", "--nofigures"])
    with pytest.raises(ValueError, match="leaves no stage"):  # an empty selection used to run every stage
        cli.config(quickstart.FLAGS)
    quickstart.FLAGS.unparse_flags()


def test_missing_assets_offline_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SUMMIT_TF_ASSETS", str(tmp_path / "no-assets"))
    monkeypatch.setenv("SUMMIT_TF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SUMMIT_TF_MIRROR", f"file://{tmp_path / 'no-mirror'}")
    assert quickstart.main(["quickstart", f"--out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot get imagenette2") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
