"""One aggregation run from a config: the library entry point behind ``python -m summit_tf.aggregate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from summit_tf.aggregation.config import AggregateConfig

if TYPE_CHECKING:
    import tensorflow as tf

    from summit_tf.aggregation.engine import RunSummary


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
        if engine.finished(cfg):
            return engine.finished_summary(cfg, stream)
    files = None
    if replicas.num_workers > 1 and cfg.data.startswith("tfrecord:"):
        files = len(tfrecords.list_files(cfg.data.partition(":")[2]))
    shards, shard = worker_shard(cfg, replicas.num_workers, replicas.worker_index, files)
    model = models.load(cfg.model, layers=cfg.layers, summit_compat=cfg.summit_compat)

    def open_source(skip_records: int) -> data.ImageSource:
        return data.load(cfg.data, image_size=model.input_size, resize=cfg.resize,
                         half_pixel_centers=not cfg.summit_compat, batch_size=cfg.batch_size,
                         num_shards=shards, shard_index=shard, skip_records=skip_records,
                         max_images=cfg.max_images, max_images_per_class=cfg.max_images_per_class,
                         classes=cfg.classes)

    return engine.aggregate(cfg, model, open_source, stream=stream, replicas=replicas)


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
