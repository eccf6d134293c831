"""Flags shared by the experiment scripts; each script passes its own defaults."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from absl import flags

from experiments.pipeline import CLASS_FIELDS, STAGES, PipelineConfig, check_stages
from summit_tf.imagenet import NUM_CLASSES
from summit_tf.spec_grammar import parse_classes
from summit_tf.vocabulary import STRATEGIES


def define(fv: flags.FlagValues, *, model: str, data: str | None, out_dir: str,
           max_images_per_class: int | None, fv_steps: int, fv_diversity: int, num_examples: int,
           figure_classes: str, compare: str, fv_batch_channels: int = 64, fv_size: int = 128,
           exclude_channels: str = "") -> None:
    """Define the pipeline flags on ``fv`` with a script's defaults."""
    flags.DEFINE_string("model", model, "model spec (see summit_tf.models)", flag_values=fv)
    flags.DEFINE_string("data", data, "data spec: tfrecord:GLOB | folder:DIR | labels:FILE | tfds:NAME",
                        flag_values=fv)
    flags.DEFINE_string("out_dir", out_dir, "run directory", flag_values=fv)
    flags.DEFINE_string("classes", "", "aggregate only these class ids, e.g. 294,295 or 0-99 (default: every "
                        "class of the data; a TFRecord run without it keeps counters for all 1,000)",
                        flag_values=fv)
    flags.DEFINE_integer("max_images_per_class", max_images_per_class,
                         "use at most this many images per class (default: all)", flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "images per batch (of each device)", flag_values=fv)
    flags.DEFINE_enum("strategy", "auto", [s for s in STRATEGIES if s != "multi_worker"],
                      "tf.distribute for aggregation and feature vis: auto (every GPU when there are "
                      "several), one_device, mirrored; several machines: summit_tf.aggregate "
                      "--strategy=multi_worker",
                      flag_values=fv)
    flags.DEFINE_list("layers", None, "SUMMIT layers (default: the model's)", flag_values=fv)
    flags.DEFINE_string("activation_select", "mass:0.03",
                        "channel selection (the paper: mass:0.03; the published SUMMIT data: mass:0.01)",
                        flag_values=fv)
    flags.DEFINE_string("exclude_channels", exclude_channels,
                        "channels never selected, e.g. 'mixed3a:67,190'",
                        flag_values=fv)
    flags.DEFINE_bool("summit_compat", False, "reproduce the original SUMMIT code's choices", flag_values=fv)
    flags.DEFINE_float("node_mass", 0.075, "PageRank mass kept per layer", flag_values=fv)
    flags.DEFINE_integer("num_examples", num_examples, "dataset examples per channel", flag_values=fv)
    flags.DEFINE_integer("fv_steps", fv_steps, "last feature-visualization step (steps 0..N, as Lucid's "
                         "thresholds=(512,))", flag_values=fv)
    flags.DEFINE_integer("fv_size", fv_size, "feature-visualization image size", flag_values=fv)
    flags.DEFINE_integer("fv_diversity", fv_diversity, "diversity images per channel (0: none)",
                         flag_values=fv)
    flags.DEFINE_integer("fv_batch_channels", fv_batch_channels, "images per feature-vis optimization",
                         flag_values=fv)
    flags.DEFINE_string("figure_classes", figure_classes, "classes drawn in figures (comma-separated ids)",
                        flag_values=fv)
    flags.DEFINE_string("compare", compare, "two class ids for the comparison figure, e.g. 294,295",
                        flag_values=fv)
    flags.DEFINE_bool("figures", True, "draw the paper's figures (--nofigures skips that stage)",
                      flag_values=fv)
    flags.DEFINE_list("stages", None, f"run only these stages ({', '.join(STAGES)})", flag_values=fv)


def _stages(fv: flags.FlagValues) -> tuple[str, ...] | None:
    chosen = check_stages(fv.stages)
    if fv.figures:
        return chosen
    kept = tuple(s for s in (chosen or STAGES) if s != "figures")
    if not kept:
        raise ValueError("--stages=figures with --nofigures leaves no stage to run")
    return kept


def _classes(fv: flags.FlagValues, name: str) -> tuple[int, ...]:
    ids = parse_classes(fv[name].value, f"--{name}") or ()
    if any(c >= NUM_CLASSES for c in ids):
        raise ValueError(f"--{name}: class ids must lie in 0..{NUM_CLASSES - 1}, got {fv[name].value!r}")
    return ids


def config(fv: flags.FlagValues, **overrides) -> PipelineConfig:
    compare = _classes(fv, "compare")
    if compare and len(compare) != 2:
        raise ValueError(f"--compare needs two class ids, got {fv.compare!r}")
    values = dict(
        model=fv.model, data=fv.data, out_dir=fv.out_dir, layers=tuple(fv.layers) if fv.layers else None,
        classes=_classes(fv, "classes") or None, max_images_per_class=fv.max_images_per_class,
        batch_size=fv.batch_size, strategy=fv.strategy,
        activation_select=fv.activation_select, exclude_channels=fv.exclude_channels,
        summit_compat=fv.summit_compat, node_mass=fv.node_mass, num_examples=fv.num_examples,
        fv_steps=fv.fv_steps, fv_size=fv.fv_size, fv_diversity=fv.fv_diversity,
        fv_batch_channels=fv.fv_batch_channels, figure_classes=_classes(fv, "figure_classes"),
        compare=compare or None, stages=_stages(fv),
    )
    values.update(overrides)
    return PipelineConfig(**values)


def main(fv: flags.FlagValues, argv: Sequence[str], doc: str,
         prepare: Callable[[flags.FlagValues], dict] | None = None) -> int:
    """Parse flags, let the script fill in what it resolves itself (assets), run the pipeline. Classes given
    by ``--figure_classes`` / ``--compare`` must be in the data; the script's defaults are dropped if not."""
    from experiments import pipeline
    from summit_tf.cli import run_command

    def body() -> None:
        check_stages(fv.stages)
        overrides = prepare(fv) if prepare else {}
        cfg = config(fv, **overrides)
        if not cfg.data:
            raise ValueError("--data is required, e.g. --data=tfrecord:/data/imagenet/train-*")
        pipeline.run(cfg, named=[name for name in CLASS_FIELDS if fv[name].present])

    return run_command(fv, argv, doc, body)
