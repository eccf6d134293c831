"""The classes an experiment draws and compares are checked against the data: a script's defaults that do not
apply are dropped with one log line, a class the user named that the data lacks is one ``error:`` line and
exit code 2 (before any work where the data lists its classes)."""

import json
import logging

import numpy as np
import pytest
from cli_errors import assert_one_error_line
from PIL import Image

from experiments import mobilenet_imagenette, pipeline
from summit_tf import imagenet

OTHER = (3, 7)  # tiger shark, cock: not Imagenette classes (the script's defaults are)


def _folder(root, images_per_class=2):
    rng = np.random.default_rng(0)
    for c in OTHER:
        folder = root / imagenet.synsets()[c]
        folder.mkdir(parents=True)
        for i in range(images_per_class):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    return root


@pytest.mark.parametrize("flag, named", [("--compare=0,7", "--compare: class 0 not in the data"),
                                         ("--figure_classes=3,217,1", "--figure_classes: classes 1, 217 not"),
                                         ("--compare=3,7x", "--compare: expected non-negative integers"),
                                         ("--figure_classes=1000", "--figure_classes: class ids must lie")])
def test_named_class_absent_from_a_folder_exits_2_before_any_work(tmp_path, capsys, flag, named):
    data, run = _folder(tmp_path / "data"), tmp_path / "run"
    assert mobilenet_imagenette.main(["x", f"--data=folder:{data}", f"--out_dir={run}", flag]) == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, named)
    assert "it has 2 classes: 3, 7" in err or "not in the data" not in named
    assert not run.exists()


def test_fit_classes_drops_defaults_with_one_log_line_and_checks_named_classes_first(caplog):
    cfg = pipeline.PipelineConfig(model="m", data="folder:x", out_dir="o", figure_classes=(0, 3, 217),
                                  compare=(0, 7))
    with caplog.at_level(logging.WARNING):
        fitted = pipeline.fit_classes(cfg, np.array(OTHER), named=())
    assert fitted.figure_classes == (3,) and fitted.compare is None
    assert [r.getMessage() for r in caplog.records] == [
        "defaults not in the data (it has 2 classes: 3, 7) dropped: --figure_classes=0,3,217 -> 3; "
        "--compare=0,7 -> none"]
    caplog.clear()
    assert pipeline.fit_classes(fitted, OTHER, named=pipeline.CLASS_FIELDS) == fitted
    with pytest.raises(ValueError, match=r"^--compare: class 0 not in the data \(it has 2 classes: 3, 7\)$"):
        pipeline.fit_classes(cfg, OTHER, named=["compare"])
    assert not caplog.records  # the figure default is not reported for a run that fails


@pytest.mark.slow
def test_classes_unknown_before_reading_are_checked_after_aggregation(shared, tmp_path, monkeypatch, capsys,
                                                                      caplog):
    """A source that cannot list its classes (TFRecord, TFDS: the labels are known only by reading): a named
    absent class stops the run after the aggregate stage (error last, no graphs); without it the script's
    Imagenette defaults are dropped and the graph stage, where the run used to end in a KeyError, runs."""
    from summit_tf import data as data_module

    monkeypatch.setattr(data_module, "list_classes", lambda spec: None)
    data, run = _folder(tmp_path / "data", images_per_class=1), tmp_path / "run"
    argv = ["x", f"--data=folder:{data}", f"--out_dir={run}", "--stages=aggregate,graph", "--batch_size=2"]
    assert mobilenet_imagenette.main([*argv, "--compare=3,217"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == "error: --compare: class 217 not in the data (it has 2 classes: 3, 7)"
    assert (run / "aggregates.h5").is_file() and not (run / "ag").exists()
    with caplog.at_level(logging.WARNING, logger="experiments.pipeline"):
        assert mobilenet_imagenette.main(argv) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "experiments.pipeline"] == [
        "defaults not in the data (it has 2 classes: 3, 7) dropped: "
        "--figure_classes=0,217,482,491,497,566,569,571,574,701 -> none; --compare=0,217 -> none"]
    assert "[aggregate] cached" in capsys.readouterr().err  # aggregated once
    assert [c["target_class"] for c in json.loads((run / "classes.json").read_text())["classes"]] == [3, 7]
    saved = json.loads((run / "pipeline.json").read_text())
    assert saved["compare"] is None and saved["figure_classes"] == []
