"""The optimization loop of feature visualization: Lucid's recipe, one batch of images at a time.

Lucid's recipe: FFT + decorrelated-colour parameterization, standard transforms, Adam 0.05 at 128 px,
steps 0..512 (Lucid's ``thresholds=(512,)``: 513 updates), ReLU gradients redirected on steps 0..16 (Lucid:
while ``global_step <= 16``) so that channels dead on the random start can come alive, and channel
objectives on the layer's pre-activation tensor (Lucid's ``channel("mixed4a_pre_relu", n)``). The model
computes only the tensors the objective reads (``model.tensors``). Unlike Lucid, one optimization renders
a whole batch of images, each with its own objective. The redirect is defined for ReLU/ReLU6 only: a batch
whose objectives read no ReLU layer (swish, GELU, a residual sum: ``SummitModel.redirect_applies``) renders
without it.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from feature_vis import param, transform
from feature_vis.objectives import Objective
from summit_tf.models import SummitModel
from summit_tf.progress import Progress

log = logging.getLogger(__name__)

ParamFn = Callable[[int, np.random.Generator], tf.Module]  # (batch, rng) -> images module


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
        if self.seed is not None and self.seed < 0:  # NumPy's SeedSequence takes non-negative ints only
            raise ValueError(f"seed must be >= 0 or None, got {self.seed}")


def lucid_adam(learning_rate: float = 0.05) -> keras.optimizers.Optimizer:
    """The optimizer Lucid used, TF1's ``AdamOptimizer``: Keras' Adam computes the same update (epsilon
    outside the bias correction) once given TF1's epsilon, 1e-8 (Keras' default is 1e-7)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-8)


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
    """A batch of images optimized for one objective: the parameterization, the optimizer's state, the
    transforms' random generator and the traced steps (plain and ReLU-redirected).

    As in Lucid's ``render_vis``, the parameterization and the optimizer can be passed in: ``param_f(batch,
    rng)`` returns a ``tf.Module`` whose call gives ``[batch, S, S, 3]`` images in [0, 1] (default: from
    ``settings``, see :mod:`param`), ``optimizer`` any Keras optimizer (default :func:`lucid_adam`).

    :meth:`run` restarts from a fresh random start each time, so an objective that reads variables (as
    :class:`ChannelRenderer`'s) renders batch after batch with its steps traced once: tracing the model's
    forward and backward pass costs seconds, as much as tens of steps on CPU.
    """

    def __init__(self, model: SummitModel, objective: Objective, batch: int,
                 settings: RenderSettings = RenderSettings(),
                 transforms: Sequence[transform.Transform] | None = None,
                 param_f: ParamFn | None = None,
                 optimizer: keras.optimizers.Optimizer | None = None) -> None:
        self.batch, self.settings = batch, settings
        # Exactly the model tensors the objective reads: an early layer never runs the later ones.
        self.keys = tuple(sorted(objective.keys - {"input"}))
        unknown = sorted(set(self.keys) - set(model.tensor_keys()))
        if unknown:
            raise ValueError(f"the objective reads {unknown}, which {model.spec} does not compute; "
                             f"known: {', '.join(model.tensor_keys())}")
        self.param_f = param_f or functools.partial(_image_param, settings)
        self.image = self.param_f(batch, np.random.default_rng(0))
        variables = list(self.image.trainable_variables)
        self.optimizer = optimizer or lucid_adam(settings.learning_rate)
        self.optimizer.build(variables)
        self._optimizer_start = [v.numpy() for v in self.optimizer.variables]
        self.generator = tf.random.Generator.from_seed(0)
        augment = transform.compose(transforms if transforms is not None
                                    else transform.standard_transforms(settings.per_image_transforms))
        self.redirect_steps = settings.relu_redirect_steps
        if self.redirect_steps is not None and not model.supports_relu_redirect:
            log.warning("%s has no ReLU gradient redirect; rendering without it "
                        "(dead channels may stay at 0)", model.spec)
            self.redirect_steps = None
        if self.redirect_steps is not None and not model.redirect_applies(self.keys):
            log.info("no ReLU gradient redirect: the objective reads no ReLU layer (%s)", ", ".join(
                self.keys))
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
                self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

            return step

        self.plain_step = make_step(False)
        self.redirected_step = make_step(True) if self.redirect_steps is not None else None

    def trace(self) -> None:
        """Trace the steps now, e.g. one device after the other before threads run them: tracing nested
        ``tf.function``s (the model's) from several threads at once is not safe in TF."""
        for step in (self.plain_step, self.redirected_step):
            if step is not None:
                step.get_concrete_function()

    def run(self, key: str = "", progress_label: str | None = None,
            on_step: Callable[[int], None] | None = None) -> np.ndarray:
        """Optimize from the random start of ``key`` (see :func:`random_sources`); ``[batch, S, S, 3]``."""
        rng, tf_seed = random_sources(self.settings.seed, key)
        start = self.param_f(self.batch, rng)
        for mine, fresh in zip(self.image.trainable_variables, start.trainable_variables, strict=True):
            mine.assign(fresh)
        for variable, value in zip(self.optimizer.variables, self._optimizer_start, strict=True):
            variable.assign(value)  # step count and moments back to a first step
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


def render_vis(model: SummitModel, objective: Objective, batch: int,
               settings: RenderSettings = RenderSettings(),
               transforms: Sequence[transform.Transform] | None = None, key: str = "",
               progress_label: str | None = None, on_step: Callable[[int], None] | None = None,
               param_f: ParamFn | None = None,
               optimizer: keras.optimizers.Optimizer | None = None) -> np.ndarray:
    """Optimize ``batch`` images to maximize the sum of ``objective``; ``[batch, S, S, 3]`` in [0, 1].

    ``transforms`` defaults to :func:`transform.standard_transforms`. ``key`` separates the random streams
    of different renders under one seed. ``progress_label`` turns on progress lines (steps/s, ETA);
    ``on_step(i)`` is called after step ``i`` (0..``settings.steps``: timing, snapshots). The objective
    names the tensors it reads (for a layer's pre-activation,
    :func:`feature_vis.channels.objective_tensors`). Traces the steps anew on every call (any objective);
    :class:`feature_vis.channels.ChannelRenderer` reuses them for channel images.
    """
    optimization = Optimization(model, objective, batch, settings, transforms, param_f, optimizer)
    return optimization.run(key, progress_label, on_step)
