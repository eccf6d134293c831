"""The README's quick start: the full SUMMIT pipeline on a real pretrained model and real ImageNet images.

    python -m experiments.quickstart [--out_dir=runs/quickstart]

MobileNetV1 (Coral's quantized TFLite pair, dequantized) over Imagenette2 (fast.ai's 10-class ImageNet
subset). Both are downloaded once into the cache (checksummed where known); ``SUMMIT_TF_ASSETS`` or
``SUMMIT_TF_MIRROR`` point at a local copy instead. The defaults keep it to a few minutes on 2 CPU cores;
``python -m experiments.mobilenet_imagenette`` is the full-size run.
"""

from __future__ import annotations

from absl import flags

from experiments import cli

FLAGS = flags.FlagValues()
cli.define(FLAGS, model="mobilenet_v1", data=None, out_dir="runs/quickstart", max_images_per_class=16,
           fv_steps=32, fv_size=64, fv_diversity=0, num_examples=4, figure_classes="0,217", compare="0,217",
           fv_batch_channels=128)


def _resolve_data(fv: flags.FlagValues) -> dict:
    if fv.data:
        return {}
    from summit_tf.assets import download

    return {"data": f"folder:{download.resolve('imagenette2')}"}


def main(argv: list[str]) -> int:
    return cli.main(FLAGS, argv, __doc__ or "", prepare=_resolve_data)


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
