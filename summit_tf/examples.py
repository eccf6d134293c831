"""Dataset examples: for every channel, the image patches of a data set that excite it most.

Pass 1 streams the data once and keeps, on the device, the top ``n`` images of every channel of the chosen
layers by the channel's spatial maximum, with where that maximum is (``[C, n]`` state per layer, merged
batch by batch with ``top_k``; equal values keep the lower image index). Pass 2 streams the same,
deterministic source again and crops, for every kept (channel, image), the receptive field of the unit at
that maximum: the input pixels that can change it, found as the footprint of the gradient of the unit
w.r.t. the input (union over a few random images, so units that are dead on one image still show their
field), clipped to the image. Patches are saved with SUMMIT's published names
``OUT/feature-vis/dataset-p/<layer>-<channel>-dataset-p-<rank>.jpg`` (rank 0 = strongest), next to
``dataset-p.json`` with the values, image indices and positions.

    python -m summit_tf.examples --model=mobilenet_v1 --data=folder:DIR --out_dir=OUT [--layers=...]
        [--num_examples=10] [--channels='Conv2d_3_pointwise:1,2;Conv2d_5_pointwise:7']
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image

from summit_tf import atomic, spec_grammar, vocabulary
from summit_tf import data as data_inputs
from summit_tf.cli import fail, log_to_stderr, parse
from summit_tf.models.base import SummitModel
from summit_tf.progress import Progress

SUBDIR = os.path.join("feature-vis", "dataset-p")
INDEX_FILE = "dataset-p.json"
JPEG_QUALITY = 95  # with full-resolution colour (4:4:4): patches are small
FIELD_REPEATS = 3
FIELD_CHUNK = 8  # positions per gradient batch (x FIELD_REPEATS images): bounded memory

Batches = data_inputs.ImageSource | tf.data.Dataset

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags
flags.DEFINE_string("model", None, "model spec, e.g. mobilenet_v1", flag_values=FLAGS)
flags.DEFINE_string("data", None, f"data spec: {data_inputs.SPEC_HELP}", flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "output folder (patches go to OUT/feature-vis/dataset-p/)",
                    flag_values=FLAGS)
flags.DEFINE_string("layers", None, "comma-separated SUMMIT layers (default: all)", flag_values=FLAGS)
flags.DEFINE_integer("num_examples", 10, "top images kept per channel", flag_values=FLAGS)
flags.DEFINE_string("channels", None, "save only these: 'layer:1,2,5-7;layer2:5' (with one --layers: "
                    "'1,2,5-7')", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "images per batch", flag_values=FLAGS)
flags.DEFINE_enum("resize", "squash", list(vocabulary.RESIZE_MODES), "squash (SUMMIT) or center_crop",
                  flag_values=FLAGS)
flags.DEFINE_integer("max_images", None, "use the first N images", flag_values=FLAGS)
flags.DEFINE_integer("max_images_per_class", None, "use the first N images of each class", flag_values=FLAGS)


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


def patch_path(out_dir: str, layer: str, channel: int, rank: int) -> str:
    """SUMMIT's published name of a dataset example (ranks start at 0)."""
    return os.path.join(out_dir, SUBDIR, f"{layer}-{channel}-dataset-p-{rank}.jpg")


def _dataset(source: Batches | Callable[[], Batches]) -> tf.data.Dataset:
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
    for batch in _dataset(source):
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


def receptive_fields(model: SummitModel, layer: str, grid: tuple[int, int], positions: Sequence[int],
                     repeats: int = FIELD_REPEATS, seed: int = 0) -> dict[int, tuple[int, int, int, int]]:
    """Input boxes ``(top, bottom, left, right)`` (inclusive) seen by the units on the diagonal of a layer.

    Rows depend on the unit's row only and columns on its column only, so the unit ``(min(i, H - 1),
    min(i, W - 1))`` gives the rows of grid row ``i`` and the columns of grid column ``i`` at once. A unit
    whose gradient is zero on every random image (dead) gets the whole image.
    """
    size = model.input_size
    height, width = grid
    rng = np.random.default_rng(seed)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    wanted = sorted(set(int(p) for p in positions))
    for start in range(0, len(wanted), FIELD_CHUNK):
        chunk = np.repeat(wanted[start:start + FIELD_CHUNK], repeats)
        ys, xs = np.minimum(chunk, height - 1), np.minimum(chunk, width - 1)
        images = tf.constant(rng.uniform(0, 1, (len(chunk), size, size, 3)).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(images)
            acts = model.features(images)[layer]
            units = tf.gather_nd(acts, np.stack([np.arange(len(chunk)), ys, xs], axis=1))
            objective = tf.reduce_sum(units)
        touched = np.any(tape.gradient(objective, images).numpy() != 0, axis=-1)
        touched = touched.reshape(-1, repeats, size, size).any(axis=1)
        for i, mask in zip(wanted[start:start + FIELD_CHUNK], touched, strict=True):
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if not len(rows):
                boxes[i] = (0, size - 1, 0, size - 1)
            else:
                boxes[i] = (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))
    return boxes


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


@dataclass
class _Targets:
    """The patches still to write, sorted by image index."""

    index: np.ndarray
    boxes: np.ndarray  # [T, 4]: top, bottom, left, right
    paths: list[str]


def _targets(model: SummitModel, examples: Mapping[str, Examples], out_dir: str,
             channels: Mapping[str, Sequence[int]] | None) -> _Targets:
    index, boxes, paths = [], [], []
    for layer, ex in examples.items():
        if channels is not None and layer not in channels:
            continue
        chosen = np.arange(ex.num_channels) if channels is None else np.unique(np.asarray(channels[layer]))
        keep = np.zeros(ex.value.shape, dtype=bool)
        keep[chosen] = ex.index[chosen] >= 0
        todo = [(c, r) for c, r in zip(*np.nonzero(keep), strict=True)
                if not os.path.exists(patch_path(out_dir, layer, int(c), int(r)))]
        if not todo:
            continue
        c, r = (np.asarray(v) for v in zip(*todo, strict=True))
        ys, xs = ex.y[c, r], ex.x[c, r]
        field = receptive_fields(model, layer, (ex.height, ex.width), np.concatenate([ys, xs]))
        index.append(ex.index[c, r])
        boxes.append(np.array([[*field[y][:2], *field[x][2:]] for y, x in zip(ys, xs, strict=True)]))
        paths += [patch_path(out_dir, layer, int(ci), int(ri)) for ci, ri in zip(c, r, strict=True)]
    if not index:
        return _Targets(np.zeros(0, np.int64), np.zeros((0, 4), np.int64), [])
    index_all = np.concatenate(index)
    order = np.argsort(index_all, kind="stable")
    return _Targets(index_all[order], np.concatenate(boxes)[order], [paths[i] for i in order])


def save_patches(model: SummitModel, source: Batches | Callable[[], Batches],
                 examples: Mapping[str, Examples], out_dir: str,
                 channels: Mapping[str, Sequence[int]] | None = None,
                 show_progress: bool = True) -> int:
    """Pass 2: crop and save the receptive-field patch of every kept (channel, image) not saved yet.

    ``source`` must give the images of pass 1 with the same ``index`` values (the same spec and options).
    ``channels`` restricts the layers and channels saved. Returns the number of patches written.
    """
    os.makedirs(os.path.join(out_dir, SUBDIR), exist_ok=True)
    targets = _targets(model, examples, out_dir, channels)
    if not len(targets.index):
        return 0
    last = int(targets.index[-1])
    progress = Progress("dataset examples (pass 2)", total=len(targets.paths), unit="patches") \
        if show_progress else None
    written = 0
    for batch in _dataset(source):
        batch_index = batch["index"].numpy()
        lo = np.searchsorted(targets.index, batch_index.min(), side="left")
        hi = np.searchsorted(targets.index, batch_index.max(), side="right")
        if hi > lo:
            images = batch["image"].numpy()
            slots = {int(v): k for k, v in enumerate(batch_index)}
            for t in range(lo, hi):
                slot = slots.get(int(targets.index[t]))
                if slot is None:
                    continue
                top, bottom, left, right = targets.boxes[t]
                atomic.write_bytes(targets.paths[t], _jpeg(images[slot, top:bottom + 1, left:right + 1]))
                written += 1
                if progress:
                    progress.update()
        if batch_index.max() >= last:
            break
    if progress:
        progress.finish()
    return written


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


def _check_channels(model: SummitModel, channels: Mapping[str, Sequence[int]]) -> None:
    model.check_layers(list(channels))
    for layer, chosen in channels.items():
        bad = [c for c in chosen if not 0 <= c < model.channels[layer]]
        if bad:
            raise ValueError(f"channels {bad} out of range for {layer} ({model.channels[layer]} channels)")


def run(model_spec: str, data_spec: str, out_dir: str, layers: Sequence[str] | None = None,
        num_examples: int = 10, channels: Mapping[str, Sequence[int]] | None = None, batch_size: int = 32,
        resize: str = "squash", max_images: int | None = None,
        max_images_per_class: int | None = None) -> int:
    """Both passes, resumable: pass 1 is reused from ``dataset-p.json`` (which must come from the same
    model, data and options), pass 2 skips patches already on disk. ``channels`` restricts the saved
    channels of the layers it names. Returns the number of patches written."""
    from summit_tf import models

    model = models.load(model_spec)
    if channels:
        _check_channels(model, channels)
        # Layers named only in --layers keep all their channels.
        channels = {**{layer: range(model.channels[layer]) for layer in model.check_layers(layers or [])},
                    **channels}
        layers = list(channels)
    layers = model.check_layers(list(layers) if layers else model.layers)

    def source() -> data_inputs.ImageSource:
        return data_inputs.load(data_spec, image_size=model.input_size, resize=resize, batch_size=batch_size,
                                max_images=max_images, max_images_per_class=max_images_per_class)

    meta = {"model": model_spec, "data": data_spec, "num_examples": num_examples, "resize": resize,
            "image_size": model.input_size, "max_images": max_images,
            "max_images_per_class": max_images_per_class}
    index_path = os.path.join(out_dir, SUBDIR, INDEX_FILE)
    known: dict[str, Examples] = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            saved = json.load(f)
        differ = [k for k, v in meta.items() if saved.get(k) != v]
        if differ:
            raise ValueError(f"{index_path} belongs to another run ({', '.join(differ)} differ); "
                             f"use another --out_dir or remove it")
        known = from_json(saved)
    missing = [layer for layer in layers if layer not in known]
    if missing:
        known.update(top_examples(model, source(), missing, n=num_examples))
        os.makedirs(os.path.dirname(index_path), exist_ok=True)
        atomic.write_json(index_path, to_json(known, **meta))
    examples = {layer: known[layer] for layer in layers}
    return save_patches(model, source, examples, out_dir, channels=channels)


def main(argv: Sequence[str]) -> int:
    """Run the command line on ``argv`` (program name first); returns the exit code (2: bad input)."""
    parsed = parse(FLAGS, argv, __doc__ or "")
    if isinstance(parsed, int):
        return parsed
    log_to_stderr()
    try:
        if not FLAGS.model or not FLAGS.data or not FLAGS.out_dir:
            raise ValueError("--model, --data and --out_dir are required")
        if FLAGS.num_examples < 1:
            raise ValueError(f"--num_examples must be >= 1, got {FLAGS.num_examples}")
        layers = [s.strip() for s in FLAGS.layers.split(",") if s.strip()] if FLAGS.layers else None
        only_layer = layers[0] if layers and len(layers) == 1 else None
        channels = spec_grammar.parse_channels(FLAGS.channels, "--channels", default_layer=only_layer) or None
        written = run(FLAGS.model, FLAGS.data, FLAGS.out_dir, layers, FLAGS.num_examples,
                      channels, FLAGS.batch_size, FLAGS.resize, FLAGS.max_images,
                      FLAGS.max_images_per_class)
    except (ValueError, FileNotFoundError) as err:
        return fail(str(err))
    print(f"wrote {written} dataset-example patches under {os.path.join(FLAGS.out_dir, SUBDIR)}")
    return 0


if __name__ == "__main__":  # no console script: ``run`` is the library entry point used by experiments/
    sys.exit(main(sys.argv))
