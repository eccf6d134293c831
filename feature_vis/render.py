"""The optimization loop, batched channel rendering into SUMMIT's files, and the CLI entry point.

Lucid's recipe: FFT + decorrelated-colour parameterization, standard transforms, Adam 0.05 at 128 px,
steps 0..512 (Lucid's ``thresholds=(512,)``: 513 updates), ReLU gradients redirected on steps 0..16 (Lucid:
while ``global_step <= 16``) so that channels dead on the random start can come alive, and channel
objectives on the layer's pre-activation tensor (Lucid's ``channel("mixed4a_pre_relu", n)``). The model
computes only the tensors the objective reads (``model.tensors``). Unlike Lucid, one optimization renders
a whole batch of images, each with its own objective, and a run of many batches traces its steps once
(:class:`ChannelRenderer`): the channels live in variables.

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
    """Lucid's defaults. ``seed=None`` draws fresh randomness; an int makes renders reproducible.

    Steps are numbered as in Lucid: ``steps`` is the last one, so there are ``steps + 1`` updates, and the
    ReLU gradient redirect is on for steps ``0..relu_redirect_steps`` (``None``: never).
    ``pre_activation`` makes channel objectives read a layer's tensor before its ReLU/ReLU6 where the model
    has one (Lucid's ``mixed4a_pre_relu``); ``False`` reads the layer's output.
    """

    size: int = 128
    steps: int = 512
    learning_rate: float = 0.05
    relu_redirect_steps: int | None = 16
    pre_activation: bool = True
    parameterization: str = "fft"
    decorrelate: bool = True
    sd: float = param.DEFAULT_SD
    decay_power: float = 1.0
    per_image_transforms: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.size < 1 or self.steps < 0:
            raise ValueError(f"need size >= 1 and steps >= 0, got size {self.size} and steps {self.steps}")
        if self.relu_redirect_steps is not None and self.relu_redirect_steps < 0:
            raise ValueError(f"relu_redirect_steps must be >= 0 or None, got {self.relu_redirect_steps}")


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

    def reset(self) -> None:
        """Forget the moments and the step count: the next :meth:`apply` is a first step again."""
        for slot in (*self.m, *self.v):
            slot.assign(tf.zeros_like(slot))
        self.t.assign(0.0)


def random_sources(seed: int | None, key: str) -> tuple[np.random.Generator, int]:
    """NumPy generator (initial parameters) and TF seed (transforms); with a seed, fixed per ``key``."""
    sequence = np.random.SeedSequence(None if seed is None else [seed, zlib.crc32(key.encode())])
    tf_seed = int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(sequence), tf_seed


def _image_param(settings: RenderSettings, batch: int,
                 rng: np.random.Generator) -> param.PixelImage | param.FFTImage:
    return param.image_param(settings.parameterization, batch, settings.size, sd=settings.sd,
                             decay_power=settings.decay_power, decorrelate=settings.decorrelate, rng=rng)


class Optimization:
    """A batch of images optimized for one objective: the parameterization, Adam's state, the transforms'
    random generator and the traced steps (plain and ReLU-redirected).

    :meth:`run` restarts from a fresh random start each time, so an objective that reads variables (as
    :class:`ChannelRenderer`'s) renders batch after batch with its steps traced once: tracing the model's
    forward and backward pass costs seconds, as much as tens of steps on CPU.
    """

    def __init__(self, model: SummitModel, objective: Objective, batch: int,
                 settings: RenderSettings = RenderSettings(),
                 transforms: Sequence[transform.Transform] | None = None) -> None:
        self.batch, self.settings = batch, settings
        # Exactly the model tensors the objective reads: an early layer never runs the later ones.
        self.keys = tuple(sorted(objective.keys - {"input"}))
        unknown = sorted(set(self.keys) - set(model.tensor_keys()))
        if unknown:
            raise ValueError(f"the objective reads {unknown}, which {model.spec} does not compute; "
                             f"known: {', '.join(model.tensor_keys())}")
        self.image = _image_param(settings, batch, np.random.default_rng(0))
        variables = list(self.image.trainable_variables)
        self.adam = Adam(variables, settings.learning_rate)
        self.generator = tf.random.Generator.from_seed(0)
        augment = transform.compose(transforms if transforms is not None
                                    else transform.standard_transforms(settings.per_image_transforms))
        self.redirect_steps = settings.relu_redirect_steps
        if self.redirect_steps is not None and not model.supports_relu_redirect:
            log.warning("%s has no ReLU gradient redirect; rendering without it "
                        "(dead channels may stay at 0)", model.spec)
            self.redirect_steps = None

        def make_step(redirect: bool) -> tf.types.experimental.PolymorphicFunction:
            # autograph=False: no tensor-dependent Python control flow here, and converting the transforms
            # and objectives took a second of every trace.
            @tf.function(autograph=False)
            def step() -> None:
                with tf.GradientTape() as tape:
                    images = self.image()
                    augmented = augment(images, self.generator)
                    activations = model.tensors(augmented, self.keys, relu_redirect=redirect)
                    activations["input"] = images
                    loss = -tf.reduce_sum(objective(activations))
                self.adam.apply(tape.gradient(loss, variables))

            return step

        self.plain_step = make_step(False)
        self.redirected_step = make_step(True) if self.redirect_steps is not None else None

    def run(self, key: str = "", progress_label: str | None = None,
            on_step: Callable[[int], None] | None = None) -> np.ndarray:
        """Optimize from the random start of ``key`` (see :func:`random_sources`); ``[batch, S, S, 3]``."""
        rng, tf_seed = random_sources(self.settings.seed, key)
        start = _image_param(self.settings, self.batch, rng)
        for mine, fresh in zip(self.image.trainable_variables, start.trainable_variables, strict=True):
            mine.assign(fresh)
        self.adam.reset()
        self.generator.reset_from_seed(tf_seed)
        updates = self.settings.steps + 1  # Lucid's steps 0..512
        meter = Progress(progress_label, total=updates, unit="steps") if progress_label else None
        for i in range(updates):
            redirect = self.redirect_steps is not None and i <= self.redirect_steps
            (self.redirected_step if redirect else self.plain_step)()
            if meter:
                meter.update()
            if on_step:
                on_step(i)
        if meter:
            meter.finish()
        return self.image().numpy()


def render(model: SummitModel, objective: Objective, batch: int, settings: RenderSettings = RenderSettings(),
           transforms: Sequence[transform.Transform] | None = None, key: str = "",
           progress_label: str | None = None, on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """Optimize ``batch`` images to maximize the sum of ``objective``; ``[batch, S, S, 3]`` in [0, 1].

    ``transforms`` defaults to :func:`transform.standard_transforms`. ``key`` separates the random streams
    of different renders under one seed. ``progress_label`` turns on progress lines (steps/s, ETA);
    ``on_step(i)`` is called after step ``i`` (0..``settings.steps``: timing, snapshots). The objective
    names the tensors it reads (for a layer's pre-activation, :func:`objective_tensors`). Traces the steps
    anew on every call (any objective); :class:`ChannelRenderer` reuses them for channel images.
    """
    return Optimization(model, objective, batch, settings, transforms).run(key, progress_label, on_step)


def objective_tensors(model: SummitModel, layers: Sequence[str],
                      pre_activation: bool = True) -> dict[str, str]:
    """The tensor each layer's channel objective reads: its pre-activation where the model has one and
    ``pre_activation`` is set (Lucid's default), else the layer's output."""
    chosen = {layer: model.pre_activations.get(layer, layer) if pre_activation else layer for layer in layers}
    plain = [layer for layer, key in chosen.items() if key == layer]
    if pre_activation and plain:
        log.info("%s: no pre-activation tensor for %s; their objectives read the layer output",
                 model.spec, ", ".join(plain))
    return chosen


def channel_key(pairs: Sequence[tuple[str, int]], diversity: int = 0) -> str:
    """The random-stream key of a batch of channels: its first channel, size and diversity."""
    return f"{pairs[0][0]}:{pairs[0][1]}:{len(pairs)}:{diversity}"


class ChannelRenderer:
    """Renders batches of up to ``batch`` channels of ``layers`` with one traced optimization.

    Which channel each image maximizes lives in int variables that the objective reads, so every batch
    reuses the traced steps; a shorter batch is padded with copies of its last channel (discarded).
    Channel images (``diversity=0``) may mix any of ``layers``; diversity images (``d`` per channel,
    Lucid's ``channel - 1e2 * diversity`` per group) take one layer, because Gram matrices over the whole
    batch for every layer would cost more than the model.
    """

    def __init__(self, model: SummitModel, layers: Sequence[str], batch: int,
                 settings: RenderSettings = RenderSettings(), diversity: int = 0,
                 transforms: Sequence[transform.Transform] | None = None) -> None:
        if batch < 1 or diversity < 0:
            raise ValueError(f"need batch >= 1 and diversity >= 0, got {batch} and {diversity}")
        self.model, self.layers = model, model.check_layers(list(dict.fromkeys(layers)))
        if not self.layers or (diversity and len(self.layers) != 1):
            need = "one layer (diversity images render one layer at a time)" if diversity else "layers"
            raise ValueError(f"need {need}, got {len(self.layers)}")
        self.batch, self.diversity = batch, diversity
        images = batch * max(1, diversity)
        self.layer_of = tf.Variable(tf.zeros([images], tf.int32), trainable=False)
        self.channel_of = tf.Variable(tf.zeros([images], tf.int32), trainable=False)
        read = objective_tensors(model, self.layers, settings.pre_activation)
        if diversity:
            objective = objectives.diverse_channels(self.layers[0], self.channel_of, diversity,
                                                    channel_tensor=read[self.layers[0]])
        else:
            objective = objectives.channel_table([read[layer] for layer in self.layers], self.layer_of,
                                                 self.channel_of)
        self.optimization = Optimization(model, objective, images, settings, transforms)

    def render(self, pairs: Sequence[tuple[str, int]], key: str | None = None,
               progress_label: str | None = None, on_step: Callable[[int], None] | None = None) -> np.ndarray:
        """Images of ``pairs`` (at most ``batch``): ``[N, S, S, 3]``, or ``[N, d, S, S, 3]`` with diversity.

        ``key`` (default :func:`channel_key`) picks the random start under ``settings.seed``; the rest as
        :func:`render`.
        """
        pairs = [(layer, int(ch)) for layer, ch in pairs]
        if not 1 <= len(pairs) <= self.batch:
            raise ValueError(f"expected 1 to {self.batch} channels, got {len(pairs)}")
        for layer, ch in pairs:
            if layer not in self.layers:
                raise ValueError(f"layer {layer!r} is not one of this renderer's: {', '.join(self.layers)}")
            if not 0 <= ch < self.model.channels[layer]:
                raise ValueError(f"{layer} has {self.model.channels[layer]} channels; got {ch}")
        padded = pairs + pairs[-1:] * (self.batch - len(pairs))
        repeat = max(1, self.diversity)
        self.layer_of.assign(np.repeat([self.layers.index(layer) for layer, _ in padded], repeat))
        self.channel_of.assign(np.repeat([ch for _, ch in padded], repeat))
        key = channel_key(pairs, self.diversity) if key is None else key
        images = self.optimization.run(key, progress_label, on_step)[:len(pairs) * repeat]
        return images.reshape(len(pairs), self.diversity, *images.shape[1:]) if self.diversity else images

    def tracing_count(self) -> int:
        """How often the steps were traced (one per step function when all batches reused them)."""
        steps = [self.optimization.plain_step, self.optimization.redirected_step]
        return sum(step.experimental_get_tracing_count() for step in steps if step is not None)


def render_channels(model: SummitModel, pairs: Sequence[tuple[str, int]], settings: RenderSettings,
                    diversity: int = 0, progress_label: str | None = None) -> np.ndarray:
    """One image per (layer, channel) (``[N, S, S, 3]``), or with ``diversity=d`` d diverse images each
    (``[N, d, S, S, 3]``, Lucid's ``channel - 1e2 * diversity`` within each channel's group), all in one
    optimization; the channels may come from different layers. For many batches, reuse a
    :class:`ChannelRenderer` (traced once)."""
    pairs = [(layer, int(ch)) for layer, ch in pairs]
    layers = list(dict.fromkeys(layer for layer, _ in pairs))
    if diversity and len(layers) > 1:  # one optimization: each layer's Gram matrices on its own images
        per_image = [pair for pair in pairs for _ in range(diversity)]
        read = objective_tensors(model, layers, settings.pre_activation)
        objective = objectives.diverse_layer_channels(per_image, diversity, tensors=read)
        images = render(model, objective, len(per_image), settings, key=channel_key(pairs, diversity),
                        progress_label=progress_label)
        return images.reshape(len(pairs), diversity, *images.shape[1:])
    renderer = ChannelRenderer(model, layers, len(pairs), settings, diversity=diversity)
    return renderer.render(pairs, progress_label=progress_label)


def even_chunks(items: Sequence, most: int) -> list[list]:
    """``items`` in order, in as few chunks of at most ``most`` as possible, sizes differing by at most 1
    (so padding a short chunk to the longest wastes at most one image per chunk)."""
    if not items:
        return []
    count = -(-len(items) // most)
    size, extra = divmod(len(items), count)
    bounds = np.cumsum([0] + [size + (i < extra) for i in range(count)])
    return [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def render_to_dir(model: SummitModel, selection: Mapping[str, Sequence[int]], out_dir: str | Path,
                  settings: RenderSettings, batch_channels: int = 64, diversity: int = 4,
                  sprites: bool = True) -> dict[str, int]:
    """Render every selected channel's image (and ``diversity`` diverse images) into ``out_dir`` under
    SUMMIT's names, skipping those already there (resumable), then rebuild each layer's sprite sheet.

    ``batch_channels`` is the number of images per optimization (the memory knob): that many channels for
    channel images, ``batch_channels // diversity`` channels for diversity images. Channel batches mix
    layers, so a few channels per layer (graph nodes) still fill them; diversity batches take one layer.
    Each kind of batch (channel images; each layer's diversity images) traces its steps once. Returns
    counts.
    """
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
    n = 0
    for batches, d in groups:
        renderer = ChannelRenderer(model, [layer for batch in batches for layer, _ in batch],
                                   len(batches[0]), settings, diversity=d)
        for batch in batches:
            n += 1
            kind = f"diversity x{d}" if d else "channel"
            label = f"batch {n}/{plan}: {len(batch)} {kind} ({batch[0][0]}:{batch[0][1]} ...)"
            images = renderer.render(batch, progress_label=label)
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
    return {"batches": plan, "images": total, "sprites": written}


if __name__ == "__main__":
    from feature_vis.cli import run

    run()
