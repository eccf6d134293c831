"""The batched intervention pass (M ablation masks in one forward) vs M plain forward passes, side by side.

    python -m benchmarks.intervene [--model=mobilenet_v1 --masks=8 --batch=4 --reps=5]

Each mask ablates random channels in every layer and cuts random edges of every link (as the
faithfulness experiment does). Timings are interleaved (batched, plain, batched, ...) and the minimum of
``--reps`` is reported with the load average, as images/s counting every (image, mask) pair.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from absl import flags

from benchmarks import machine

FLAGS = flags.FlagValues()
flags.DEFINE_string("model", "mobilenet_v1", "model spec", flag_values=FLAGS)
flags.DEFINE_integer("masks", 8, "ablation masks M", flag_values=FLAGS)
flags.DEFINE_integer("batch", 4, "images per batch B", flag_values=FLAGS)
flags.DEFINE_integer("reps", 5, "interleaved repetitions (minimum reported)", flag_values=FLAGS)
flags.DEFINE_integer("channels", 8, "channels ablated per layer per mask", flag_values=FLAGS)
flags.DEFINE_integer("edges", 16, "edges cut per link per mask", flag_values=FLAGS)


def measure(model_spec: str, masks: int, batch: int, reps: int, channels: int,
            edges: int) -> dict[str, float]:
    import tensorflow as tf

    from summit_tf.intervene import Ablation, Intervener
    from summit_tf.models import load

    model = load(model_spec)
    rng = np.random.default_rng(0)
    means = {layer: rng.uniform(0, 1, model.channels[layer]) for layer in model.layers}
    cuttable = [link for link in model.links if link.name in model.link_outputs]
    ablations = [Ablation(channels={layer: rng.choice(model.channels[layer], channels, replace=False).tolist()
                                    for layer in model.layers},
                          edges={link.name: list(zip(rng.integers(0, link.cin, edges).tolist(),
                                                     rng.integers(0, link.cout, edges).tolist(), strict=True))
                                 for link in cuttable})
                 for _ in range(masks)]
    images = tf.constant(rng.uniform(0, 1, (batch, model.input_size, model.input_size, 3)), tf.float32)
    iv = Intervener(model, "mean", means)
    batched = iv.masks(ablations)
    singles = [iv.masks([a]) for a in ablations]
    plain = tf.function(lambda x: model.tensors(x, ["logits"])["logits"])

    def run_batched():
        iv.run(images, batched)["logits"].numpy()

    def run_singles():
        for one in singles:
            iv.run(images, one)["logits"].numpy()

    def run_plain():
        for _ in range(masks):
            plain(images).numpy()

    fns = {"batched": run_batched, "one_mask_at_a_time": run_singles, "plain_forward": run_plain}
    for fn in fns.values():
        fn()  # trace

    def timed(fn):
        def part() -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return part

    timings = machine.interleaved({name: timed(fn) for name, fn in fns.items()}, reps)
    return {name: masks * batch / min(t) for name, t in timings.items()}


def main(argv: Sequence[str]) -> int:
    from summit_tf.cli import run_command

    def body() -> None:
        before = machine.load()
        rates = measure(FLAGS.model, FLAGS.masks, FLAGS.batch, FLAGS.reps, FLAGS.channels, FLAGS.edges)
        print(f"{FLAGS.model}, M={FLAGS.masks} masks x B={FLAGS.batch} images, {machine.since(before)}")
        for name, rate in rates.items():
            print(f"  {name:22s} {rate:7.1f} images/s   ({rate / rates['plain_forward']:.2f}x plain)")

    return run_command(FLAGS, argv, __doc__ or "", body)


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
