"""One aggregation run from a config: the library entry point behind ``python -m summit_tf.aggregate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from summit_tf.aggregation.config import AggregateConfig

if TYPE_CHECKING:
    from summit_tf.aggregation.engine import RunSummary


def aggregate(cfg: AggregateConfig, stream: TextIO | None = None) -> RunSummary:
    """Load the model and data ``cfg`` names and count A and every I into ``cfg.out``.

    Raises ``ValueError`` (``engine.AggregateError``) or ``FileNotFoundError`` for bad input. TensorFlow is
    imported here, on first use, so that parsing a config stays free of it.
    """
    from summit_tf import data, models
    from summit_tf.aggregation import engine

    engine.check_output(cfg)
    if engine.finished(cfg):
        return engine.finished_summary(cfg, stream)
    model = models.load(cfg.model, layers=cfg.layers, summit_compat=cfg.summit_compat)

    def open_source(skip_records: int) -> data.ImageSource:
        return data.load(cfg.data, image_size=model.input_size, resize=cfg.resize,
                         half_pixel_centers=not cfg.summit_compat, batch_size=cfg.batch_size,
                         num_shards=cfg.num_shards, shard_index=cfg.shard_index, skip_records=skip_records,
                         max_images=cfg.max_images, max_images_per_class=cfg.max_images_per_class,
                         classes=cfg.classes)

    return engine.aggregate(cfg, model, open_source, stream=stream)
