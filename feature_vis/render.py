"""Command line: render channels into SUMMIT's files (the library: :mod:`feature_vis.to_disk`).

    python -m feature_vis.render --model=mobilenet_v1 --out_dir=DIR [--layers=A,B]
        [--channels="A:1,2,5-7;B:0" | --only_graph_nodes=EXPORT_DIR] [--steps=512 --size=128
        --batch_channels=64 --diversity=4 --seed=0 --nopre_activation --strategy=auto]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from feature_vis import outputs, param
from feature_vis.optimize import RenderSettings
from feature_vis.to_disk import render_to_dir, select_channels
from summit_tf import spec_grammar, vocabulary
from summit_tf.cli import entry_point, require, run_command
from summit_tf.models import load
from summit_tf.strategy import make_strategy

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags
_DEFINITIONS = [
    (flags.DEFINE_string, "model", None, "Model spec (see summit_tf.models.load), e.g. mobilenet_v1."),
    (flags.DEFINE_string, "out_dir", None, "Output folder; images go to OUT_DIR/feature-vis/."),
    (flags.DEFINE_list, "layers", [], "SUMMIT layers to render (default: all / the selection's)."),
    (flags.DEFINE_string, "channels", None, "Channels, e.g. 'layerA:1,2,5-7;layerB:0', or '1,2,5-7' with "
     "one --layers (default: all)."),
    (flags.DEFINE_string, "only_graph_nodes", None,
     "Render only the channels that are nodes of DIR/ag/ag-*.json (a SUMMIT graph export)."),
    (flags.DEFINE_boolean, "sprites", True, "Write a sprite sheet and index per layer."),
    (flags.DEFINE_boolean, "pre_activation", True, "Maximize channels of the layer's tensor before its "
     "ReLU/ReLU6 (Lucid's mixed4a_pre_relu) where the model has one; --nopre_activation: the layer output."),
]
for define, name, default, text in _DEFINITIONS:
    define(name, default, text, flag_values=FLAGS)
_COUNTS = [  # (name, default, lower bound, help)
    ("steps", 512, 0, "Last optimization step N: steps 0..N, N + 1 updates (Lucid: 512)."),
    ("size", 128, 1, "Image size in pixels."),
    ("batch_channels", 64, 1, "Images optimized together: the memory knob. On an accelerator larger is "
     "faster; on CPU 4-8 is fastest per image (benchmarks/feature_vis.py)."),
    ("diversity", 4, 0, "Diverse images per channel (0: none)."),
    ("seed", None, 0, "Seed for reproducible renders."),
]
for name, default, bound, text in _COUNTS:
    flags.DEFINE_integer(name, default, text, lower_bound=bound, flag_values=FLAGS)
flags.DEFINE_enum("param", "fft", list(param.PARAMETERIZATIONS), "Image parameterization.", flag_values=FLAGS)
# Rendering spreads batches over one machine's devices (to_disk.replica_devices): no multi_worker.
_STRATEGIES = [name for name in vocabulary.STRATEGIES if name != "multi_worker"]
flags.DEFINE_enum("strategy", "auto", _STRATEGIES, "Devices the batches are "
                  "spread over: auto (every GPU when there are several), one_device, mirrored (every local "
                  "GPU); the images are those of one device.", flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the command line (``argv[0]`` is the program); returns the exit code (2: bad input).

    Only the flags, the model and the selection are checked as input; a failure while rendering is a
    program error and keeps its traceback."""
    chosen: dict = {}

    def body() -> None:
        require(FLAGS, "model", "out_dir")
        if FLAGS.channels and FLAGS.only_graph_nodes:
            raise ValueError("give --channels or --only_graph_nodes, not both")
        wanted = None
        if FLAGS.channels:
            only_layer = FLAGS.layers[0] if len(FLAGS.layers) == 1 else None
            wanted = spec_grammar.parse_channels(FLAGS.channels, "--channels", default_layer=only_layer)
        elif FLAGS.only_graph_nodes:
            wanted = outputs.graph_channels(FLAGS.only_graph_nodes)
        # Load exactly the layers needed, so selections may name layers outside the model's default set.
        settings = RenderSettings(size=FLAGS.size, steps=FLAGS.steps, seed=FLAGS.seed,
                                  parameterization=FLAGS.param, pre_activation=FLAGS.pre_activation)
        strategy = make_strategy(FLAGS.strategy)  # before any other TensorFlow work (make_strategy)
        model = load(FLAGS.model, layers=FLAGS.layers or (list(wanted) if wanted else None))
        chosen.update(model=model, selection=select_channels(model, wanted, FLAGS.layers), settings=settings,
                      strategy=strategy)

    code = run_command(FLAGS, argv, __doc__ or "", body, logs=False)
    if code or not chosen:
        return code
    counts = render_to_dir(chosen["model"], chosen["selection"], FLAGS.out_dir, chosen["settings"],
                           batch_channels=FLAGS.batch_channels, diversity=FLAGS.diversity,
                           sprites=FLAGS.sprites, strategy=chosen["strategy"])
    print(f"rendered {counts['images']} images in {counts['batches']} batches, {counts['sprites']} "
          f"sprites -> {Path(FLAGS.out_dir) / outputs.FEATURE_VIS}", file=sys.stderr)
    return 0


run = entry_point(main)  # ``python -m feature_vis.render``


if __name__ == "__main__":
    run()
