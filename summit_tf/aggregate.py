"""Command line: count SUMMIT's activation (A) and influence (I) matrices over a dataset into HDF5.

    python -m summit_tf.aggregate --model=mobilenet_v1 --data=folder:DIR --out=run.h5

Bad input (flags, specs, layers, data, an existing output) ends with one ``error:`` line on stderr and
exit code 2. An interrupted run continues with ``--resume`` from its last checkpoint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from absl import flags

from summit_tf import spec_grammar, vocabulary
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.cli import entry_point, require, run_command
from summit_tf.strategy import check_tf_config

FLAGS = flags.FlagValues()  # private: importing this module never touches absl's global flags

flags.DEFINE_string("model", None, "model spec: tflite:PATH[+PATH...] | mobilenet_v1 | mobilenet_v2 | "
                    "keras:PATH | keras_app:NAME | inception_v1[:PATH]", flag_values=FLAGS)
flags.DEFINE_string("data", None, "data spec: tfrecord:GLOB | folder:DIR | labels:FILE | tfds:NAME[/SPLIT]",
                    flag_values=FLAGS)
flags.DEFINE_string("out", None, "output aggregates file (.h5)", flag_values=FLAGS)
flags.DEFINE_list("layers", None, "SUMMIT layers to count (default: the model's)", flag_values=FLAGS)
flags.DEFINE_enum("activation_reduce", "max", vocabulary.ACTIVATION_REDUCERS,
                  "channel score over space (SUMMIT: max)", flag_values=FLAGS)
flags.DEFINE_string("activation_select", "mass:0.03",
                    "which channels count per image: mass:TAU (channels by decreasing score until their "
                    "share of the total reaches TAU; the paper's 3 %; the published SUMMIT data used "
                    "mass:0.01) or topk:K", flag_values=FLAGS)
flags.DEFINE_enum("influence_reduce", "max", vocabulary.INFLUENCE_REDUCERS,
                  "per-pair influence map reduced over space (SUMMIT: max)", flag_values=FLAGS)
flags.DEFINE_integer("influence_stride", None, "subsample the influence maps (default 1 = exact; SUMMIT "
                     "used 3, the default under --summit_compat)", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("influence_topk", 5, "inputs counted per output channel", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_string("exclude_channels", "", "channels never selected, in A nor as influence inputs, e.g. "
                    "'mixed3a:67,190;mixed3b:390,399,412' (SUMMIT's non-semantic channels)",
                    flag_values=FLAGS)
flags.DEFINE_bool("summit_compat", False, "reproduce the original SUMMIT code's choices (link inputs, "
                  "influence stride 3, TF1's resize grid) to compare with the published data",
                  flag_values=FLAGS)
flags.DEFINE_enum("resize", "squash", vocabulary.RESIZE_MODES,
                  "squash: plain resize (SUMMIT); center_crop: central 87.5 % then resize", flag_values=FLAGS)
flags.DEFINE_enum("jpeg_max_ratio", "1", [str(r) for r in vocabulary.JPEG_RATIOS],
                  "decode a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain (faster) when its shorter "
                  "side is that many times the input size; counts change (11-23 % of the non-zero A/I "
                  "entries, BUILD_NOTES), so 1 (full decode) is the default",
                  flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "images per step of each replica (device)", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_enum("strategy", "auto", vocabulary.STRATEGIES,
                  "tf.distribute: auto (every GPU of this machine when there are several, else one "
                  "device), one_device, mirrored (every local GPU), multi_worker (the machines in "
                  "TF_CONFIG; each reads its own TFRecord files, the chief writes --out)", flag_values=FLAGS)
flags.DEFINE_integer("max_images", None, "use only the first N records (after the class filters)",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("max_images_per_class", None, "use only the first N records of each class",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_string("classes", "", "only these class ids, e.g. 0,217,480-482 (split big runs by class; "
                    "summit_tf.merge joins the parts)", flag_values=FLAGS)
flags.DEFINE_integer("num_shards", 1, "split the data into N shards ...", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("shard_index", 0, "... and count this one (merge the outputs with summit_tf.merge)",
                     lower_bound=0, flag_values=FLAGS)
flags.DEFINE_integer("checkpoint_every", 0, "also write a resumable checkpoint every N batches (0: only "
                     "by --checkpoint_minutes)", lower_bound=0, flag_values=FLAGS)
flags.DEFINE_float("checkpoint_minutes", 10.0, "write a resumable checkpoint this many minutes after the "
                   "last one (0: only by --checkpoint_every); a checkpoint holds every accumulator, so the "
                   "gap grows to 20x the last save's duration for many classes", lower_bound=0.0,
                   flag_values=FLAGS)
flags.DEFINE_string("data_service", None, "grpc://HOST:PORT of a tf.data service dispatcher whose workers "
                    "read and decode the images (CPU machines feeding a GPU one; folder: and labels: data; "
                    "batches arrive in any order, so no checkpoints: --checkpoint_minutes defaults to 0)",
                    flag_values=FLAGS)
flags.DEFINE_string("device_memory_budget", None, "device memory the count accumulators may take, e.g. "
                    "8GiB (default: half of the GPU's memory; no limit on a CPU); when all classes do not "
                    "fit, class groups are counted in successive passes over the data and joined",
                    flag_values=FLAGS)
flags.DEFINE_bool("resume", False, "continue an interrupted run from its checkpoint", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "replace an existing output (and discard its checkpoint)",
                  flag_values=FLAGS)


def config_from_flags(fv: flags.FlagValues = FLAGS) -> AggregateConfig:
    """Parsed flags -> a validated config (``ValueError`` names the flag at fault)."""
    return AggregateConfig(
        model=fv.model, data=fv.data, out=fv.out,
        layers=tuple(fv.layers) if fv.layers else None,
        activation_reduce=fv.activation_reduce, activation_select=fv.activation_select,
        influence_reduce=fv.influence_reduce, influence_stride=fv.influence_stride,
        influence_topk=fv.influence_topk,
        exclude_channels=spec_grammar.parse_channels(fv.exclude_channels, "--exclude_channels"),
        summit_compat=fv.summit_compat, resize=fv.resize, jpeg_max_ratio=int(fv.jpeg_max_ratio),
        batch_size=fv.batch_size, strategy=fv.strategy,
        max_images=fv.max_images, max_images_per_class=fv.max_images_per_class,
        classes=spec_grammar.parse_classes(fv.classes, "--classes"), num_shards=fv.num_shards,
        shard_index=fv.shard_index,
        checkpoint_every=fv.checkpoint_every,
        checkpoint_minutes=(0.0 if fv.data_service and not fv["checkpoint_minutes"].present
                            else fv.checkpoint_minutes),
        data_service=fv.data_service,
        resume=fv.resume, overwrite=fv.overwrite,
        device_memory_budget=None if fv.device_memory_budget is None else spec_grammar.parse_size(
            fv.device_memory_budget, "--device_memory_budget"),
    )


def main(argv: Sequence[str]) -> int:
    """Run the CLI on ``argv`` (program name first); returns the exit code."""
    def body() -> int:
        require(FLAGS, "model", "data", "out")
        cfg = config_from_flags()
        if cfg.strategy == "multi_worker":
            check_tf_config(os.environ.get("TF_CONFIG"))
        from summit_tf.aggregation import run  # imports TensorFlow: not for --help

        try:
            run.aggregate(cfg)
        except KeyboardInterrupt:
            print(f"interrupted; rerun with --resume to continue from the last checkpoint of {cfg.out}",
                  file=sys.stderr)
            return 130
        return 0

    return run_command(FLAGS, argv, __doc__ or "", body, logs=False)


run = entry_point(main)  # console script and ``python -m``


if __name__ == "__main__":
    run()
