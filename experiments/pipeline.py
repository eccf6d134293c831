"""The whole SUMMIT pipeline into one run directory, as cached stages.

aggregate -> graphs -> dataset examples and feature visualizations of the graph nodes -> figures::

    RUN_DIR/aggregates.h5  classes.json  ag/ag-<class>.json  details/  compare/  feature-vis/  figures/
            stages.json  pipeline.json

This module only wires library calls together (``summit_tf`` and ``feature_vis`` do the work); each
experiment script fills a :class:`PipelineConfig` with its defaults.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.stages import Stage, run_stages
from summit_tf import atomic, spec_grammar

log = logging.getLogger(__name__)

STAGES = ("aggregate", "graph", "examples", "feature_vis", "figures")
CLASS_FIELDS = ("figure_classes", "compare")  # the classes a run draws or compares (flags of the same name)


@dataclass
class PipelineConfig:
    """Everything a run depends on. Fields that change a stage's output are in that stage's fingerprint."""

    model: str
    data: str
    out_dir: str
    layers: tuple[str, ...] | None = None
    classes: tuple[int, ...] | None = None  # aggregate only these classes (None: every class of the data)
    max_images_per_class: int | None = None
    batch_size: int = 32
    strategy: str = "auto"  # tf.distribute for the aggregation and feature vis (one machine)
    resize: str = "squash"
    activation_select: str = "mass:0.03"
    exclude_channels: str = ""
    summit_compat: bool = False
    node_mass: float = 0.075
    num_examples: int = 10
    fv_steps: int = 512
    fv_size: int = 128
    fv_batch_channels: int = 64
    fv_diversity: int = 4
    fv_seed: int = 0
    figure_classes: tuple[int, ...] = ()
    compare: tuple[int, int] | None = None
    stages: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """The later stages' settings are checked before any stage runs (the aggregation's by its config)."""
        from summit_tf.graph.attribution import GraphConfig

        for name, least in (("num_examples", 1), ("fv_steps", 1), ("fv_size", 1), ("fv_batch_channels", 1),
                            ("fv_diversity", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"--{name} must be >= {least}, got {getattr(self, name)}")
        GraphConfig(node_mass=self.node_mass)
        if self.strategy == "multi_worker":  # the later stages would run once per worker
            raise ValueError("the pipeline runs on one machine (--strategy=auto|one_device|mirrored); for "
                             "several, run `python -m summit_tf.aggregate --strategy=multi_worker` on every "
                             "worker, then summit_tf.graph, summit_tf.examples and feature_vis.render")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir)


def _aggregate_config(cfg: PipelineConfig, resume: bool = False):
    """The aggregation's config; ``resume``: continue an interrupted run of the same settings from its
    checkpoint (else start over)."""
    from summit_tf.aggregation import config as cfgmod

    return cfgmod.AggregateConfig(
        model=cfg.model, data=cfg.data, out=str(cfg.run_dir / "aggregates.h5"), layers=cfg.layers,
        activation_select=cfg.activation_select,
        exclude_channels=spec_grammar.parse_channels(cfg.exclude_channels, "exclude_channels"),
        summit_compat=cfg.summit_compat, resize=cfg.resize, batch_size=cfg.batch_size,
        strategy=cfg.strategy, max_images_per_class=cfg.max_images_per_class, classes=cfg.classes,
        resume=resume, overwrite=not resume,
    )


def _stage_aggregate(cfg: PipelineConfig, resume: bool) -> None:
    from summit_tf.aggregation import aggregate

    aggregate(_aggregate_config(cfg, resume))


def _stage_graph(cfg: PipelineConfig) -> None:
    from summit_tf import store
    from summit_tf.graph import embedding, viewer_json
    from summit_tf.graph.attribution import GraphConfig
    from summit_tf.graph.generate import generate

    with store.load(cfg.run_dir / "aggregates.h5") as agg:
        pairs = [tuple(cfg.compare)] if cfg.compare else []
        generate(agg, str(cfg.run_dir), [int(c) for c in agg.classes], pairs,
                 GraphConfig(node_mass=cfg.node_mass), seed=0, umap_min_classes=embedding.MIN_UMAP_CLASSES)
    # Tell the viewer how many images per channel the later stages make.
    path = cfg.run_dir / "classes.json"
    doc = json.loads(path.read_text())
    doc["meta"]["feature_vis"] = {"diversity": cfg.fv_diversity, "dataset_examples": cfg.num_examples,
                                  "size": cfg.fv_size}
    doc["meta"]["dataset"] = cfg.data
    atomic.write_json(path, doc, **viewer_json.COMPACT)


def _graph_nodes(cfg: PipelineConfig) -> dict[str, list[int]]:
    from feature_vis.outputs import graph_channels

    return graph_channels(cfg.run_dir)


def _stage_examples(cfg: PipelineConfig) -> None:
    from summit_tf import examples

    examples.run(examples.ExamplesConfig(
        cfg.model, cfg.data, str(cfg.run_dir), num_examples=cfg.num_examples, channels=_graph_nodes(cfg),
        batch_size=cfg.batch_size, resize=cfg.resize, max_images_per_class=cfg.max_images_per_class,
        summit_compat=cfg.summit_compat, classes=cfg.classes))
    _mark(cfg.run_dir / "feature-vis" / "dataset-p.done")


def _stage_feature_vis(cfg: PipelineConfig) -> None:
    from feature_vis import RenderSettings, render_to_dir
    from summit_tf import models
    from summit_tf.strategy import make_strategy

    nodes = _graph_nodes(cfg)
    model = models.load(cfg.model, layers=list(nodes), summit_compat=cfg.summit_compat)
    settings = RenderSettings(size=cfg.fv_size, steps=cfg.fv_steps, seed=cfg.fv_seed)
    render_to_dir(model, nodes, cfg.run_dir, settings, batch_channels=cfg.fv_batch_channels,
                  diversity=cfg.fv_diversity, strategy=make_strategy(cfg.strategy))
    _mark(cfg.run_dir / "feature-vis" / "channel.done")


def _stage_figures(cfg: PipelineConfig) -> None:
    from experiments import figures

    run_dir, out = cfg.run_dir, cfg.run_dir / "figures"
    classes = [c["target_class"] for c in json.loads((run_dir / "classes.json").read_text())["classes"]]
    for c in cfg.figure_classes or classes[:2]:  # run() kept only classes of the run
        figures.attribution_graph_figure(run_dir, c, out / f"attribution-graph-{c}")
        figures.class_study_figure(run_dir, c, out / f"class-study-{c}")
    if cfg.compare:
        a, b = cfg.compare
        figures.comparison_figure(run_dir, a, b, out / f"comparison-{a}-{b}")
    figures.embedding_figure(run_dir, out / "embedding")
    _mark(out / "figures.done")


def _mark(path: Path) -> None:
    atomic.write_text(path, "done\n")


def stages(cfg: PipelineConfig) -> list[Stage]:
    """The run's stages with the configuration each one depends on."""
    from summit_tf.aggregation.run import part_pattern

    agg = _aggregate_config(cfg).record()  # what changes the counts; not speed settings (batch, strategy)
    graph = {"node_mass": cfg.node_mass, "compare": cfg.compare, "diversity": cfg.fv_diversity,
             "num_examples": cfg.num_examples, "fv_size": cfg.fv_size}
    compat = {"summit_compat": True} if cfg.summit_compat else {}  # runs without it keep their fingerprints
    fv = {"model": cfg.model, "steps": cfg.fv_steps, "size": cfg.fv_size, "diversity": cfg.fv_diversity,
          "seed": cfg.fv_seed, **compat}
    ex = {"model": cfg.model, "num_examples": cfg.num_examples, "data": cfg.data, "resize": cfg.resize,
          "max_images_per_class": cfg.max_images_per_class, **compat,
          **({"classes": cfg.classes} if cfg.classes else {})}
    # A channel's images depend only on their stage's own settings: a new graph keeps them and adds new ones.
    return [
        Stage("aggregate", agg, ["aggregates.h5"], lambda resume: _stage_aggregate(cfg, resume),
              clears=["aggregates.h5", "aggregates.h5.ckpt.h5", part_pattern("aggregates.h5")]),
        Stage("graph", graph, ["classes.json", "ag"], lambda _: _stage_graph(cfg), after=["aggregate"],
              clears=["classes.json", "ag", "details", "compare", "faithfulness.json", "faithfulness"]),
        Stage("examples", ex, ["feature-vis/dataset-p.done"], lambda _: _stage_examples(cfg), after=["graph"],
              clears=["feature-vis/dataset-p", "feature-vis/dataset-p.done"], files_from_own_config=True),
        Stage("feature_vis", fv, ["feature-vis/channel.done"], lambda _: _stage_feature_vis(cfg),
              after=["graph"], files_from_own_config=True,
              clears=["feature-vis/channel", "feature-vis/diversity-*", "feature-vis/sprites",
                      "feature-vis/channel.done"]),
        Stage("figures", {"classes": cfg.figure_classes, "compare": cfg.compare}, ["figures/figures.done"],
              lambda _: _stage_figures(cfg), after=["graph", "examples", "feature_vis"], clears=["figures"]),
    ]


def fit_classes(cfg: PipelineConfig, present: Iterable[int], named: Collection[str]) -> PipelineConfig:
    """``cfg`` keeping only figure and comparison classes that ``present`` (the data's classes) holds.

    A class the user named (its field is in ``named``) and the data lacks is a ValueError; defaults that do
    not apply are dropped, with one log line for all (figures without classes draw the run's first two).
    """
    have = sorted({int(c) for c in present})
    data = f"not in the data (it has {len(have)} classes: " \
           f"{', '.join(map(str, have[:12]))}{' ...' if len(have) > 12 else ''})"
    changes: dict = {}
    for name in CLASS_FIELDS:
        wanted = getattr(cfg, name) or ()
        missing = [c for c in wanted if c not in have]
        if missing and name in named:
            raise ValueError(f"--{name}: class{'es' if len(missing) > 1 else ''} "
                             f"{', '.join(map(str, missing))} {data}")
        if missing:
            kept = tuple(c for c in wanted if c in have)
            changes[name] = kept if name == "figure_classes" else None
    if changes:  # after every check: a failing run logs nothing else
        log.warning("defaults %s dropped: %s", data, "; ".join(
            f"--{name}={','.join(map(str, getattr(cfg, name)))} -> {','.join(map(str, kept or ())) or 'none'}"
            for name, kept in changes.items()))
    return dataclasses.replace(cfg, **changes)


def _aggregated_classes(run_dir: Path) -> Sequence[int] | None:
    from summit_tf import store

    path = run_dir / "aggregates.h5"
    if not path.exists():
        return None
    with store.load(path) as agg:
        return agg.classes.tolist()


def run(cfg: PipelineConfig, named: Collection[str] = CLASS_FIELDS) -> dict[str, str]:
    """Run (or reuse) every stage and print where the outputs are.

    The figure and comparison classes are fitted to the data (:func:`fit_classes`; ``named``: the fields the
    user chose, the others are defaults): before any work where the data lists its classes (folder, labels),
    and to the aggregated classes before the graph stage (TFRecord and TFDS labels are known only by reading
    every record; a class whose images were all unreadable is not in the run either).
    """
    from summit_tf.data import list_classes

    listed = list_classes(cfg.data)
    if listed is not None and cfg.classes:
        listed = [c for c in listed if c in set(cfg.classes)]
    elif cfg.classes:
        listed = list(cfg.classes)  # an upper bound of what the run can hold; the aggregated classes follow
    if listed is not None:
        cfg = fit_classes(cfg, listed, named)
    first = run_stages(cfg.run_dir, stages(cfg)[:1]) if not cfg.stages or "aggregate" in cfg.stages else {}
    aggregated = _aggregated_classes(cfg.run_dir)
    if aggregated is not None:
        cfg = fit_classes(cfg, aggregated, named)
    status = {**run_stages(cfg.run_dir, stages(cfg), only=cfg.stages), **first}
    atomic.write_json(cfg.run_dir / "pipeline.json", dataclasses.asdict(cfg), indent=1, default=str)
    print(summary(cfg, status))
    return status


def summary(cfg: PipelineConfig, status: dict[str, str]) -> str:
    d = cfg.run_dir
    lines = [f"run directory: {d}"]
    lines += [f"  stage {name}: {state}" for name, state in status.items()]
    lines += [
        f"  aggregates:     {d / 'aggregates.h5'}",
        f"  graphs:         {d / 'ag'} ({len(list((d / 'ag').glob('ag-*.json')))} classes)",
        f"  classes:        {d / 'classes.json'}",
        f"  feature vis:    {d / 'feature-vis'}",
        f"  figures:        {d / 'figures'}",
        f"  view it:        python -m summit_tf.serve --run_dir={d}",
    ]
    return "\n".join(lines)


def check_stages(names: Sequence[str] | None) -> tuple[str, ...] | None:
    if not names:
        return None
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    return tuple(names)
