"""Memory of one faithfulness process, class after class: resident set size and traces of the network.

    python -m benchmarks.intervene_memory [--model=mobilenet_v1 --classes=10 --draws=4 --edges]

Runs :func:`experiments.faithfulness.evaluate` as ``score`` does (one :class:`Intervener`, per class the
graph and ``--draws`` random sets) on random class graphs shaped like the real ones (``--per_layer``
channels a layer, one written edge per channel) and ``--images`` random images, and prints the process's
RSS and the trace count after each class. ``--edges`` adds the edge cuts (the graph's and the random ones).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from absl import flags

from benchmarks import machine

FLAGS = flags.FlagValues()
flags.DEFINE_string("model", "mobilenet_v1", "model spec", flag_values=FLAGS)
flags.DEFINE_integer("classes", 10, "class graphs, one after the other", flag_values=FLAGS)
flags.DEFINE_integer("draws", 4, "random sets per class", flag_values=FLAGS)
flags.DEFINE_integer("images", 10, "held-out images (random)", flag_values=FLAGS)
flags.DEFINE_integer("per_layer", 6, "graph channels per layer", flag_values=FLAGS)
flags.DEFINE_bool("edges", False, "also cut the graph's edges and random edges", flag_values=FLAGS)


def class_graph(model, per_layer: int, rng: np.random.Generator):
    """A random graph in SUMMIT's JSON format: ``per_layer`` channels a layer, one edge down each."""
    from experiments import faithfulness

    doc = {}
    for k, layer in enumerate(model.layers):
        below = model.layers[k - 1] if k else None
        doc[layer] = [{"channel": int(c), "prev_channels": [] if below is None else
                       [{"prev_channel": int(rng.integers(model.channels[below])), "inf": 1}]}
                      for c in rng.choice(model.channels[layer], per_layer, replace=False)]
    return faithfulness.graph_targets(doc, model, "random")


def measure(model_spec: str, classes: int, draws: int, images: int, per_layer: int, edges: bool):
    """Yields (class, RSS MiB, traces, seconds) after each class; (-1, ...) after the plain pass."""
    from experiments import faithfulness
    from summit_tf.intervene import Ablation, Intervener
    from summit_tf.models import load

    model = load(model_spec)
    rng = np.random.default_rng(0)
    means = {layer: rng.uniform(0, 1, model.channels[layer]) for layer in model.layers}
    pixels = rng.uniform(0, 1, (images, model.input_size, model.input_size, 3)).astype(np.float32)
    outputs = rng.integers(0, 1000, images).astype(np.int32)
    iv = Intervener(model, "mean", means)
    t0 = time.monotonic()
    faithfulness.evaluate(iv, pixels, outputs, [Ablation()], 8, 64)
    yield -1, machine.rss_mib(), iv.traces(), time.monotonic() - t0
    for c in range(classes):
        t0 = time.monotonic()
        graph = class_graph(model, per_layer, rng)
        rand_ch, rand_ed = faithfulness.random_ablations(model, graph, draws, rng)
        ablations = [Ablation(channels=graph.channels), *rand_ch]
        if edges:
            ablations += [Ablation(edges=graph.edges), *rand_ed]
        faithfulness.evaluate(iv, pixels, outputs, ablations, 8, 64)
        yield c, machine.rss_mib(), iv.traces(), time.monotonic() - t0


def main(argv: Sequence[str]) -> int:
    from summit_tf.cli import run_command

    def body() -> None:
        before = machine.load()
        print(f"{FLAGS.model}, edges {'cut' if FLAGS.edges else 'not cut'}, {FLAGS.images} images, "
              f"{FLAGS.draws} draws, {before}")
        print("| class | RSS MiB | traces | s |\n|---|---|---|---|")
        for c, rss, traces, seconds in measure(FLAGS.model, FLAGS.classes, FLAGS.draws, FLAGS.images,
                                               FLAGS.per_layer, FLAGS.edges):
            print(f"| {'plain' if c < 0 else c} | {rss:.0f} | {traces} | {seconds:.1f} |", flush=True)
        print(machine.since(before))

    return run_command(FLAGS, argv, __doc__ or "", body)


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
