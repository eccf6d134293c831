"""Ablations over SUMMIT's reduce operators and sample size: how much do the attribution graphs change?

    python -m experiments.ablations --model=mobilenet_v1 --data=folder:DIR --out_dir=runs/ablations
    python -m experiments.ablations --aggregates=ref.h5,variant1.h5,... --out_dir=DIR

Each variant changes one setting of the SUMMIT default (activation reduce {max, mean, sum, l2} x selection
{mass, topk}; influence reduce {max, sum, l2}; influence stride {1, 3}; top-k {1, 3, 5, 10}; the graph's
node mass 2.5-15 %), and the stability study subsamples the images per class (10, 30, 100, 300, all).
Against the reference run, per layer and averaged over classes: Jaccard of the kept graph nodes, Jaccard of
the kept edges, Kendall's tau of the A rows, and the kept nodes per class. ``act-mean`` and ``act-sum``
(also with ``topk5``) differ by a constant factor per layer, so they select identically by construction:
when their counts are equal they are reported once as ``act-mean = act-sum``.

With ``--held_out=SPEC`` every variant's graphs are also scored by intervention
(:mod:`experiments.faithfulness`, channel ablations): per variant the median over classes of
faithfulness (drop of p(class) with the graph's channels mean-ablated / mean drop with random same-size
sets) and specificity (drop on the class's images / on the others'). Writes ``ablations.csv``,
``ablations.md`` and a heatmap (variants x layers, node Jaccard written in, plus the scores).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from absl import flags
from scipy import stats

from summit_tf import atomic

log = logging.getLogger(__name__)

REFERENCE = "summit-default"

# name -> overrides of the aggregation config (the reference is SUMMIT's default: max, mass:0.03, max, 1, 5).
VARIANTS: dict[str, dict] = {
    REFERENCE: {},
    "act-mean": {"activation_reduce": "mean"},
    "act-sum": {"activation_reduce": "sum"},
    "act-l2": {"activation_reduce": "l2"},
    "select-topk5": {"activation_select": "topk:5"},
    "act-mean-topk5": {"activation_reduce": "mean", "activation_select": "topk:5"},
    "act-sum-topk5": {"activation_reduce": "sum", "activation_select": "topk:5"},
    "act-l2-topk5": {"activation_reduce": "l2", "activation_select": "topk:5"},
    "inf-sum": {"influence_reduce": "sum"},
    "inf-l2": {"influence_reduce": "l2"},
    "inf-stride3": {"influence_stride": 3},
    "inf-topk1": {"influence_topk": 1},
    "inf-topk3": {"influence_topk": 3},
    "inf-topk10": {"influence_topk": 10},
}
STABILITY = (10, 30, 100, 300)
# node mass of the graph stage (same aggregates as the reference): name -> GraphConfig.node_mass
GRAPH_VARIANTS = {"node-mass-2.5": 0.025, "node-mass-5": 0.05, "node-mass-10": 0.10, "node-mass-15": 0.15}
# variant -> the variant it equals by construction (sum = mean x H x W: the same ranking and mass shares)
IDENTICAL = {"act-sum": "act-mean", "act-sum-topk5": "act-mean-topk5"}


@dataclass
class Row:
    variant: str
    layer: str
    node_jaccard: float
    edge_jaccard: float
    kendall_tau: float
    classes: int
    nodes: float = float("nan")
    faithfulness: float = float("nan")
    specificity: float = float("nan")


def _jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    if np.all(x == x[0]) and np.all(y == y[0]):
        return 1.0 if np.array_equal(x, y) else 0.0
    tau = stats.kendalltau(x, y).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def graphs(agg, classes: Sequence[int], node_mass: float | None = None) -> dict[int, tuple[set, set, dict]]:
    """Per class: kept nodes, kept edges and the graph in SUMMIT's JSON format."""
    from summit_tf.graph import build
    from summit_tf.graph.attribution import GraphConfig, attribution_graph

    st = build.structure(agg)
    config = GraphConfig() if node_mass is None else GraphConfig(node_mass=node_mass)
    out = {}
    for c in classes:
        ag = attribution_graph(agg, c, config, structure=st)
        out[c] = (set(ag.kept_nodes()), {e[:4] for e in ag.kept_edge_list()}, ag.to_json())
    return out


def same_counts(a, b) -> bool:
    """Whether two runs hold identical classes, A and I counts (read one class of one link at a time,
    ``I[name][k]``, which every store layout provides)."""
    if a.layers != b.layers or not np.array_equal(a.classes, b.classes) or set(a.I) != set(b.I):
        return False
    return all(np.array_equal(a.A[k], b.A[k]) for k in a.layers) and \
        all(np.array_equal(a.I[name][k], b.I[name][k]) for name in a.I for k in range(len(a.classes)))


def compare(reference, variant, name: str, node_mass: float | None = None,
            var_graphs: dict | None = None) -> list[Row]:
    """Per-layer agreement of ``variant`` with ``reference`` (both open :class:`store.Aggregates`); the
    variant's graphs use ``node_mass`` (default: SUMMIT's) unless given as ``var_graphs``."""
    classes = sorted(set(reference.classes.tolist()) & set(variant.classes.tolist()))
    if not classes:
        raise ValueError(f"{name}: no class in common with the reference run")
    if reference.layers != variant.layers:
        raise ValueError(f"{name}: layers differ from the reference run")
    ref_graphs = graphs(reference, classes)
    var_graphs = var_graphs if var_graphs is not None else graphs(variant, classes, node_mass)
    rows = []
    for layer in reference.layers:
        nodes, edges, taus, kept = [], [], [], []
        for c in classes:
            (rn, re_, _), (vn, ve, _) = ref_graphs[c], var_graphs[c]
            nodes.append(_jaccard({n for n in rn if n[0] == layer}, {n for n in vn if n[0] == layer}))
            edges.append(_jaccard({e for e in re_ if e[0] == layer}, {e for e in ve if e[0] == layer}))
            taus.append(_kendall(reference.A[layer][reference.slot(c)], variant.A[layer][variant.slot(c)]))
            kept.append(sum(n[0] == layer for n in vn))
        rows.append(Row(name, layer, float(np.mean(nodes)), float(np.mean(edges)), float(np.mean(taus)),
                        len(classes), float(np.mean(kept))))
    return rows


def write_tables(rows: Sequence[Row], out_dir: Path) -> tuple[Path, Path]:
    """``ablations.csv`` (every layer) and ``ablations.md`` (mean over layers per variant)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in dataclasses.fields(Row)])
    writer.writeheader()
    for r in rows:
        writer.writerow(dataclasses.asdict(r))
    csv_path = atomic.write_text(out_dir / "ablations.csv", buf.getvalue())
    lines = ["| variant | node Jaccard | edge Jaccard | Kendall tau (A) | nodes per class | faithfulness "
             "| specificity |", "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r.variant for r in rows):
        mine = [r for r in rows if r.variant == name]
        lines.append(f"| {name} | {np.mean([r.node_jaccard for r in mine]):.3f} | "
                     f"{np.mean([r.edge_jaccard for r in mine]):.3f} | "
                     f"{np.mean([r.kendall_tau for r in mine]):.3f} | "
                     f"{np.sum([r.nodes for r in mine]):.1f} | "
                     f"{_score(mine[0].faithfulness)} | {_score(mine[0].specificity)} |")
    md_path = atomic.write_text(out_dir / "ablations.md", "\n".join(lines) + "\n")
    return csv_path, md_path


def _score(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}"


def plot(rows: Sequence[Row], out_dir: Path) -> Path:
    """Heatmap of node Jaccard (variants x layers, values written in) beside the faithfulness and
    specificity of each variant's graphs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r.layer for r in rows))
    names = list(dict.fromkeys(r.variant for r in rows))
    cell = {(r.variant, r.layer): r.node_jaccard for r in rows}
    jac = np.array([[cell[v, layer] for layer in layers] for v in names])
    first = {v: next(r for r in rows if r.variant == v) for v in names}
    scores = np.array([[first[v].faithfulness, first[v].specificity] for v in names])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(0.55 * len(layers) + 4.5, 0.32 * len(names) + 2.0),
                                  gridspec_kw={"width_ratios": [len(layers), 2.4]})
    ax.imshow(jac, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(jac):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title("Jaccard of kept nodes vs SUMMIT default", fontsize=8)
    finite = np.isfinite(scores)
    shown = np.where(finite, scores, np.nan)
    top = float(np.nanmax(shown)) if finite.any() else 1.0
    ax2.imshow(shown, vmin=0, vmax=max(top, 1.0), cmap="magma", aspect="auto")
    for (i, j), v in np.ndenumerate(scores):
        ax2.text(j, i, _score(v), ha="center", va="center", fontsize=6,
                 color="white" if not np.isfinite(v) or v < 0.6 * max(top, 1.0) else "black")
    ax2.set_xticks([0, 1], ["faithful-\nness", "speci-\nficity"], fontsize=7)
    ax2.set_yticks([])
    ax2.set_title("intervention", fontsize=8)
    fig.tight_layout()
    path = out_dir / "ablations-heatmap.png"
    with atomic.writing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)
    return path


def run_variants(model: str, data: str, out_dir: Path, variants: Sequence[str], stability: Sequence[int],
                 max_images_per_class: int | None, batch_size: int) -> list[tuple[str, Path, float | None]]:
    """Aggregate every variant (cached: a file of the same settings is reused, an interrupted one resumed,
    one of other settings counted again) and return ``(name, path, node_mass)``; graph-stage variants reuse
    the reference's file with their node mass."""
    from summit_tf.aggregation import aggregate
    from summit_tf.aggregation.config import AggregateConfig
    from summit_tf.aggregation.plan import SettingsMismatch

    base = dict(model=model, data=data, batch_size=batch_size, max_images_per_class=max_images_per_class)
    jobs = [(name, {**base, **VARIANTS[name]}) for name in variants if name in VARIANTS]
    jobs += [(f"images-{n}", {**base, "max_images_per_class": n}) for n in stability
             if max_images_per_class is None or n < max_images_per_class]
    done = []
    for name, settings in jobs:
        cfg = AggregateConfig(out=str(out_dir / "aggregates" / f"{name}.h5"), resume=True, **settings)
        try:  # a finished file of these settings is reused, an interrupted one resumed
            aggregate(cfg)
        except SettingsMismatch as e:
            log.info("%s: %s; counting it again", name, e)
            aggregate(dataclasses.replace(cfg, resume=False, overwrite=True))
        done.append((name, Path(cfg.out), None))
    reference = out_dir / "aggregates" / f"{REFERENCE}.h5"
    done += [(name, reference, GRAPH_VARIANTS[name]) for name in variants if name in GRAPH_VARIANTS]
    return done


def merge_identical(runs: list[tuple[str, Path, float | None]]) -> list[tuple[str, Path, float | None]]:
    """Drop a variant of :data:`IDENTICAL` whose counts equal its twin's; the twin is renamed ``a = b``."""
    from summit_tf import store

    names = {r[0]: r for r in runs}
    out = list(runs)
    for twin, kept in IDENTICAL.items():
        if twin in names and kept in names:
            with store.load(names[twin][1]) as a, store.load(names[kept][1]) as b:
                equal = same_counts(a, b)
            if equal:
                out = [(f"{kept} = {twin}", *r[1:]) if r[0] == kept else r for r in out if r[0] != twin]
            else:
                log.warning("%s and %s should select identically but their counts differ", twin, kept)
    return out


def score_variants(runs, held_out: str, out_dir: Path, images_per_class: int, random_sets: int,
                   seed: int) -> dict[str, tuple[float, float]]:
    """Median over classes of faithfulness and specificity of each variant's graphs (channel ablations,
    mean mode; means over the reference run's data, kept in ``out_dir``)."""
    from experiments import faithfulness as fa
    from summit_tf import store
    from summit_tf.models import load as load_model

    with store.load(runs[0][1]) as reference:
        cfg, classes = dict(reference.config), [int(c) for c in reference.classes]
    model = load_model(cfg["model"], layers=cfg.get("layers"), summit_compat=cfg.get("summit_compat", False))
    means = fa.ensure_means(out_dir, model, cfg, None, 50, 32)
    images, labels = fa.load_held_out(held_out, classes, images_per_class, model.input_size,
                                      cfg.get("resize", "squash"), cfg.get("summit_compat", False))
    outputs = model.class_to_output[labels].astype(np.int32)
    held = fa.HeldOut(model, images, labels, outputs, "mean", means, 8, 64)
    scores = {}
    for name, path, node_mass in runs:
        with store.load(path) as agg:
            docs = graphs(agg, classes, node_mass)
        targets = {c: fa.graph_targets(doc, model, f"{name} class {c}") for c, (_, _, doc) in docs.items()}
        _, summaries, _ = fa.score(held, targets, random_sets, np.random.default_rng(seed), edges=False)
        values = [(s["channels"]["faithfulness"], s["channels"]["specificity"]) for s in summaries.values()
                  if "channels" in s]
        arr = np.array(values, dtype=np.float64).reshape(-1, 2)
        scores[name] = tuple(float(np.nanmedian(col)) if np.isfinite(col).any() else float("nan")
                             for col in arr.T)
        log.info("%s: faithfulness %.2f, specificity %.2f", name, *scores[name])
    return scores


FLAGS = flags.FlagValues()
flags.DEFINE_list("aggregates", None, "aggregates files; the first is the reference", flag_values=FLAGS)
flags.DEFINE_string("model", "mobilenet_v1", "model spec (with --data)", flag_values=FLAGS)
flags.DEFINE_string("data", None, "data spec: run every variant on it", flag_values=FLAGS)
flags.DEFINE_string("out_dir", "runs/ablations", "output folder", flag_values=FLAGS)
flags.DEFINE_list("variants", [*VARIANTS, *GRAPH_VARIANTS], "variants to run (with --data)",
                  flag_values=FLAGS)
flags.DEFINE_list("stability", [str(n) for n in STABILITY], "images per class for the stability study",
                  flag_values=FLAGS)
flags.DEFINE_integer("max_images_per_class", None, "cap for every variant (the reference uses it too)",
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "images per batch", flag_values=FLAGS)
flags.DEFINE_string("held_out", None, "held-out data spec: score every variant's graphs by intervention",
                    flag_values=FLAGS)
flags.DEFINE_integer("held_out_images_per_class", 4, "held-out images per class (with --held_out)",
                     flag_values=FLAGS)
flags.DEFINE_integer("random_sets", 20, "random channel sets per class (with --held_out)", flag_values=FLAGS)


def main(argv: list[str]) -> int:
    from summit_tf import store
    from summit_tf.cli import run_command

    def body() -> None:
        out_dir = Path(FLAGS.out_dir)
        if FLAGS.held_out is not None and (FLAGS.held_out_images_per_class < 1 or FLAGS.random_sets < 2):
            raise ValueError("--held_out_images_per_class must be >= 1 and --random_sets >= 2")
        if FLAGS.aggregates:
            runs = [(Path(p).stem, Path(p), None) for p in FLAGS.aggregates]
        elif FLAGS.data:
            unknown = [v for v in FLAGS.variants if v not in VARIANTS and v not in GRAPH_VARIANTS]
            if unknown:
                raise ValueError(f"unknown variant(s) {unknown}; known: "
                                 f"{', '.join([*VARIANTS, *GRAPH_VARIANTS])}")
            variants = [REFERENCE, *[v for v in FLAGS.variants if v != REFERENCE]]
            runs = run_variants(FLAGS.model, FLAGS.data, out_dir, variants,
                                [int(n) for n in FLAGS.stability], FLAGS.max_images_per_class,
                                FLAGS.batch_size)
        else:
            raise ValueError("give --aggregates=ref.h5,... or --data=SPEC (with --model)")
        runs = merge_identical(runs)
        with store.load(runs[0][1]) as reference:
            rows = []
            for name, path, node_mass in runs:
                with store.load(path) as variant:
                    rows += compare(reference, variant, name, node_mass)
        if FLAGS.held_out:
            scores = score_variants(runs, FLAGS.held_out, out_dir, FLAGS.held_out_images_per_class,
                                    FLAGS.random_sets, 0)
            rows = [dataclasses.replace(r, faithfulness=scores[r.variant][0],
                                        specificity=scores[r.variant][1]) for r in rows]
        csv_path, md_path = write_tables(rows, out_dir)
        png = plot(rows, out_dir)
        print(md_path.read_text())
        print(f"wrote {csv_path}, {md_path}, {png}")

    return run_command(FLAGS, argv, __doc__ or "", body)


if __name__ == "__main__":
    from summit_tf.cli import entry_point

    entry_point(main)()
