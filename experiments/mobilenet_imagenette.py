"""Full-size run: MobileNetV1 over all 13,394 Imagenette2 images, Lucid's feature-vis defaults.

    python -m experiments.mobilenet_imagenette [--out_dir=runs/mobilenet_imagenette]
"""

from __future__ import annotations

from absl import flags

from experiments import cli
from experiments.quickstart import _resolve_data

FLAGS = flags.FlagValues()
cli.define(FLAGS, model="mobilenet_v1", data=None, out_dir="runs/mobilenet_imagenette",
           max_images_per_class=None, fv_steps=512, fv_diversity=4, num_examples=10,
           figure_classes="0,217,482,491,497,566,569,571,574,701", compare="0,217")


def main(argv: list[str]) -> int:
    return cli.main(FLAGS, argv, __doc__ or "", prepare=_resolve_data)


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
