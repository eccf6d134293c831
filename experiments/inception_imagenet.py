"""The paper's main job: InceptionV1 over ImageNet, all stages into one run directory.

    python -m experiments.inception_imagenet --data=tfrecord:/path/train-* \
        [--model=inception_v1[:PATH]] [--out_dir=runs/inception_imagenet] [--max_images_per_class=N]

The model file (Lucid's InceptionV1.pb) is downloaded once into the cache. Figures: tench (class 0),
white wolf (270) and the bear comparison (brown bear 294 vs black bear 295, paper Fig. 9).
Add ``--summit_compat --activation_select=mass:0.01 --exclude_channels=...`` to reproduce the published
data's settings (see BUILD_NOTES.md).
"""

from __future__ import annotations

from absl import flags

from experiments import cli

# The five channels SUMMIT excluded as non-semantic (paper section 6.1).
SUMMIT_NON_SEMANTIC = "mixed3a:67,190;mixed3b:390,399,412"

FLAGS = flags.FlagValues()
cli.define(FLAGS, model="inception_v1", data=None, out_dir="runs/inception_imagenet",
           max_images_per_class=None, fv_steps=512, fv_diversity=4, num_examples=10,
           figure_classes="0,270,294,295", compare="294,295",
           exclude_channels=SUMMIT_NON_SEMANTIC)


def main(argv: list[str]) -> int:
    return cli.main(FLAGS, argv, __doc__ or "")


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
