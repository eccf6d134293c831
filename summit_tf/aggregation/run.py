"""One aggregation run from a config: the library entry point behind ``python -m summit_tf.aggregate``.

When the accumulators of all the run's classes exceed the device memory budget (``memory_plan``), the
classes are counted in groups, one pass over the data each, into part files beside the output
(``OUT.classes-FIRST-LAST.h5``, each with its own checkpoint); the parts are the plan's checkpoints: a
resumed run skips the finished ones. They are joined into ``OUT`` (the one-pass record) and removed.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from summit_tf.aggregation.config import AggregateConfig

EMPTY_DATA = "empty data:"  # how the engine's AggregateError for a stream without images begins

if TYPE_CHECKING:
    import tensorflow as tf

    from summit_tf.aggregation.engine import RunSummary
    from summit_tf.aggregation.memory_plan import MemoryPlan
    from summit_tf.aggregation.plan import OpenSource
    from summit_tf.aggregation.replicas import Replicas
    from summit_tf.models.base import SummitModel


def aggregate(cfg: AggregateConfig, stream: TextIO | None = None,
              strategy: tf.distribute.Strategy | None = None) -> RunSummary:
    """Load the model and data ``cfg`` names and count A and every I into ``cfg.out``.

    ``strategy`` (default: made from ``cfg.strategy`` before any other TensorFlow work, as multi-worker
    collectives require) spreads the batches over its replicas; under ``multi_worker`` each worker reads
    its own TFRecord files (or its share of a folder's images) and only the chief writes.
    Raises ``ValueError`` (``engine.AggregateError``) or ``FileNotFoundError`` for bad input. TensorFlow is
    imported here, on first use, so that parsing a config stays free of it.
    """
    from summit_tf.strategy import make_strategy  # first: multi-worker set-up precedes other TF work

    if strategy is None:
        strategy = make_strategy(cfg.strategy)
    from summit_tf import data, models
    from summit_tf.aggregation import engine
    from summit_tf.aggregation.replicas import Replicas
    from summit_tf.data import tfrecords

    replicas = Replicas(strategy)
    if replicas.num_workers == 1:  # several workers: the chief decides inside the engine, for all
        engine.check_output(cfg)
    files = None
    if replicas.num_workers > 1 and cfg.data.startswith("tfrecord:"):
        files = len(tfrecords.list_files(cfg.data.partition(":")[2]))
    worker_shard(cfg, replicas.num_workers, replicas.worker_index, files)  # too few files: say so first
    model = models.load(cfg.model, layers=cfg.layers, summit_compat=cfg.summit_compat)

    def opener(run: AggregateConfig) -> OpenSource:
        shards, shard = worker_shard(run, replicas.num_workers, replicas.worker_index, files)

        def open_source(skip_records: int) -> data.ImageSource:
            return data.load(run.data, image_size=model.input_size, resize=run.resize,
                             half_pixel_centers=not run.summit_compat, batch_size=run.batch_size,
                             num_shards=shards, shard_index=shard,
                             skip_records=skip_records, max_images=run.max_images,
                             max_images_per_class=run.max_images_per_class, classes=run.classes,
                             max_jpeg_ratio=run.jpeg_max_ratio, data_service=run.data_service)
        return open_source

    return aggregate_model(cfg, model, opener, stream, replicas)


def worker_shard(cfg: AggregateConfig, num_workers: int, worker_index: int,
                 num_files: int | None = None) -> tuple[int, int]:
    """``(num_shards, shard_index)`` of one worker's part of the data: shard ``shard_index + num_shards *
    worker`` of ``num_shards * workers``, so the workers together count exactly the configured shard.

    ``num_files`` (TFRecord data): each worker must read whole files, so fewer files than parts is a
    ``ValueError``.
    """
    shards = cfg.num_shards * num_workers
    if num_workers > 1 and num_files is not None and num_files < shards:
        raise ValueError(f"{cfg.data}: {num_files} TFRecord file(s) for {num_workers} workers x "
                         f"{cfg.num_shards} shard(s); each worker reads whole files: write more files "
                         "(python -m summit_tf.data.build_tfrecords --shards=N) or use fewer workers")
    return shards, cfg.shard_index + cfg.num_shards * worker_index


def aggregate_model(cfg: AggregateConfig, model: SummitModel, opener: Callable[[AggregateConfig], OpenSource],
                    stream: TextIO | None = None, replicas: Replicas | None = None) -> RunSummary:
    """:func:`aggregate` with the model loaded: ``opener(run_cfg)`` opens the input stream of a config
    (the whole run's or one class group's). One pass when the accumulators fit the budget (per device:
    every replica holds its own), else one pass per class group, joined."""
    from summit_tf.aggregation import engine, memory_plan
    from summit_tf.aggregation.plan import make_plan, run_record

    if (replicas is None or replicas.num_workers == 1) and engine.finished(cfg, model):
        return engine.finished_summary(cfg, stream)  # a finished run in passes has no parts left to skip
    budget = cfg.device_memory_budget
    if budget is None:
        budget = memory_plan.default_budget()
    if budget is not None:
        plan = make_plan(model, cfg, opener(cfg)(0).classes)
        mem = memory_plan.plan_groups(plan.classes, memory_plan.bytes_per_class(model, plan), budget)
        if len(mem.groups) > 1:
            if replicas is not None and replicas.num_workers > 1:
                raise engine.AggregateError(
                    f"{mem.describe()}: class-group passes are not supported with several workers; split "
                    "the classes with --classes (one job each) and join the outputs with summit_tf.merge")
            return _in_groups(cfg, model, opener, mem, run_record(model, cfg), stream, replicas)
    return engine.aggregate(cfg, model, opener(cfg), stream=stream, replicas=replicas)


def part_path(out: str | Path, classes: Sequence[int]) -> Path:
    """The output of the pass over ``classes`` (ascending) of the run writing ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.classes-{int(classes[0])}-{int(classes[-1])}{out.suffix}")


def part_pattern(out: str | Path) -> str:
    """A glob of every pass file of the run writing ``out`` and their checkpoints (file names only)."""
    out = Path(out)
    return f"{out.stem}.classes-*{out.suffix}*"


def _in_groups(cfg: AggregateConfig, model: SummitModel, opener: Callable[[AggregateConfig], OpenSource],
               mem: MemoryPlan, record: dict, stream: TextIO | None, replicas: Replicas | None) -> RunSummary:
    """Count each class group in its own pass into a part file, then join the parts into ``cfg.out``."""
    import time

    from summit_tf.aggregation import engine
    from summit_tf.aggregation.merge import merge

    stream = stream if stream is not None else sys.stderr
    if cfg.max_images is not None:
        raise engine.AggregateError("max_images caps the records of the whole stream, which a pass over one "
                                    "class group cannot honour: raise device_memory_budget, or use "
                                    "max_images_per_class")
    runs = [dataclasses.replace(cfg, classes=tuple(int(c) for c in group), out=str(part_path(cfg.out, group)),
                                device_memory_budget=None) for group in mem.groups]
    if not (cfg.resume or cfg.overwrite):
        for run in runs:
            for path in (Path(run.out), engine.checkpoint_path(run.out)):
                if path.exists():
                    raise engine.AggregateError(f"{path} holds a pass of an interrupted run; pass resume "
                                                "(--resume) to continue it or --overwrite to start over")
    print(mem.describe(), file=stream, flush=True)
    t0 = time.monotonic()
    parts, resumed = [], 0
    for i, run in enumerate(runs):
        print(f"pass {i + 1}/{len(runs)}: classes {run.classes[0]}..{run.classes[-1]}", file=stream,
              flush=True)
        try:
            summary = engine.aggregate(run, model, opener(run), stream=stream, replicas=replicas)
        except engine.AggregateError as e:
            if not str(e).startswith(EMPTY_DATA):  # a group of classes the data does not have
                raise
            print(f"pass {i + 1}: no images of these classes", file=stream, flush=True)
            continue
        parts.append(str(summary.out))
        resumed += summary.resumed_from
    if not parts:
        raise engine.AggregateError(f"{EMPTY_DATA} no readable images in {cfg.data}")
    joined = merge(parts, cfg.out, config=record)
    try:
        result = engine.RunSummary(Path(cfg.out), joined.num_images, joined.num_skipped,
                                   int(joined.classes.size), time.monotonic() - t0, resumed)
    finally:
        joined.close()
    for path in parts:
        Path(path).unlink()
    engine.checkpoint_path(cfg.out).unlink(missing_ok=True)  # a one-pass attempt's, before the plan changed
    print(f"joined {len(parts)} passes into {cfg.out}: {result.images} images in {result.classes} classes",
          file=stream, flush=True)
    return result
