"""The experiments users run first, end to end on real images: the paper's main job on InceptionV1's
structure (the structural fixture: the real file's nodes and shapes, random weights) over ImageNet
TFRecords, and the Imagenette job on MobileNetV1, every stage, checked for a complete run directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from experiments import inception_imagenet, mobilenet_imagenette
from summit_tf.data import tfrecord_writer
from synthetic import inception_v1 as fx

BEARS = (294, 295)  # brown bear, black bear: the paper's Fig. 9 pair, in the real validation images


def _nodes(run: Path, class_id: int) -> list[tuple[str, int]]:
    graph = json.loads((run / "ag" / f"ag-{class_id}.json").read_text())
    return [(layer, node["channel"]) for layer, kept in graph.items() for node in kept]


def _check_run(run: Path, classes: tuple[int, ...], diversity: int, figure_classes: tuple[int, ...],
               compare: tuple[int, int]) -> None:
    meta = json.loads((run / "classes.json").read_text())
    assert sorted(c["target_class"] for c in meta["classes"]) == sorted(classes)
    layers = meta["meta"]["layers"]
    fv = run / "feature-vis"
    for class_id in classes:
        nodes = _nodes(run, class_id)
        assert {layer for layer, _ in nodes} == set(layers), f"class {class_id} lacks layers"
        for layer, ch in nodes:
            name = layer.replace("/", "_")
            assert (fv / "channel" / f"{name}-{ch}-channel.jpg").stat().st_size > 500
            for d in range(diversity):
                assert (fv / f"diversity-{d}" / f"{name}-{ch}-diversity-{d}.jpg").is_file()
            assert (fv / "dataset-p" / f"{name}-{ch}-dataset-p-0.jpg").is_file()
    figures = run / "figures"
    wanted = [f"attribution-graph-{c}" for c in figure_classes] + [f"class-study-{c}" for c in figure_classes]
    wanted += [f"comparison-{compare[0]}-{compare[1]}", "embedding"]
    for name in wanted:
        for ext in ("png", "svg"):
            assert (figures / f"{name}.{ext}").stat().st_size > 1000, name
    assert (run / "compare" / f"{compare[0]}-{compare[1]}.json").is_file()


@pytest.mark.slow
def test_inception_main_job_on_tfrecords(shared, tmp_path, caplog):
    """Defaults name tench and white wolf too; absent from these records, they are dropped with a log line
    before any work, and the bear comparison (present) runs."""
    labels = tmp_path / "labels.txt"
    val = shared / "datasets" / "ilsvrc2012-val-1300"
    lines = [line for line in (val / "labels.txt").read_text().splitlines()
             if int(line.rpartition(",")[2]) in BEARS]
    labels.write_text("".join(f"{val / line.rpartition(',')[0]}, {line.rpartition(',')[2].strip()}\n"
                              for line in lines))
    records, skipped = tfrecord_writer.build(f"labels:{labels}", str(tmp_path / "tfr" / "train"), 2,
                                             None, None)
    assert len(records) == 2 and not skipped
    pb, _ = fx.write_fixture(tmp_path / "inception")
    run = tmp_path / "run"
    argv = ["inception_imagenet", f"--model=inception_v1:{pb}", f"--data=tfrecord:{tmp_path / 'tfr'}/train-*",
            f"--out_dir={run}", "--batch_size=8", "--fv_steps=2", "--num_examples=2", "--fv_diversity=0",
            "--fv_batch_channels=256", "--classes=294,295"]  # else counters for all 1,000 classes (9.6 GiB)
    with caplog.at_level(logging.INFO):
        assert inception_imagenet.main(argv) == 0
    assert "0" in caplog.text and "270" in caplog.text and "not in the data" in caplog.text
    _check_run(run, BEARS, diversity=0, figure_classes=BEARS, compare=BEARS)
    # Lucid's 4 diversity images by default; none here: each layer is a batch and a trace of its own, and
    # the shared quick-start run renders diversity images
    assert inception_imagenet.FLAGS["fv_diversity"].default == 4
    size = json.loads((run / "classes.json").read_text())["meta"]["feature_vis"]["size"]
    assert size == 128  # the paper's default, which the InceptionV1 head cannot evaluate


def test_imagenette_job_on_a_small_subset(shared, tmp_path):
    """The full-size job's own entry point and defaults (every stage after these is the quick start's
    pipeline, which the shared ``small_run`` covers): the counting and graph stages on 2 x 3 images."""
    data = tmp_path / "imagenette"
    for synset in ("n01440764", "n02102040"):  # tench, English springer: the default comparison
        (data / synset).mkdir(parents=True)
        for image in sorted((shared / "datasets" / "imagenette2-224" / "val" / synset).glob("*.JPEG"))[:3]:
            (data / synset / image.name).symlink_to(image)
    run = tmp_path / "run"
    argv = ["mobilenet_imagenette", f"--data=folder:{data}", f"--out_dir={run}", "--batch_size=6",
            "--stages=aggregate,graph"]
    assert mobilenet_imagenette.main(argv) == 0
    fv = mobilenet_imagenette.FLAGS
    assert (fv.fv_steps, fv.fv_diversity, fv.num_examples, fv.compare) == (512, 4, 10, "0,217")
    meta = json.loads((run / "classes.json").read_text())
    assert sorted(c["target_class"] for c in meta["classes"]) == [0, 217]
    for class_id in (0, 217):
        assert {layer for layer, _ in _nodes(run, class_id)} == set(meta["meta"]["layers"])
    stages = json.loads((run / "stages.json").read_text())
    assert set(stages) == {"aggregate", "graph"}
