"""Command line of the dataset examples (see :mod:`summit_tf.examples`).

    python -m summit_tf.examples --model=mobilenet_v1 --data=folder:DIR --out_dir=OUT [--layers=...]
        [--num_examples=10] [--channels='Conv2d_3_pointwise:1,2;Conv2d_5_pointwise:7']
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import flags

from summit_tf import data as data_inputs
from summit_tf import spec_grammar, vocabulary
from summit_tf.cli import entry_point, require, run_command
from summit_tf.examples.patches import SUBDIR
from summit_tf.examples.runner import ExamplesConfig, run

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags
flags.DEFINE_string("model", None, "model spec, e.g. mobilenet_v1", flag_values=FLAGS)
flags.DEFINE_string("data", None, f"data spec: {data_inputs.SPEC_HELP}", flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "output folder (patches go to OUT/feature-vis/dataset-p/)",
                    flag_values=FLAGS)
flags.DEFINE_string("layers", None, "comma-separated SUMMIT layers (default: all)", flag_values=FLAGS)
flags.DEFINE_integer("num_examples", 10, "top images kept per channel", flag_values=FLAGS)
flags.DEFINE_string("channels", None, "save only these: 'layer:1,2,5-7;layer2:5' (with one --layers: "
                    "'1,2,5-7')", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "images per batch", flag_values=FLAGS)
flags.DEFINE_enum("resize", "squash", list(vocabulary.RESIZE_MODES), "squash (SUMMIT) or center_crop",
                  flag_values=FLAGS)
flags.DEFINE_integer("max_images", None, "use the first N images", flag_values=FLAGS)
flags.DEFINE_integer("max_images_per_class", None, "use the first N images of each class", flag_values=FLAGS)
flags.DEFINE_string("classes", "", "only these class ids' images, e.g. 0,217,480-482 (default: all)",
                    flag_values=FLAGS)
flags.DEFINE_bool("summit_compat", False, "rank images as the original SUMMIT code saw them (as the "
                  "aggregation's --summit_compat)", flag_values=FLAGS)


def main(argv: Sequence[str]) -> int:
    """Run the command line on ``argv`` (program name first); returns the exit code (2: bad input)."""
    def body() -> None:
        require(FLAGS, "model", "data", "out_dir")
        layers = [s.strip() for s in FLAGS.layers.split(",") if s.strip()] if FLAGS.layers else None
        only_layer = layers[0] if layers and len(layers) == 1 else None
        channels = spec_grammar.parse_channels(FLAGS.channels, "--channels", default_layer=only_layer)
        written = run(ExamplesConfig(
            FLAGS.model, FLAGS.data, FLAGS.out_dir, tuple(layers) if layers else None, FLAGS.num_examples,
            channels, FLAGS.batch_size, FLAGS.resize, FLAGS.max_images, FLAGS.max_images_per_class,
            FLAGS.summit_compat, spec_grammar.parse_classes(FLAGS.classes, "--classes")))
        print(f"wrote {written} dataset-example patches under {os.path.join(FLAGS.out_dir, SUBDIR)}")

    return run_command(FLAGS, argv, __doc__ or "", body)


if __name__ == "__main__":
    entry_point(main)()
