"""Aggregation speed, side by side on the same model and the same batches.

``python -m benchmarks.aggregate [--model=mobilenet_v1] [--batch_size=16] [--batches=4] [--data=random]``

Prints: plain forward throughput (``model.features``), full aggregation throughput (the engine's step:
A for every layer and I for every link, ``--stride``), their ratio (goal >= 0.5), and the original
SUMMIT algorithm (``benchmarks/original_summit.py``) on the same batches with its speed-up (goal >= 10x)
and a check that its A and I counts equal the engine's. The first batch is run once before timing
(tracing); timings are the whole pass over ``--batches`` batches.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.original_summit import OriginalSummit
from summit_tf import assets, models
from summit_tf.aggregation import engine
from summit_tf.aggregation.channel_selection import parse_select
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.data import source

flags.DEFINE_string("model", "mobilenet_v1", "model spec (summit_tf.models.load)")
flags.DEFINE_integer("batch_size", 16, "images per batch")
flags.DEFINE_integer("batches", 4, "timed batches (all three methods see the same ones)")
flags.DEFINE_enum("data", "imagenette", ["random", "imagenette"],
                  "random uniform images, or real Imagenette2 validation images from shared/")
flags.DEFINE_string("activation_select", "mass:0.03", "A selection (the engine's --activation_select)")
flags.DEFINE_integer("topk", 5, "influence top-k")
flags.DEFINE_integer("stride", 1, "influence stride")
flags.DEFINE_integer("seed", 0, "random images and labels")
FLAGS = flags.FLAGS

IMAGENETTE_CLASSES = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)


def make_batches(size: int) -> list[tuple[tf.Tensor, np.ndarray]]:
    """``--batches`` batches of images in [0, 1] with class ids, held in memory (timing excludes I/O)."""
    n = FLAGS.batch_size * FLAGS.batches
    if FLAGS.data == "random":
        rng = np.random.default_rng(FLAGS.seed)
        images = rng.random((n, size, size, 3), dtype=np.float32)
        labels = rng.choice(IMAGENETTE_CLASSES, n).astype(np.int32)
        chunks = [(images[s:s + FLAGS.batch_size], labels[s:s + FLAGS.batch_size])
                  for s in range(0, n, FLAGS.batch_size)]
    else:
        folder = assets.shared_path("datasets", "imagenette2-224", "val")
        per_class = -(-n // len(IMAGENETTE_CLASSES))
        data = source.load(f"folder:{folder}", image_size=size, batch_size=n, max_images_per_class=per_class)
        batch = next(iter(data.dataset))
        order = np.random.default_rng(FLAGS.seed).permutation(int(batch["label"].shape[0]))[:n]
        images, labels = batch["image"].numpy()[order], batch["label"].numpy()[order].astype(np.int32)
        chunks = [(images[s:s + FLAGS.batch_size], labels[s:s + FLAGS.batch_size])
                  for s in range(0, n, FLAGS.batch_size)]
    return [(tf.constant(x), y) for x, y in chunks]


def timed(run, batches) -> float:
    """Seconds for one pass of ``run(images, labels)`` over the batches."""
    t0 = time.perf_counter()
    for images, labels in batches:
        run(images, labels)
    return time.perf_counter() - t0


def main(argv: list[str]) -> None:
    del argv
    tf.get_logger().setLevel("ERROR")  # the baseline's per-link functions trip TF's retracing warning
    try:
        kind, tau = parse_select(FLAGS.activation_select)
        if kind != "mass":
            raise ValueError("the original SUMMIT baseline implements mass:TAU selection only")
        cfg = AggregateConfig(model=FLAGS.model, data=FLAGS.data, out="-",
                              activation_select=FLAGS.activation_select, influence_topk=FLAGS.topk,
                              influence_stride=FLAGS.stride, batch_size=FLAGS.batch_size)
        model = models.load(FLAGS.model)
        batches = make_batches(model.input_size)
        plan = engine.make_plan(model, cfg, sorted({int(c) for _, y in batches for c in y}))
    except ValueError as e:  # AggregateError is one
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    n = sum(int(y.size) for _, y in batches)
    size = model.input_size
    print(f"{model.spec}: {len(plan.layers)} layers, {len(plan.links)} links "
          f"({', '.join(sorted({link.kind for link in plan.links}))}), {FLAGS.batches} batches of "
          f"{FLAGS.batch_size} {FLAGS.data} images, select {cfg.activation_select}, "
          f"top-{cfg.influence_topk}, stride {cfg.stride}", flush=True)

    forward = tf.function(model.features, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    forward(batches[0][0])  # trace
    t_forward = timed(lambda x, y: forward(x)["logits"].numpy(), batches)

    acc = engine.Accumulators(model, plan)
    step = engine.make_step(model, plan, acc, cfg)

    def aggregate(images: tf.Tensor, labels: np.ndarray) -> None:
        step(images, tf.constant(labels))
        acc.count.numpy()  # wait for the device

    aggregate(*batches[0])  # trace, then count from zero
    for var in acc.named().values():
        var.assign(tf.zeros_like(var))
    t_agg = timed(aggregate, batches)

    original = OriginalSummit(model, plan.layers, plan.links, plan.slot_table(), float(tau),
                              cfg.influence_topk, cfg.stride)
    original.trace(forward(batches[0][0][:1]))  # outside the timing
    t_orig = timed(lambda x, y: original.update(forward(x), y), batches)

    same_a = all(np.array_equal(acc.A[layer].numpy(), original.A[layer]) for layer in plan.layers)
    same_i = all(np.array_equal(acc.I[link.name].numpy(), original.I[link.name]) for link in plan.links)
    fwd, agg, orig = n / t_forward, n / t_agg, n / t_orig
    print(f"plain forward        {fwd:8.1f} images/s")
    print(f"summit-tf aggregate  {agg:8.1f} images/s   ratio to forward {agg / fwd:.2f} (goal >= 0.5)")
    print(f"original SUMMIT      {orig:8.1f} images/s   summit-tf speed-up {t_orig / t_agg:.1f}x "
          "(goal >= 10x)")
    print(f"counts identical: A {'yes' if same_a else 'NO'}, I {'yes' if same_i else 'NO'}", flush=True)
    if not (same_a and same_i):
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
