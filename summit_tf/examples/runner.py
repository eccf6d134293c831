"""Both passes of the dataset examples for one model and data set, resumable, from one config."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from summit_tf import atomic, vocabulary
from summit_tf import data as data_inputs
from summit_tf.examples.patches import SUBDIR, save_patches
from summit_tf.examples.top import Examples, from_json, to_json, top_examples
from summit_tf.models.base import SummitModel

INDEX_FILE = "dataset-p.json"
OPTIONAL_META = {"summit_compat", "classes"}  # recorded only when set: older files stay readable


@dataclass(frozen=True)
class ExamplesConfig:
    """What a dataset-examples run needs; validated on construction (``ValueError`` names the field).

    ``channels`` restricts the saved channels of the layers it names; layers named only in ``layers``
    keep all their channels. ``summit_compat`` ranks images as the original SUMMIT code saw them (the model
    adapter's compat inputs, resizing without half-pixel centres), like the aggregation under that flag.
    ``classes`` reads only those classes' images (a run over a few ImageNet classes need not stream all).
    """

    model: str
    data: str
    out_dir: str
    layers: tuple[str, ...] | None = None
    num_examples: int = 10
    channels: Mapping[str, Sequence[int]] = field(default_factory=dict)
    batch_size: int = 32
    resize: str = "squash"
    max_images: int | None = None
    max_images_per_class: int | None = None
    summit_compat: bool = False
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("model", "data", "out_dir"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        if self.num_examples < 1:
            raise ValueError(f"num_examples must be >= 1, got {self.num_examples}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.resize not in vocabulary.RESIZE_MODES:
            raise ValueError(f"resize must be one of {vocabulary.RESIZE_MODES}, got {self.resize!r}")
        for name in ("max_images", "max_images_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def index_meta(self, image_size: int) -> dict:
        """What ``dataset-p.json`` records: a saved pass 1 is reused only when all of it matches."""
        return {"model": self.model, "data": self.data, "num_examples": self.num_examples,
                "resize": self.resize, "image_size": image_size, "max_images": self.max_images,
                "max_images_per_class": self.max_images_per_class,
                **({"summit_compat": True} if self.summit_compat else {}),
                **({"classes": sorted(set(self.classes))} if self.classes else {})}


def _check_channels(model: SummitModel, channels: Mapping[str, Sequence[int]]) -> None:
    model.check_layers(list(channels))
    for layer, chosen in channels.items():
        bad = [c for c in chosen if not 0 <= c < model.channels[layer]]
        if bad:
            raise ValueError(f"channels {bad} out of range for {layer} ({model.channels[layer]} channels)")


def run(cfg: ExamplesConfig) -> int:
    """Both passes, resumable: pass 1 is reused from ``dataset-p.json`` (which must come from the same
    model, data and options), pass 2 skips patches already on disk. Returns the number of patches written."""
    from summit_tf import models

    named = list(dict.fromkeys([*(cfg.layers or ()), *cfg.channels]))  # beyond the default layers too
    model = models.load(cfg.model, layers=named or None, summit_compat=cfg.summit_compat)
    layers: Sequence[str] | None = cfg.layers
    channels: dict[str, Sequence[int]] | None = None
    if cfg.channels:
        _check_channels(model, cfg.channels)
        channels = {**{layer: range(model.channels[layer]) for layer in model.check_layers(layers or [])},
                    **cfg.channels}
        layers = list(channels)
    layers = model.check_layers(list(layers) if layers else model.layers)

    def source() -> data_inputs.ImageSource:
        return data_inputs.load(cfg.data, image_size=model.input_size, resize=cfg.resize,
                                half_pixel_centers=not cfg.summit_compat, batch_size=cfg.batch_size,
                                max_images=cfg.max_images, max_images_per_class=cfg.max_images_per_class,
                                classes=cfg.classes)

    meta = cfg.index_meta(model.input_size)
    index_path = os.path.join(cfg.out_dir, SUBDIR, INDEX_FILE)
    known: dict[str, Examples] = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            saved = json.load(f)
        differ = [k for k in sorted(set(meta) | (OPTIONAL_META & set(saved))) if saved.get(k) != meta.get(k)]
        if differ:
            raise ValueError(f"{index_path} belongs to another run ({', '.join(differ)} differ); "
                             f"use another out_dir or remove it")
        known = from_json(saved)
    missing = [layer for layer in layers if layer not in known]
    if missing:
        known.update(top_examples(model, source(), missing, n=cfg.num_examples))
        atomic.write_json(index_path, to_json(known, **meta))
    examples = {layer: known[layer] for layer in layers}
    return save_patches(model, source, examples, cfg.out_dir, channels=channels)
