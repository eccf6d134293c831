"""What an aggregation run computes and over which images: one dataclass, split the way merge needs it.

``counting()`` holds the settings that define what a count means (reductions, selection, influence
options, exclusions, preprocessing, model, layers): shards are mergeable only when these agree.
``image_selection()`` says which images were counted (data spec, shard, caps, class filter): merging sums
over different image selections. Both go into the HDF5 ``config`` attribute; settings that only change
speed or bookkeeping (batch size, checkpoint interval, strategy, memory budget) do not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from summit_tf import spec_grammar
from summit_tf.imagenet import NUM_CLASSES
from summit_tf.vocabulary import (
    ACTIVATION_REDUCERS,
    INFLUENCE_REDUCERS,
    JPEG_RATIOS,
    RESIZE_MODES,
    STRATEGIES,
    parse_select,
)

SUMMIT_INFLUENCE_STRIDE = 3  # the original code's depthwise_conv2d strides


@dataclass(frozen=True)
class AggregateConfig:
    """Everything an aggregation run needs; validated on construction (``ValueError`` names the field,
    which is also the command-line flag's name)."""

    model: str
    data: str
    out: str
    layers: tuple[str, ...] | None = None
    activation_reduce: str = "max"
    activation_select: str = "mass:0.03"
    influence_reduce: str = "max"
    influence_stride: int | None = None  # None: 1, or SUMMIT's 3 under summit_compat
    influence_topk: int = 5
    exclude_channels: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    summit_compat: bool = False
    resize: str = "squash"
    jpeg_max_ratio: int = 1  # > 1: large JPEGs decoded downscaled (DCT domain); changes counts a little
    batch_size: int = 32  # per replica
    strategy: str = "auto"  # summit_tf.vocabulary.STRATEGIES
    max_images: int | None = None
    max_images_per_class: int | None = None
    classes: tuple[int, ...] | None = None
    num_shards: int = 1
    shard_index: int = 0
    checkpoint_every: int = 0  # batches; 0: by time only
    checkpoint_minutes: float = 10.0  # 0: by batch count only
    resume: bool = False
    overwrite: bool = False
    data_service: str | None = None  # grpc://HOST:PORT of a tf.data service that decodes the images
    device_memory_budget: int | None = None  # accumulator bytes; None: half a GPU's memory, no limit on CPU

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(bool(self.model), "model is required")
        check(bool(self.data), "data is required")
        check(bool(self.out), "out is required")
        check(self.activation_reduce in ACTIVATION_REDUCERS,
              f"activation_reduce must be one of {ACTIVATION_REDUCERS}, got {self.activation_reduce!r}")
        check(self.influence_reduce in INFLUENCE_REDUCERS,
              f"influence_reduce must be one of {INFLUENCE_REDUCERS}, got {self.influence_reduce!r}")
        check(self.influence_stride is None or self.influence_stride >= 1,
              f"influence_stride must be >= 1, got {self.influence_stride}")
        check(self.influence_topk >= 1, f"influence_topk must be >= 1, got {self.influence_topk}")
        parse_select(self.activation_select)
        check(self.resize in RESIZE_MODES, f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        check(self.jpeg_max_ratio in JPEG_RATIOS,
              f"jpeg_max_ratio must be one of {JPEG_RATIOS}, got {self.jpeg_max_ratio}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        check(self.max_images is None or self.max_images >= 1,
              f"max_images must be >= 1, got {self.max_images}")
        check(self.max_images_per_class is None or self.max_images_per_class >= 1,
              f"max_images_per_class must be >= 1, got {self.max_images_per_class}")
        check(self.num_shards >= 1, f"num_shards must be >= 1, got {self.num_shards}")
        check(0 <= self.shard_index < self.num_shards,
              f"shard_index must lie in 0..{self.num_shards - 1}, got {self.shard_index}")
        check(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        check(self.checkpoint_minutes >= 0,
              f"checkpoint_minutes must be >= 0, got {self.checkpoint_minutes}")
        check(not (self.resume and self.overwrite), "resume and overwrite exclude each other")
        service = self.data_service
        check(service is None or re.fullmatch(r"grpc://[^\s:/]+:\d+", service) is not None,
              f"data_service must look like grpc://HOST:PORT, got {service!r}")
        check(service is None or not (self.checkpoint_every or self.checkpoint_minutes or self.resume),
              "data_service delivers batches in any order, so a checkpoint could not say where to resume: "
              "set checkpoint_minutes=0 and no checkpoint_every or resume")
        check(self.device_memory_budget is None or self.device_memory_budget >= 1,
              f"device_memory_budget must be >= 1 byte, got {self.device_memory_budget}")
        check(self.classes is None or (len(self.classes) > 0 and min(self.classes) >= 0
                                       and max(self.classes) < NUM_CLASSES),
              f"classes must be ImageNet class ids in 0..{NUM_CLASSES - 1}, got {self.classes}")
        if self.layers is not None:
            check(len(self.layers) > 0 and all(self.layers), "layers must name at least one layer")

    @property
    def stride(self) -> int:
        """The influence subsampling stride actually used."""
        if self.influence_stride is not None:
            return self.influence_stride
        return SUMMIT_INFLUENCE_STRIDE if self.summit_compat else 1

    def counting(self) -> dict:
        """Settings that define what one count means; merged shards must agree on all of them."""
        return {
            "model": self.model,
            "layers": list(self.layers) if self.layers else None,
            "activation_reduce": self.activation_reduce,
            "activation_select": self.activation_select,
            "influence_reduce": self.influence_reduce,
            "influence_stride": self.stride,
            "influence_topk": self.influence_topk,
            "exclude_channels": spec_grammar.format_channels(self.exclude_channels),
            "summit_compat": self.summit_compat,
            "resize": self.resize,
            "jpeg_max_ratio": self.jpeg_max_ratio,
        }

    def image_selection(self) -> dict:
        """Which images were counted."""
        return {
            "data": self.data,
            "max_images": self.max_images,
            "max_images_per_class": self.max_images_per_class,
            "classes": list(self.classes) if self.classes else None,
            "num_shards": self.num_shards,
            "shard_index": self.shard_index,
        }

    def record(self) -> dict:
        """The JSON stored with the output: every setting that changes the counts."""
        return {**self.counting(), **self.image_selection()}


COUNTING_KEYS = tuple(AggregateConfig(model="m", data="d", out="o").counting())
IMAGE_SELECTION_KEYS = tuple(AggregateConfig(model="m", data="d", out="o").image_selection())
# What a setting added after a file was written counted as (jpeg_max_ratio: 1); settings every file states
# (model, data, layers) have none.
_DEFAULTS = {key: value for key, value in AggregateConfig(model="m", data="d", out="o").record().items()
             if key not in ("model", "data", "layers")}


def with_defaults(stored: Mapping) -> dict:
    """A stored record (an output's, a checkpoint's, one image selection of a merged file) with the default
    of every setting it lacks, so that files written before a setting existed compare by what they
    counted."""
    return {**_DEFAULTS, **stored}


def differences(stored: Mapping, record: Mapping) -> dict[str, tuple]:
    """``{setting: (stored, now)}`` where a stored record and a run's record disagree (compared as JSON,
    the way they are stored; settings the stored one lacks at their defaults)."""
    old, now = (json.loads(json.dumps(with_defaults(r), sort_keys=True)) for r in (stored, record))
    return {key: (old.get(key), now.get(key)) for key in sorted(set(old) | set(now))
            if old.get(key) != now.get(key)}
