"""Pass 2 of the dataset examples: crop the receptive field of each kept maximum and save it as a JPEG
under SUMMIT's published name ``OUT/feature-vis/dataset-p/<layer>-<channel>-dataset-p-<rank>.jpg``."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from summit_tf import atomic
from summit_tf.examples.fields import receptive_fields
from summit_tf.examples.top import Batches, Examples, dataset_of
from summit_tf.models.base import SummitModel
from summit_tf.progress import Progress

SUBDIR = os.path.join("feature-vis", "dataset-p")
JPEG_QUALITY = 95  # with full-resolution colour (4:4:4): patches are small


def patch_path(out_dir: str, layer: str, channel: int, rank: int) -> str:
    """SUMMIT's published name of a dataset example (ranks start at 0)."""
    return os.path.join(out_dir, SUBDIR, f"{layer}-{channel}-dataset-p-{rank}.jpg")


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
    for batch in dataset_of(source):
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
