"""The optimization loop, batched channel rendering into SUMMIT's files, and the CLI entry point.

Lucid's recipe: FFT + decorrelated-colour parameterization, standard transforms, Adam 0.05 for 512 steps
at 128 px, ReLU gradients redirected for the first 16 steps so that channels dead on the random start can
come alive. Unlike Lucid, one optimization renders a whole batch of images, each with its own objective.

CLI: ``python -m feature_vis.render --model=... --out_dir=DIR ...`` (flags in :mod:`feature_vis.cli`).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from feature_vis import objectives, outputs, param, sprite, transform
from feature_vis.objectives import Objective
from summit_tf.models import SummitModel
from summit_tf.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSettings:
    """Lucid's defaults. ``seed=None`` draws fresh randomness; an int makes renders reproducible."""

    size: int = 128
    steps: int = 512
    learning_rate: float = 0.05
    relu_redirect_steps: int = 16
    parameterization: str = "fft"
    decorrelate: bool = True
    sd: float = param.DEFAULT_SD
    decay_power: float = 1.0
    per_image_transforms: bool = True
    seed: int | None = None


class Adam(tf.Module):
    """Adam as TF1's ``tf.train.AdamOptimizer`` (which Lucid used): epsilon outside the bias correction."""

    def __init__(self, variables: Sequence[tf.Variable], learning_rate: float, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__(name="adam")
        self.targets = list(variables)
        self.lr, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.targets]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.targets]
        self.t = tf.Variable(0.0, trainable=False)

    def apply(self, gradients: Sequence[tf.Tensor]) -> None:
        """One descent step along ``gradients`` (of a loss to minimize)."""
        self.t.assign_add(1.0)
        step = self.lr * tf.sqrt(1.0 - self.beta2 ** self.t) / (1.0 - self.beta1 ** self.t)
        for var, m, v, g in zip(self.targets, self.m, self.v, gradients, strict=True):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(step * m / (tf.sqrt(v) + self.epsilon))


def random_sources(seed: int | None, key: str) -> tuple[np.random.Generator, tf.random.Generator]:
    """NumPy (initial parameters) and TF (transforms) generators; with a seed, fixed per ``key``."""
    if seed is None:
        return np.random.default_rng(), tf.random.Generator.from_non_deterministic_state()
    sequence = np.random.SeedSequence([seed, zlib.crc32(key.encode())])
    tf_seed = int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(sequence), tf.random.Generator.from_seed(tf_seed)


def render(model: SummitModel, objective: Objective, batch: int, settings: RenderSettings = RenderSettings(),
           transforms: Sequence[transform.Transform] | None = None, key: str = "",
           progress_label: str | None = None, on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """Optimize ``batch`` images to maximize the sum of ``objective``; ``[batch, S, S, 3]`` in [0, 1].

    ``transforms`` defaults to :func:`transform.standard_transforms`. ``key`` separates the random streams
    of different renders under one seed. ``progress_label`` turns on progress lines (steps/s, ETA);
    ``on_step(i)`` is called after step ``i`` (timing, snapshots).
    """
    rng, generator = random_sources(settings.seed, key)
    image = param.image_param(settings.parameterization, batch, settings.size, sd=settings.sd,
                              decay_power=settings.decay_power, decorrelate=settings.decorrelate, rng=rng)
    variables = list(image.trainable_variables)
    adam = Adam(variables, settings.learning_rate)
    augment = transform.compose(transforms if transforms is not None
                                else transform.standard_transforms(settings.per_image_transforms))
    redirect_steps = settings.relu_redirect_steps
    if redirect_steps and not model.supports_relu_redirect:
        log.warning("%s has no ReLU gradient redirect; rendering without it (dead channels may stay at 0)",
                    model.spec)
        redirect_steps = 0

    def make_step(redirect: bool) -> Callable[[], tf.Tensor]:
        @tf.function
        def step() -> tf.Tensor:
            with tf.GradientTape() as tape:
                images = image()
                activations = dict(model.features(augment(images, generator), relu_redirect=redirect))
                activations["input"] = images
                value = objective(activations)
                loss = -tf.reduce_sum(value)
            adam.apply(tape.gradient(loss, variables))
            return value

        return step

    plain_step = make_step(False)
    redirected_step = make_step(True) if redirect_steps else plain_step
    meter = Progress(progress_label, total=settings.steps, unit="steps") if progress_label else None
    for i in range(settings.steps):
        (redirected_step if i < redirect_steps else plain_step)()
        if meter:
            meter.update()
        if on_step:
            on_step(i)
    if meter:
        meter.finish()
    return image().numpy()


def render_channels(model: SummitModel, pairs: Sequence[tuple[str, int]], settings: RenderSettings,
                    diversity: int = 0, progress_label: str | None = None) -> np.ndarray:
    """One image per (layer, channel) (``[N, S, S, 3]``), or with ``diversity=d`` d diverse images each
    (``[N, d, S, S, 3]``, Lucid's ``channel - 1e2 * diversity`` within each channel's group), all in one
    optimization; the channels may come from different layers."""
    pairs = [(layer, int(ch)) for layer, ch in pairs]
    key = f"{pairs[0][0]}:{pairs[0][1]}:{len(pairs)}:{diversity}"
    if diversity:
        per_image = [pair for pair in pairs for _ in range(diversity)]
        objective = objectives.diverse_layer_channels(per_image, diversity)
        images = render(model, objective, len(per_image), settings, key=key, progress_label=progress_label)
        return images.reshape(len(pairs), diversity, *images.shape[1:])
    objective = objectives.layer_channels(pairs)
    return render(model, objective, len(pairs), settings, key=key, progress_label=progress_label)


def chunks(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def render_to_dir(model: SummitModel, selection: Mapping[str, Sequence[int]], out_dir: str | Path,
                  settings: RenderSettings, batch_channels: int = 64, diversity: int = 4,
                  sprites: bool = True) -> dict[str, int]:
    """Render every selected channel's image (and ``diversity`` diverse images) into ``out_dir`` under
    SUMMIT's names, skipping those already there (resumable), then rebuild each layer's sprite sheet.

    ``batch_channels`` is the number of images per optimization (the memory knob): that many channels for
    channel images, ``batch_channels // diversity`` channels for diversity images. Batches mix layers, so
    a few channels per layer (graph nodes) still fill them. Returns counts.
    """
    layers = model.check_layers(list(selection))
    wanted = [(layer, c) for layer in layers for c in sorted(set(int(c) for c in selection[layer]))]
    todo = [p for p in wanted if not outputs.channel_path(out_dir, *p).exists()]
    plan = [(batch, 0) for batch in chunks(todo, batch_channels)]
    if diversity:
        todo = [p for p in wanted
                if not outputs.existing(outputs.diversity_path(out_dir, *p, d) for d in range(diversity))]
        plan += [(batch, diversity) for batch in chunks(todo, max(1, batch_channels // diversity))]
    total = sum(len(batch) * max(1, d) for batch, d in plan)
    meter = Progress("feature-vis", total=total, unit="images")
    for n, (batch, d) in enumerate(plan, 1):
        kind = f"diversity x{d}" if d else "channel"
        label = f"batch {n}/{len(plan)}: {len(batch)} {kind} ({batch[0][0]}:{batch[0][1]} ...)"
        images = render_channels(model, batch, settings, diversity=d, progress_label=label)
        for i, (layer, ch) in enumerate(batch):
            if d:
                for j in range(d):
                    outputs.save_jpeg(outputs.diversity_path(out_dir, layer, ch, j), images[i, j])
            else:
                outputs.save_jpeg(outputs.channel_path(out_dir, layer, ch), images[i])
        meter.update(len(batch) * max(1, d))
    if plan:
        meter.finish()
    written = 0
    if sprites:
        for layer in layers:
            written += sprite.write_layer_sprite(out_dir, layer, model.channels[layer]) is not None
    return {"batches": len(plan), "images": total, "sprites": written}


if __name__ == "__main__":
    from feature_vis.cli import run

    run()
