"""A run resolved against its model and data before anything is counted: layers, links, class slots and
excluded channels, with ``AggregateError`` saying what does not fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tensorflow as tf

from summit_tf.aggregation.config import AggregateConfig
from summit_tf.imagenet import NUM_CLASSES
from summit_tf.models.base import Link, SummitModel


class AggregateError(ValueError):
    """A problem with the user's input (flags, data, model); the CLI reports it and exits with 2."""


class SettingsMismatch(AggregateError):
    """A resume found a finished output or a checkpoint counted with other settings, classes or workers:
    counting again (``--overwrite``) is the remedy, which callers keeping a cache of runs may take."""


class Source(Protocol):
    """What the engine reads from an input pipeline (``summit_tf.data.ImageSource``)."""

    spec: str
    dataset: tf.data.Dataset
    num_records: int | None
    classes: Sequence[int] | None


OpenSource = Callable[[int], Source]
"""``open_source(skip_records)``: the configured input stream, from record ``skip_records`` on.

The stream's records are numbered after filtering and sharding (``max_images`` caps records, not
readable images), batches carry each image's record number as ``index``: the contract of
``summit_tf.data.load``.
"""


@dataclass
class Plan:
    """The run resolved against the model: layers, links, class slots and excluded channels."""

    layers: list[str]
    links: list[Link]
    classes: np.ndarray  # int32 [K], ascending: slot -> ImageNet class id
    excluded: dict[str, np.ndarray]  # channel space -> bool [C]

    def slot_table(self) -> np.ndarray:
        """int32 [1000]: class id -> accumulator row, -1 for classes outside the run."""
        table = np.full(NUM_CLASSES, -1, np.int32)
        table[self.classes] = np.arange(self.classes.size, dtype=np.int32)
        return table


def _space_layer(space: str) -> str:
    """The SUMMIT layer an inner channel space belongs to (``mixed4a/3x3_bottleneck`` -> ``mixed4a``)."""
    return space.split("/")[0]


def run_layers(model: SummitModel, cfg: AggregateConfig) -> list[str]:
    """The SUMMIT layers the run counts, in network order (all of the model's by default)."""
    try:
        return model.check_layers(cfg.layers) if cfg.layers else list(model.layers)
    except ValueError as e:
        raise AggregateError(str(e)) from None


def run_record(model: SummitModel, cfg: AggregateConfig) -> dict:
    """The record stored with the run's output and checkpoints: ``cfg.record()`` with the layers counted."""
    return {**cfg.record(), "layers": run_layers(model, cfg)}


def make_plan(model: SummitModel, cfg: AggregateConfig, source_classes: Sequence[int] | None) -> Plan:
    """Check the config against the model and the data; ``AggregateError`` says what does not fit."""
    layers = run_layers(model, cfg)
    kept = set(layers)
    links = [link for link in model.links
             if _space_layer(link.src) in kept and _space_layer(link.dst) in kept]

    spaces = model.channel_spaces()
    excluded = {}
    for space, ids in cfg.exclude_channels.items():
        if space not in spaces:
            raise AggregateError(f"exclude_channels: unknown layer {space!r}; known: {', '.join(spaces)}")
        if max(ids) >= spaces[space]:
            raise AggregateError(f"exclude_channels: {space} has {spaces[space]} channels, got {max(ids)}")
        mask = np.zeros(spaces[space], bool)
        mask[list(ids)] = True
        excluded[space] = mask
    for layer in layers:
        if layer in excluded and excluded[layer].all():
            raise AggregateError(f"exclude_channels excludes every channel of {layer}")
    for link in (link for link in links if link.kind != "identity"):  # identity: one candidate, any k
        allowed = link.cin - int(excluded[link.src].sum() if link.src in excluded else 0)
        if cfg.influence_topk > allowed:
            raise AggregateError(f"influence_topk={cfg.influence_topk} exceeds the {allowed} selectable "
                                 f"input channels of link {link.name}")

    outputs = np.asarray(model.class_to_output)
    if source_classes is not None:
        classes = np.asarray(sorted(set(int(c) for c in source_classes)), np.int32)
    elif cfg.classes is not None:
        classes = np.asarray(cfg.classes, np.int32)
    else:
        classes = np.flatnonzero(outputs >= 0).astype(np.int32)
    if classes.size == 0:
        raise AggregateError(f"empty data: no classes in {cfg.data}")
    if classes.min() < 0 or classes.max() >= NUM_CLASSES:
        raise AggregateError(f"class ids must lie in 0..{NUM_CLASSES - 1}, the data has {classes.min()}.."
                             f"{classes.max()}")
    missing = classes[outputs[classes] < 0]
    if missing.size:
        raise AggregateError(f"a class count that does not fit the model: {model.spec} has no output for "
                             f"classes {missing.tolist()[:10]} ({missing.size} of {classes.size})")
    return Plan(layers, links, classes, excluded)
