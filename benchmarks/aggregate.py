"""Aggregation speed, side by side on the same model and the same batches.

``python -m benchmarks.aggregate [--model=mobilenet_v1] [--batch_size=16] [--batches=4] [--data=random]``
``python -m benchmarks.aggregate --model=inception_v1:FIXTURE [--nooriginal]``

``inception_v1:FIXTURE`` is Lucid's InceptionV1 structure with random weights
(``synthetic.inception_v1``, written to a temporary folder): the cost does not depend on the
weights. Prints, per batch: the plain forward pass (``model.features``), the engine's full aggregation
step (A for every layer and I for every link, ``--stride``) and its ratio to the forward pass; then the
parts of the step timed alone on the same batches' features: A (every layer's selection) and I per link
group (InceptionV1: 1x1, 3x3, 5x5, pool_reduce and bottleneck links; others: kind and kernel size),
with their share of the step. The parts are timed interleaved, ``--repeats`` passes over the batches,
the fastest pass counts; the first batch is run once before (tracing). The 1-minute load average is
printed with the figures. Then (unless ``--nooriginal``) the original SUMMIT algorithm
(``benchmarks/original_summit.py``) runs once on the same batches, between two passes of the engine's step:
the speed-up over the mean of those two passes, and a check that its A and I counts equal the engine's
(~1 image/s on InceptionV1).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import flags

from benchmarks import machine
from benchmarks.original_summit import OriginalSummit
from summit_tf import assets, models
from summit_tf.aggregation import plan as run_plan
from summit_tf.aggregation import step as run_step
from summit_tf.aggregation.channel_selection import parse_select
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.cli import entry_point, run_command
from summit_tf.data import source
from summit_tf.models import inception_v1
from summit_tf.models.base import Link, SummitModel
from synthetic import inception_v1 as inception_fixture

FLAGS = flags.FlagValues()  # private: benchmarks.device imports this module beside others

flags.DEFINE_string("model", "mobilenet_v1", "model spec (summit_tf.models.load)", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 16, "images per batch", flag_values=FLAGS)
flags.DEFINE_integer("batches", 4, "timed batches (all three methods see the same ones)", flag_values=FLAGS)
flags.DEFINE_enum("data", "imagenette", ["random", "imagenette"],
                  "random uniform images, or real Imagenette2 validation images from shared/",
                  flag_values=FLAGS)
flags.DEFINE_string("activation_select", "mass:0.03", "A selection (the engine's --activation_select)",
                    flag_values=FLAGS)
flags.DEFINE_integer("topk", 5, "influence top-k", flag_values=FLAGS)
flags.DEFINE_integer("stride", 1, "influence stride", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "random images and labels", flag_values=FLAGS)
flags.DEFINE_integer("repeats", 3, "interleaved timed passes over the batches (the fastest counts)",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_boolean("original", True, "also run the original SUMMIT algorithm and compare its counts",
                     flag_values=FLAGS)

FIXTURE = "inception_v1:FIXTURE"
ALL_CLASSES = 1000

IMAGENETTE_CLASSES = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)


def make_batches(size: int, batch_size: int, batches: int, data: str = "random",
                 seed: int = 0) -> list[tuple[tf.Tensor, np.ndarray]]:
    """``batches`` batches of images in [0, 1] with class ids, held in memory (timing excludes I/O):
    ``data`` "random" (uniform) or "imagenette" (real validation images from shared/)."""
    n = batch_size * batches
    if data == "random":
        rng = np.random.default_rng(seed)
        images = rng.random((n, size, size, 3), dtype=np.float32)
        labels = rng.choice(IMAGENETTE_CLASSES, n).astype(np.int32)
    else:
        folder = assets.shared_path("datasets", "imagenette2-224", "val")
        per_class = -(-n // len(IMAGENETTE_CLASSES))
        loaded = source.load(f"folder:{folder}", image_size=size, batch_size=n,
                             max_images_per_class=per_class)
        batch = next(iter(loaded.dataset))
        order = np.random.default_rng(seed).permutation(int(batch["label"].shape[0]))[:n]
        images, labels = batch["image"].numpy()[order], batch["label"].numpy()[order].astype(np.int32)
    return [(tf.constant(images[s:s + batch_size]), labels[s:s + batch_size])
            for s in range(0, n, batch_size)]


def load_model(spec: str, layers: list[str] | None = None) -> SummitModel:
    """``models.load``, and ``inception_v1:FIXTURE``: the structural fixture, from a temporary folder."""
    if spec != FIXTURE:
        return models.load(spec, layers=layers)
    with tempfile.TemporaryDirectory() as folder:
        pb, _ = inception_fixture.write_fixture(Path(folder))
        return models.load(f"inception_v1:{pb}", layers=layers)


def link_group(link: Link) -> str:
    """InceptionV1 links by branch (both bottlenecks together), other links by kind and kernel size."""
    branch = link.name.rpartition("/")[2]
    if branch in inception_v1.BOTTLENECKS:
        return "bottleneck"
    if branch in inception_v1.BRANCHES:
        return branch
    return f"{link.kind} {link.kernel.shape[0]}x{link.kernel.shape[1]}"


def timed(run: Callable, batches: list) -> float:
    """Seconds for one pass of ``run(*batch)`` over the batches."""
    t0 = time.perf_counter()
    for batch in batches:
        run(*batch)
    return time.perf_counter() - t0


def fastest(parts: dict[str, Callable], batches: list, repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` passes per part, the parts interleaved within each repeat."""
    passes = machine.interleaved(
        {name: functools.partial(timed, run, batches) for name, run in parts.items()}, repeats)
    return {name: min(seconds) for name, seconds in passes.items()}


def around(engine: Callable[[], float], other: Callable[[], float]) -> tuple[float, float]:
    """(the mean of one ``engine`` pass just before and one just after ``other``'s, ``other``'s): a side
    timed once is compared with the engine under the same load, not with its fastest pass."""
    before = engine()
    seconds = other()
    return (before + engine()) / 2, seconds


def forward_and_step(model: SummitModel, plan: run_plan.Plan, cfg: AggregateConfig,
                     jit: bool = False) -> tuple[Callable, Callable, run_step.Accumulators]:
    """The plain forward pass and the engine's aggregation step as ``part(images, labels, features)``
    timers (each waits for the device); ``jit``: both compiled whole by XLA (``jit_compile``)."""
    size = model.input_size
    image_spec = tf.TensorSpec([None, size, size, 3], tf.float32)
    forward = tf.function(model.features, input_signature=[image_spec], jit_compile=jit)
    acc = run_step.Accumulators(model, plan)
    step = run_step.make_step(model, plan, acc, cfg)
    if jit:  # the same Python step, traced again for XLA: the engine's function stays as it is
        step = tf.function(step.python_function, input_signature=step.input_signature, jit_compile=True,
                           autograph=False)

    def run_forward(x: tf.Tensor, y: np.ndarray, f: object = None) -> None:
        forward(x)["logits"].numpy()

    def run_step_(x: tf.Tensor, y: np.ndarray, f: object = None) -> None:
        step(x, tf.constant(y))
        acc.vars["count"].numpy()

    return run_forward, run_step_, acc


def zero(acc: run_step.Accumulators) -> None:
    """Every counter back to zero (count from zero after tracing)."""
    for var in acc.vars.values():
        var.assign(tf.zeros_like(var))


def main(argv: list[str]) -> int:
    def body() -> int:
        tf.get_logger().setLevel("ERROR")  # the baseline's per-link functions trip TF's retracing warning
        kind, tau = parse_select(FLAGS.activation_select)
        if kind != "mass" and FLAGS.original:
            raise ValueError("the original SUMMIT baseline implements mass:TAU selection only")
        model = load_model(FLAGS.model)
        cfg = AggregateConfig(model=model.spec, data=FLAGS.data, out="-",
                              activation_select=FLAGS.activation_select, influence_topk=FLAGS.topk,
                              influence_stride=FLAGS.stride, batch_size=FLAGS.batch_size)
        batches = make_batches(model.input_size, FLAGS.batch_size, FLAGS.batches, FLAGS.data, FLAGS.seed)
        plan = run_plan.make_plan(model, cfg, sorted({int(c) for _, y in batches for c in y}))
        return report(model, cfg, plan, batches, float(tau))

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)


def report(model: SummitModel, cfg: AggregateConfig, plan: run_plan.Plan, batches: list, tau: float) -> int:
    n = sum(int(y.size) for _, y in batches)
    size = model.input_size
    groups: dict[str, list[Link]] = {}
    for link in plan.links:
        groups.setdefault(link_group(link), []).append(link)
    print(f"{FLAGS.model}: {len(plan.layers)} layers, {len(plan.links)} links "
          f"({', '.join(f'{len(v)} {k}' for k, v in groups.items())}), {FLAGS.batches} batches of "
          f"{FLAGS.batch_size} {FLAGS.data} images, select {cfg.activation_select}, "
          f"top-{cfg.influence_topk}, stride {cfg.stride}; {os.cpu_count()} CPUs, {machine.load()}",
          flush=True)

    run_forward, run_aggregate, acc = forward_and_step(model, plan, cfg)
    per_class = acc.nbytes() / plan.classes.size
    print(f"accumulators (int32): {per_class / 2**20:.1f} MiB per class, {ALL_CLASSES:,} classes "
          f"{ALL_CLASSES * per_class / 2**30:.1f} GiB", flush=True)

    forward = tf.function(model.features, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    feats = [dict(forward(x)) for x, _ in batches]
    spec = {key: tf.TensorSpec([None, *value.shape[1:]], value.dtype) for key, value in feats[0].items()}

    def on_features(links: list[Link] | None) -> Callable:
        """A's selections (``links`` None) or these links' top inputs, like the step: unknown batch size."""
        def part(f: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            if links is None:
                return run_step.layer_selections(f, plan, cfg)
            return run_step.link_top_inputs(f, links, plan, cfg)

        return tf.function(part, input_signature=[spec], autograph=False)

    selections = on_features(None)
    tops = {name: on_features(links) for name, links in groups.items()}
    # every part reads its batch's images, labels and features; the numpy() calls wait for the device
    parts = {
        "forward": run_forward,
        "aggregate": run_aggregate,
        "A": lambda x, y, f: [v.numpy() for v in selections(f).values()],
        **{f"I {name}": lambda x, y, f, fn=fn: [v.numpy() for v in fn(f).values()]
           for name, fn in tops.items()},
    }
    timed_batches = [(x, y, f) for (x, y), f in zip(batches, feats, strict=True)]
    for run in parts.values():
        run(*timed_batches[0])  # trace
    zero(acc)
    before = machine.load()
    best = fastest(parts, timed_batches, FLAGS.repeats)
    t_forward, t_agg = best["forward"], best["aggregate"]
    per_batch = 1000 / FLAGS.batches
    print(f"plain forward        {n / t_forward:8.1f} images/s   {per_batch * t_forward:7.0f} ms/batch")
    print(f"summit-tf aggregate  {n / t_agg:8.1f} images/s   {per_batch * t_agg:7.0f} ms/batch   "
          f"ratio to forward {t_forward / t_agg:.2f} ({machine.since(before)}; "
          f"fastest of {FLAGS.repeats})")
    print("share of the aggregation step, each part timed alone on the same batches' features:")
    rest = t_agg - sum(best[name] for name in parts if name != "aggregate")
    for name in [*parts, "rest"]:
        if name != "aggregate":
            t = rest if name == "rest" else best[name]
            print(f"  {name:20s} {per_batch * t:8.0f} ms/batch  {100 * t / t_agg:5.1f} %")
    print("  (rest: the step minus its parts: scatter-adds, prediction counts, overlap)", flush=True)
    if not FLAGS.original:
        return 0

    original = OriginalSummit(model, plan.layers, plan.links, plan.slot_table(), tau,
                              cfg.influence_topk, cfg.stride)
    original.trace(forward(batches[0][0][:1]))  # outside the timing
    before = machine.load()
    t_engine, t_orig = around(lambda: timed(run_aggregate, timed_batches),
                              lambda: timed(lambda x, y: original.update(forward(x), y), batches))
    passes = FLAGS.repeats + 2  # the step counted each batch once per repeat and per pass around the original
    counters = acc.vars
    same_a = all(np.array_equal(counters[run_step.a_key(layer)].numpy(), passes * original.A[layer].ravel())
                 for layer in plan.layers)
    same_i = all(np.array_equal(counters[run_step.i_key(name)].numpy(), passes * counts.ravel())
                 for name, counts in original.I.items())
    print(f"original SUMMIT      {n / t_orig:8.1f} images/s   summit-tf speed-up {t_orig / t_engine:.1f}x "
          f"(the engine's mean of one pass before and one after, {n / t_engine:.1f} images/s; "
          f"{machine.since(before)})")
    print(f"counts identical: A {'yes' if same_a else 'NO'}, I {'yes' if same_i else 'NO'}", flush=True)
    return 0 if same_a and same_i else 1


if __name__ == "__main__":
    entry_point(main)()
