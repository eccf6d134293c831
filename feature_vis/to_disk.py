"""Feature visualizations written to disk under SUMMIT's names, resumable, with sprite sheets."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from feature_vis import outputs, sprite
from feature_vis.channels import ChannelRenderer, check_pairs
from feature_vis.optimize import RenderSettings
from summit_tf.models import SummitModel
from summit_tf.progress import Progress


def select_channels(model: SummitModel, wanted: Mapping[str, Sequence[int]] | None,
                    layers: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Channels to render per layer (network order): ``wanted`` (None: all) within ``layers`` (None: every
    layer of the model, and then every wanted layer must exist). ValueError on bad input."""
    chosen = model.check_layers(list(layers)) if layers else list(model.layers)
    if wanted is None:
        wanted = {layer: range(model.channels[layer]) for layer in chosen}
    elif not layers:
        model.check_layers(list(wanted))
    selection = {layer: sorted({int(c) for c in wanted[layer]}) for layer in chosen if layer in wanted}
    check_pairs(model, [(layer, c) for layer, chans in selection.items() for c in chans])
    if not any(selection.values()):
        raise ValueError("no channels selected")
    return selection


def even_chunks(items: Sequence, most: int) -> list[list]:
    """``items`` in order, in as few chunks of at most ``most`` as possible, sizes differing by at most 1
    (so padding a short chunk to the longest wastes at most one image per chunk)."""
    if not items:
        return []
    count = -(-len(items) // most)
    size, extra = divmod(len(items), count)
    bounds = np.cumsum([0] + [size + (i < extra) for i in range(count)])
    return [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def replica_devices(strategy: tf.distribute.Strategy | None) -> list[str | None]:
    """The devices a strategy's replicas run on; ``[None]`` (TensorFlow's placement) for one device."""
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return [None]
    if len(strategy.extended.worker_devices) != strategy.num_replicas_in_sync:  # several workers
        raise ValueError("feature visualization spreads over the devices of one machine "
                         "(strategy one_device or mirrored)")
    return list(strategy.extended.worker_devices)


def _placed(device: str | None) -> contextlib.AbstractContextManager:
    return tf.device(device) if device is not None else contextlib.nullcontext()


def _on_devices(devices: Sequence[str | None], batches: Sequence, make: Callable[[], ChannelRenderer],
                render: Callable[[ChannelRenderer, int, list], None]) -> None:
    """``render(renderer, i, batch)`` for every batch. Several devices: each gets its own renderer (own
    variables, optimizer and steps, made and traced here one device after the other) and a thread that
    takes the next batch left; one device: all in this thread."""
    if len(devices) == 1:
        with _placed(devices[0]):
            renderer = make()
            for i, batch in enumerate(batches):
                render(renderer, i, batch)
        return
    devices = devices[:len(batches)]
    renderers = []
    for device in devices:
        with _placed(device):
            renderers.append(make())
            renderers[-1].optimization.trace()
    work: queue.SimpleQueue = queue.SimpleQueue()
    for item in enumerate(batches):
        work.put(item)
    errors: list[BaseException] = []

    def serve(device: str | None, renderer: ChannelRenderer) -> None:
        try:
            with _placed(device):
                while not errors:
                    try:
                        i, batch = work.get_nowait()
                    except queue.Empty:
                        return
                    render(renderer, i, batch)
        except BaseException as e:  # noqa: BLE001 -- re-raised in the calling thread
            errors.append(e)

    threads = [threading.Thread(target=serve, args=pair, daemon=True)
               for pair in zip(devices, renderers, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def render_to_dir(model: SummitModel, selection: Mapping[str, Sequence[int]], out_dir: str | Path,
                  settings: RenderSettings, batch_channels: int = 64, diversity: int = 4,
                  sprites: bool = True, strategy: tf.distribute.Strategy | None = None) -> dict[str, int]:
    """Render every selected channel's image (and ``diversity`` diverse images) into ``out_dir`` under
    SUMMIT's names, skipping those already there (resumable), then rebuild each layer's sprite sheet.

    ``batch_channels`` is the number of images per optimization (the memory knob): that many channels for
    channel images, ``batch_channels // diversity`` channels for diversity images. Channel batches mix
    layers, so a few channels per layer (graph nodes) still fill them; diversity batches take one layer.
    Each kind of batch (channel images; each layer's diversity images) traces its steps once per device.
    ``strategy`` (one machine: ``one_device``, ``mirrored``) spreads the batches over its devices; a
    batch's random start depends only on its channels and ``settings.seed``, so the images are those of
    one device. Gradients are not shared between devices (each batch is its own optimization), so this
    uses the strategy's devices, not ``strategy.run``. Returns counts.
    """
    devices = replica_devices(strategy)
    layers = model.check_layers(list(selection))
    wanted = [(layer, c) for layer in layers for c in sorted(set(int(c) for c in selection[layer]))]
    todo = [p for p in wanted if not outputs.channel_path(out_dir, *p).exists()]
    groups = [(even_chunks(todo, batch_channels), 0)]  # batches sharing one renderer
    if diversity:
        todo = [p for p in wanted
                if not outputs.existing(outputs.diversity_path(out_dir, *p, d) for d in range(diversity))]
        per_layer = max(1, batch_channels // diversity)
        groups += [(even_chunks([p for p in todo if p[0] == layer], per_layer), diversity)
                   for layer in layers]
    groups = [(batches, d) for batches, d in groups if batches]
    plan = sum(len(batches) for batches, _ in groups)
    total = sum(len(batch) * max(1, d) for batches, d in groups for batch in batches)
    meter = Progress("feature-vis", total=total, unit="images")
    lock = threading.Lock()
    done = 0
    for batches, d in groups:
        def make(batches: list = batches, d: int = d) -> ChannelRenderer:
            return ChannelRenderer(model, [layer for batch in batches for layer, _ in batch],
                                   len(batches[0]), settings, diversity=d)

        def render(renderer: ChannelRenderer, i: int, batch: list, d: int = d, first: int = done) -> None:
            kind = f"diversity x{d}" if d else "channel"
            label = f"batch {first + i + 1}/{plan}: {len(batch)} {kind} ({batch[0][0]}:{batch[0][1]} ...)"
            images = renderer.render(batch, progress_label=label)
            for k, (layer, ch) in enumerate(batch):
                if d:
                    for j in range(d):
                        outputs.save_jpeg(outputs.diversity_path(out_dir, layer, ch, j), images[k, j])
                else:
                    outputs.save_jpeg(outputs.channel_path(out_dir, layer, ch), images[k])
            with lock:
                meter.update(len(batch) * max(1, d))

        _on_devices(devices, batches, make, render)
        done += len(batches)
    if plan:
        meter.finish()
    written = 0
    if sprites:
        for layer in layers:
            written += sprite.write_layer_sprite(out_dir, layer, model.channels[layer]) is not None
    return {"batches": plan, "images": total, "sprites": written}
