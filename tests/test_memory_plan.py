"""Class-group passes under a device memory budget: the same file as one pass, resumable by pass."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import tensorflow as tf
from h5_files import assert_same_file
from toy import MemorySource, toy_model

from summit_tf import spec_grammar
from summit_tf.aggregation import memory_plan
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.plan import AggregateError, make_plan
from summit_tf.aggregation.run import aggregate_model, part_path
from summit_tf.aggregation.step import Accumulators

SIZE = 17
CLASSES = (3, 217, 999)


def make_opener(images, labels, crash_in=None):
    """``opener(cfg)`` like ``summit_tf.data.load``: filter by ``cfg.classes`` first, then number the
    records; a run over the classes ``crash_in`` fails after its first batch."""
    def opener(cfg):
        keep = np.isin(labels, cfg.classes) if cfg.classes else np.ones(labels.size, bool)
        index = np.arange(int(keep.sum()), dtype=np.int64)

        def open_source(skip):
            ds = tf.data.Dataset.from_tensor_slices({"image": images[keep][skip:],
                                                     "label": labels[keep][skip:], "index": index[skip:]})
            ds = ds.batch(cfg.batch_size)
            if crash_in is not None and cfg.classes == crash_in:
                ds = ds.enumerate().map(lambda i, b: (tf.debugging.assert_less(
                    i, tf.constant(1, tf.int64), message="simulated crash"), b)[1])
            return MemorySource("memory", ds, int(keep.sum()), sorted(set(labels[keep].tolist())))
        return open_source
    return opener


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, (19, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.choice(CLASSES, 19).astype(np.int32)
    return toy_model(SIZE), images, labels


def test_bytes_per_class_and_groups(data):
    model, _, _ = data
    cfg = AggregateConfig(model="toy", data="memory", out="-")
    plan = make_plan(model, cfg, CLASSES)
    per_class = memory_plan.bytes_per_class(model, plan)
    # count, correct, 20 probability bins, A: 8 + 12 + 16 channels, I: 12 x 8 and 16 x 12
    assert per_class == 4 * (2 + 20 + 36 + 96 + 192)
    assert per_class * len(CLASSES) == Accumulators(model, plan).nbytes()
    classes = np.arange(10, dtype=np.int32)
    assert len(memory_plan.plan_groups(classes, 100, None).groups) == 1
    assert len(memory_plan.plan_groups(classes, 100, 1000).groups) == 1
    groups = memory_plan.plan_groups(classes, 100, 399).groups  # 3 classes a pass: 4 passes of 3, 3, 2, 2
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    with pytest.raises(AggregateError, match="not even one class"):
        memory_plan.plan_groups(classes, 100, 99)
    assert spec_grammar.parse_size("1.5KiB") == 1536 and spec_grammar.parse_size("2GB") == 2 * 10**9
    with pytest.raises(ValueError, match="--budget"):
        spec_grammar.parse_size("12 parsecs", "--budget")


@pytest.fixture(scope="module")
def one_pass(data, tmp_path_factory):
    """The reference: all classes in one pass."""
    model, images, labels = data
    one = AggregateConfig(model="toy", data="memory", out=str(tmp_path_factory.mktemp("one") / "one.h5"),
                          batch_size=4)
    aggregate_model(one, model, make_opener(images, labels), io.StringIO())
    return one


def test_class_groups_count_as_one_pass(tmp_path, data, one_pass):
    model, images, labels = data
    opener, one, fit = make_opener(images, labels), one_pass, 1
    per_class = memory_plan.bytes_per_class(model, make_plan(model, one, CLASSES))
    split = dataclasses.replace(one, out=str(tmp_path / "split.h5"), device_memory_budget=fit * per_class + 7)
    log = io.StringIO()
    summary = aggregate_model(split, model, opener, log)
    passes = -(-len(CLASSES) // fit)
    plan_lines = [line for line in log.getvalue().splitlines() if line.startswith("memory plan:")]
    assert plan_lines == [f"memory plan: {len(CLASSES)} classes in {passes} passes of <={fit} classes, "
                          f"{fit * per_class / 2**20:,.1f} MiB each (budget "
                          f"{split.device_memory_budget / 2**20:,.1f} MiB)"]
    assert summary.images == labels.size and summary.classes == len(CLASSES)
    assert_same_file(one.out, split.out)
    assert [p.name for p in tmp_path.iterdir()] == ["split.h5"]  # the passes' parts removed


def test_interrupted_group_pass_resumes(tmp_path, data, one_pass):
    model, images, labels = data
    per_class = memory_plan.bytes_per_class(model, make_plan(model, one_pass, CLASSES))
    split = dataclasses.replace(one_pass, out=str(tmp_path / "split.h5"), batch_size=2, checkpoint_every=1,
                                device_memory_budget=2 * per_class)  # passes over (3, 217) and (999,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="simulated crash"):
        aggregate_model(split, model, make_opener(images, labels, crash_in=(CLASSES[2],)), io.StringIO())
    assert part_path(split.out, CLASSES[:2]).exists()  # the first pass is done, the second checkpointed
    with pytest.raises(AggregateError, match="interrupted run; pass resume"):
        aggregate_model(split, model, make_opener(images, labels), io.StringIO())
    resume = dataclasses.replace(split, resume=True)
    # a finished pass counted with other settings is never joined into this run
    with pytest.raises(AggregateError, match=r"classes-3-217.h5 is complete but was counted with other "
                                             r"settings.*influence_topk.*--overwrite"):
        aggregate_model(dataclasses.replace(resume, influence_topk=1), model, make_opener(images, labels),
                        io.StringIO())
    log = io.StringIO()
    aggregate_model(resume, model, make_opener(images, labels), log)
    assert "is complete (no checkpoint to resume): nothing to do" in log.getvalue()
    assert "resuming from" in log.getvalue()
    assert_same_file(one_pass.out, split.out)
    # the joined output is the run's: resuming again does nothing (its parts are gone), with other
    # settings it is refused
    log = io.StringIO()
    aggregate_model(resume, model, make_opener(images, labels), log)
    assert "nothing to do" in log.getvalue() and "pass 1" not in log.getvalue()
    with pytest.raises(AggregateError, match="split.h5 is complete but was counted with other settings"):
        aggregate_model(dataclasses.replace(resume, influence_topk=1), model, make_opener(images, labels),
                        io.StringIO())


def test_max_images_refused_with_groups(tmp_path, data):
    model, images, labels = data
    cfg = AggregateConfig(model="toy", data="memory", out=str(tmp_path / "x.h5"), max_images=5,
                          device_memory_budget=1400)  # one class: 1,384 bytes
    with pytest.raises(AggregateError, match="max_images"):
        aggregate_model(cfg, model, make_opener(images, labels), io.StringIO())


def test_part_pattern_matches_every_pass_file_and_checkpoint_only(tmp_path):
    from summit_tf.aggregation import engine
    from summit_tf.aggregation.run import part_path, part_pattern

    out = tmp_path / "aggregates.h5"
    part = part_path(out, [3, 7])
    for path in (out, part, engine.checkpoint_path(part), engine.checkpoint_path(out),
                 tmp_path / "aggregates.html"):
        path.write_text("")
    assert sorted(p.name for p in tmp_path.glob(part_pattern(out))) == sorted(
        [part.name, engine.checkpoint_path(part).name])
