"""Pass 1 of the dataset examples: the top ``n`` images of every channel, kept on the device.

The data is streamed once; per layer a ``[C, n]`` state holds the best spatial maxima, the images' indices
and where the maxima are, merged batch by batch with ``top_k`` (equal values keep the lower image index).
The result is saved as ``dataset-p.json`` so that a later run can skip this pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from summit_tf import data as data_inputs
from summit_tf.models.base import SummitModel
from summit_tf.progress import Progress

Batches = data_inputs.ImageSource | tf.data.Dataset


@dataclass
class Examples:
    """Top images of every channel of one layer: ``[C, n]`` arrays, best first.

    ``index`` is the image's ``index`` in the source (-1 and ``value`` -inf where fewer than ``n`` images
    were seen); ``y``, ``x`` locate the channel's maximum in the layer's ``height`` x ``width`` grid.
    """

    layer: str
    value: np.ndarray
    index: np.ndarray
    y: np.ndarray
    x: np.ndarray
    height: int
    width: int

    @property
    def num_channels(self) -> int:
        return int(self.value.shape[0])


def dataset_of(source: Batches | Callable[[], Batches]) -> tf.data.Dataset:
    """The ``tf.data`` stream of a source, a dataset, or a function making either (a fresh pass)."""
    if callable(source) and not isinstance(source, tf.data.Dataset):
        source = source()
    return source.dataset if isinstance(source, data_inputs.ImageSource) else source


def _merge(state: list[tf.Variable], acts: tf.Tensor, index: tf.Tensor) -> None:
    """Merge one batch's per-channel spatial maxima into the ``[C, n]`` top lists."""
    values, indices, positions = state
    shape = tf.shape(acts)
    flat = tf.reshape(acts, [shape[0], shape[1] * shape[2], shape[3]])
    best = tf.transpose(tf.reduce_max(flat, axis=1))  # [C, B]
    where = tf.transpose(tf.argmax(flat, axis=1, output_type=tf.int32))
    all_indices = tf.concat([indices, tf.broadcast_to(index[None, :], tf.shape(best))], axis=1)
    # Order candidates by image index first: top_k keeps the earlier of equal values, so ties go to the
    # lower index whatever order the stream has (empty slots, index -1, hold -inf and never win).
    order = tf.argsort(all_indices, axis=1, stable=True)
    all_indices = tf.gather(all_indices, order, batch_dims=1)
    all_values = tf.gather(tf.concat([values, best], axis=1), order, batch_dims=1)
    all_positions = tf.gather(tf.concat([positions, where], axis=1), order, batch_dims=1)
    top = tf.math.top_k(all_values, k=values.shape[1], sorted=True)
    values.assign(top.values)
    indices.assign(tf.gather(all_indices, top.indices, batch_dims=1))
    positions.assign(tf.gather(all_positions, top.indices, batch_dims=1))


def top_examples(model: SummitModel, source: Batches, layers: Sequence[str] | None = None, n: int = 10,
                 show_progress: bool = True) -> dict[str, Examples]:
    """Pass 1: the top ``n`` images of every channel of ``layers`` (all SUMMIT layers by default)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    layers = model.check_layers(list(layers) if layers else model.layers)
    probe = model.features(tf.zeros([1, model.input_size, model.input_size, 3]))
    grids = {layer: tuple(int(d) for d in probe[layer].shape[1:3]) for layer in layers}
    state = {layer: [tf.Variable(tf.fill([model.channels[layer], n], -np.inf)),
                     tf.Variable(tf.fill([model.channels[layer], n], tf.constant(-1, tf.int64))),
                     tf.Variable(tf.zeros([model.channels[layer], n], tf.int32))] for layer in layers}

    @tf.function(input_signature=[tf.TensorSpec([None, model.input_size, model.input_size, 3], tf.float32),
                                  tf.TensorSpec([None], tf.int64)])
    def step(images: tf.Tensor, index: tf.Tensor) -> None:
        features = model.features(images)
        for layer in layers:
            _merge(state[layer], features[layer], index)

    total = source.num_records if isinstance(source, data_inputs.ImageSource) else None
    progress = Progress("dataset examples (pass 1)", total=total) if show_progress else None
    for batch in dataset_of(source):
        step(batch["image"], tf.cast(batch["index"], tf.int64))
        if progress:
            progress.update(int(batch["index"].shape[0]))
    if progress:
        progress.finish()
    result = {}
    for layer in layers:
        values, indices, positions = (v.numpy() for v in state[layer])
        height, width = grids[layer]
        result[layer] = Examples(layer, values, indices, (positions // width).astype(np.int32),
                                 (positions % width).astype(np.int32), height, width)
    return result


def to_json(examples: Mapping[str, Examples], **meta: object) -> dict:
    """The index file's content: per layer ``[C, n]`` values (null where empty), indices and positions."""
    layers = {}
    for layer, ex in examples.items():
        value = np.where(np.isfinite(ex.value), ex.value, np.nan).astype(float)
        layers[layer] = {
            "channels": ex.num_channels, "height": ex.height, "width": ex.width,
            "value": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in value],
            "index": ex.index.tolist(), "y": ex.y.tolist(), "x": ex.x.tolist(),
        }
    return {**meta, "layers": layers}


def from_json(content: Mapping) -> dict[str, Examples]:
    result = {}
    for layer, entry in content["layers"].items():
        value = np.array([[-np.inf if v is None else v for v in row] for row in entry["value"]], np.float32)
        result[layer] = Examples(layer, value, np.asarray(entry["index"], np.int64),
                                 np.asarray(entry["y"], np.int32), np.asarray(entry["x"], np.int32),
                                 int(entry["height"]), int(entry["width"]))
    return result
