"""experiments.faithfulness end to end on a hand-made run: real MobileNetV1, three real held-out images."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from cli_errors import assert_one_error_line, run_main
from conftest import SLICE_SYNSETS

from experiments import faithfulness
from summit_tf import store
from synthetic.aggregates import from_counts

CLASSES = [0, 217, 701]
LAYERS = ("Conv2d_12_pointwise", "Conv2d_13_pointwise")


@pytest.fixture(scope="module")
def run(shared, tmp_path_factory):
    """A run directory: aggregates naming the model and data, and one graph (class 0) written by hand."""
    data = tmp_path_factory.mktemp("held-out")
    for synset in SLICE_SYNSETS:
        (data / synset).mkdir()
        image = sorted((shared / "datasets" / "imagenette2-224" / "val" / synset).glob("*.JPEG"))[0]
        (data / synset / image.name).symlink_to(image)
    run_dir = tmp_path_factory.mktemp("run")
    agg = from_counts({layer: 1024 for layer in LAYERS}, {layer: np.zeros((3, 1024)) for layer in LAYERS}, {},
                      classes=CLASSES, count=[1, 1, 1],
                      config={"model": "mobilenet_v1", "data": f"folder:{data}", "resize": "squash"})
    store.save(run_dir / "aggregates.h5", agg)
    (run_dir / "ag").mkdir()
    graph = {"Conv2d_13_pointwise": [{"channel": c, "prev_channels": [{"prev_channel": p, "inf": 1}
                                                                       for p in prev]}
                                     for c, prev in ((5, [1, 2]), (900, [2]))],
             "Conv2d_12_pointwise": [{"channel": c, "prev_channels": []} for c in (1, 2, 40)]}
    (run_dir / "ag" / "ag-0.json").write_text(json.dumps(graph))
    return run_dir, f"folder:{data}"


def test_faithfulness_cli_writes_consistent_tables(run, tmp_path):
    run_dir, data = run
    out = tmp_path / "out"
    done = run_main("experiments.faithfulness", f"--run_dir={run_dir}", f"--data={data}", "--classes=0",
                    "--images_per_class=1", "--random_sets=2", "--means_images_per_class=1",
                    f"--out_dir={out}")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((out / "faithfulness.csv").open()))
    assert [r["condition"] for r in rows] == list(faithfulness.CONDITIONS)
    by = {r["condition"]: r for r in rows}
    assert by["graph-channels"]["size"] == "5" and by["graph-edges"]["size"] == "3"
    assert by["random-channels"]["draws"] == "2" and by["random-edges"]["draws"] == "2"
    # the baseline is the plain model's probability of the true class on the tench image
    from summit_tf import data as data_mod
    from summit_tf.models import load

    model = load("mobilenet_v1")
    batch = next(iter(data_mod.load(data, image_size=224, batch_size=3).dataset))
    logits = model.tensors(batch["image"], ["logits"])["logits"].numpy().astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    outputs = model.class_to_output[batch["label"].numpy()]
    p_true = probs[np.arange(3), outputs]
    tench = batch["label"].numpy() == 0
    assert float(by["none"]["p_c"]) == pytest.approx(p_true[tench].mean(), abs=1e-5)
    assert float(by["none"]["p_others"]) == pytest.approx(p_true[~tench].mean(), abs=1e-5)
    summary = json.loads((run_dir / faithfulness.SUMMARY_FILE).read_text())
    ch = summary["classes"]["0"]["channels"]
    assert ch["size"] == 5
    drop = float(by["none"]["p_c"]) - float(by["graph-channels"]["p_c"])
    assert ch["drop_p_c"] == pytest.approx(drop, abs=1e-9)
    assert (run_dir / "channel_means.npz").exists() and (out / "faithfulness.png").stat().st_size > 0
    assert "tench (0)" in (out / "faithfulness.md").read_text()
    raw = np.load(out / "faithfulness-raw.npz")
    assert raw["p-0"].shape == (6, 3)  # graph + 2 random, for channels and for edges; 3 images


def test_faithfulness_bad_input_is_one_error_line(run, tmp_path):
    run_dir, data = run
    cases = [
        ([f"--data={data}"], "--run_dir"),
        ([f"--run_dir={tmp_path}", f"--data={data}"], "no aggregates.h5"),
        ([f"--run_dir={run_dir}", f"--data={data}", "--classes=217"], "no graph"),
        ([f"--run_dir={run_dir}", f"--data={data}", "--random_sets=1"], "--random_sets"),
    ]
    for args, message in cases:
        done = run_main("experiments.faithfulness", *args, f"--out_dir={tmp_path / 'never'}")
        assert done.returncode == 2
        assert_one_error_line(done.stderr, message)
        assert not (tmp_path / "never").exists()


def test_runs_over_a_few_classes_each_add_up(run, tmp_path, caplog):
    """One process per class (``--classes=c``, as the real run went) gives the whole table, not the last
    class's; classes scored with other settings are left out of it."""
    run_dir, data = run
    (run_dir / "ag" / "ag-701.json").write_text((run_dir / "ag" / "ag-0.json").read_text())
    out = tmp_path / "out"
    common = [f"--run_dir={run_dir}", f"--data={data}", "--images_per_class=1", "--random_sets=2",
              "--means_images_per_class=1", f"--out_dir={out}"]
    for c in (0, 701):
        assert faithfulness.main(["faithfulness", *common, f"--classes={c}"]) == 0
    rows = list(csv.DictReader((out / "faithfulness.csv").open()))
    assert [int(r["class_id"]) for r in rows] == [0] * 5 + [701] * 5
    assert set(json.loads((run_dir / faithfulness.SUMMARY_FILE).read_text())["classes"]) == {"0", "701"}
    assert {"p-0", "p-701", "p-none"} <= set(np.load(out / "faithfulness-raw.npz").files)
    with caplog.at_level("WARNING"):
        assert faithfulness.main(["faithfulness", *common, "--classes=701", "--seed=1"]) == 0
    rows = list(csv.DictReader((out / "faithfulness.csv").open()))
    assert {int(r["class_id"]) for r in rows} == {701}
    assert any("other settings" in r.getMessage() for r in caplog.records)
    # a class whose graph changed since it was scored is left out too
    graph = json.loads((run_dir / "ag" / "ag-0.json").read_text())
    graph["Conv2d_12_pointwise"] = graph["Conv2d_12_pointwise"][:2]
    (run_dir / "ag" / "ag-701.json").write_text(json.dumps(graph))
    assert faithfulness.main(["faithfulness", *common, "--classes=0"]) == 0
    rows = list(csv.DictReader((out / "faithfulness.csv").open()))
    assert {int(r["class_id"]) for r in rows} == {0}
