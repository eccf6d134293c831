"""The optimization loop, batched channel rendering, and the ``python -m feature_vis.render`` CLI.

Lucid's recipe: FFT + decorrelated-colour parameterization, standard transforms, Adam 0.05 for 512 steps
at 128 px, ReLU gradients redirected for the first 16 steps so that channels dead on the random start can
come alive. Unlike Lucid, one optimization renders a whole batch of images, each with its own objective.

CLI::

    python -m feature_vis.render --model=mobilenet_v1 --out_dir=DIR [--layers=A,B]
        [--channels="A:1,2,5-7;B:0" | --only_graph_nodes=EXPORT_DIR] [--steps=512 --size=128
        --batch_channels=64 --diversity=4 --seed=0]
"""

from __future__ import annotations

import logging
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags

from feature_vis import objectives, outputs, param, sprite, transform
from feature_vis.objectives import Objective
from summit_tf.models import SummitModel, load
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
    jitter = transform.compose(transforms if transforms is not None
                               else transform.standard_transforms(settings.per_image_transforms))
    redirect_steps = settings.relu_redirect_steps
    if redirect_steps and not model.supports_relu_redirect:
        log.warning("%s has no ReLU gradient redirect; rendering without it (dead channels may stay at 0)",
                    model.spec)
        redirect_steps = 0

    def make_step(redirect: bool) -> tf.types.experimental.PolymorphicFunction:
        @tf.function
        def step() -> tf.Tensor:
            with tf.GradientTape() as tape:
                images = image()
                activations = dict(model.features(jitter(images, generator), relu_redirect=redirect))
                activations["input"] = images
                value = objective(activations)
                loss = -tf.reduce_sum(value)
            adam.apply(tape.gradient(loss, variables))
            return value

        return step

    steps = {False: make_step(False), True: make_step(True)} if redirect_steps else {False: make_step(False)}
    meter = Progress(progress_label, total=settings.steps, unit="steps") if progress_label else None
    for i in range(settings.steps):
        steps[i < redirect_steps]()
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
    meter = Progress("feature-vis", total=total, unit="images", every=0.0)
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


FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Model spec (see summit_tf.models.load), e.g. mobilenet_v1.")
flags.DEFINE_string("out_dir", None, "Output folder; images go to OUT_DIR/feature-vis/.")
flags.DEFINE_list("layers", [], "SUMMIT layers to render (default: all, or those named by the selection).")
flags.DEFINE_string("channels", None, "Channels to render, e.g. 'layerA:1,2,5-7;layerB:0' (default: all).")
flags.DEFINE_string("only_graph_nodes", None,
                    "Render only the channels that are nodes of DIR/ag/ag-*.json (SUMMIT graph export).")
flags.DEFINE_integer("steps", 512, "Optimization steps.")
flags.DEFINE_integer("size", 128, "Image size in pixels.")
flags.DEFINE_integer("batch_channels", 64, "Images optimized together (memory knob).")
flags.DEFINE_integer("diversity", 4, "Diverse images per channel (0: none).")
flags.DEFINE_integer("seed", None, "Seed for reproducible renders.")
flags.DEFINE_enum("param", "fft", list(param.PARAMETERIZATIONS), "Image parameterization.")
flags.DEFINE_boolean("sprites", True, "Write a sprite sheet and index per layer.")


def selection_from_flags(model: SummitModel) -> dict[str, list[int]]:
    """The channels to render per layer, validated against the model (ValueError on bad input)."""
    if FLAGS.channels and FLAGS.only_graph_nodes:
        raise ValueError("give --channels or --only_graph_nodes, not both")
    layers = model.check_layers(FLAGS.layers) if FLAGS.layers else list(model.layers)
    if FLAGS.channels:
        wanted = outputs.parse_channels(FLAGS.channels)
    elif FLAGS.only_graph_nodes:
        wanted = outputs.graph_channels(FLAGS.only_graph_nodes)
    else:
        wanted = {layer: list(range(model.channels[layer])) for layer in layers}
    model.check_layers(list(wanted))
    selection = {layer: wanted[layer] for layer in layers if layer in wanted}
    for layer, chans in selection.items():
        bad = [c for c in chans if not 0 <= c < model.channels[layer]]
        if bad:
            raise ValueError(f"{layer} has {model.channels[layer]} channels; out of range: {bad[:10]}")
    if not any(selection.values()):
        raise ValueError("no channels selected")
    return selection


def main(argv: Sequence[str]) -> int:
    try:
        if len(argv) > 1:
            raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
        for name in ("steps", "size", "batch_channels"):
            if FLAGS[name].value < 1:
                raise ValueError(f"--{name} must be positive")
        if FLAGS.diversity < 0:
            raise ValueError("--diversity must be >= 0")
        if not FLAGS.model or not FLAGS.out_dir:
            raise ValueError("--model and --out_dir are required")
        layers_wanted = FLAGS.layers or None
        model = load(FLAGS.model, layers=layers_wanted)
        selection = selection_from_flags(model)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = RenderSettings(size=FLAGS.size, steps=FLAGS.steps, seed=FLAGS.seed,
                              parameterization=FLAGS.param)
    counts = render_to_dir(model, selection, FLAGS.out_dir, settings, batch_channels=FLAGS.batch_channels,
                           diversity=FLAGS.diversity, sprites=FLAGS.sprites)
    print(f"rendered {counts['images']} images in {counts['batches']} batches, {counts['sprites']} sprites "
          f"-> {Path(FLAGS.out_dir) / outputs.FEATURE_VIS}", file=sys.stderr)
    return 0


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, but a bad flag is one error line and exit code 2 like every other bad input."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
