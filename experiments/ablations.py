"""Ablations over SUMMIT's reduce operators and sample size: how much do the attribution graphs change?

    python -m experiments.ablations --model=mobilenet_v1 --data=folder:DIR --out_dir=runs/ablations
    python -m experiments.ablations --aggregates=ref.h5,variant1.h5,... --out_dir=DIR

Each variant changes one setting of the SUMMIT default (activation reduce {max, mean, sum, l2} x selection
{mass, topk}; influence reduce {max, sum, l2}; influence stride {1, 3}; top-k {1, 3, 5, 10}), and the
stability study subsamples the images per class (10, 30, 100, 300, all). Against the reference run, per
layer and averaged over classes: Jaccard of the kept graph nodes, Jaccard of the kept edges, and Kendall's
tau of the A rows. Writes ``ablations.csv``, ``ablations.md`` and plots.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from absl import flags
from scipy import stats

from summit_tf import atomic

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


@dataclass
class Row:
    variant: str
    layer: str
    node_jaccard: float
    edge_jaccard: float
    kendall_tau: float
    classes: int


def _jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    if np.all(x == x[0]) and np.all(y == y[0]):
        return 1.0 if np.array_equal(x, y) else 0.0
    tau = stats.kendalltau(x, y).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def _graphs(agg, classes: Sequence[int]) -> dict[int, tuple[set, set]]:
    from summit_tf.graph import build
    from summit_tf.graph.attribution import attribution_graph

    st = build.structure(agg)
    out = {}
    for c in classes:
        ag = attribution_graph(agg, c, structure=st)
        out[c] = (set(ag.kept_nodes()), {e[:4] for e in ag.kept_edge_list()})
    return out


def compare(reference, variant, name: str) -> list[Row]:
    """Per-layer agreement of ``variant`` with ``reference`` (both open :class:`store.Aggregates`)."""
    classes = sorted(set(reference.classes.tolist()) & set(variant.classes.tolist()))
    if not classes:
        raise ValueError(f"{name}: no class in common with the reference run")
    if reference.layers != variant.layers:
        raise ValueError(f"{name}: layers differ from the reference run")
    ref_graphs, var_graphs = _graphs(reference, classes), _graphs(variant, classes)
    rows = []
    for layer in reference.layers:
        nodes, edges, taus = [], [], []
        for c in classes:
            (rn, re_), (vn, ve) = ref_graphs[c], var_graphs[c]
            nodes.append(_jaccard({n for n in rn if n[0] == layer}, {n for n in vn if n[0] == layer}))
            edges.append(_jaccard({e for e in re_ if e[0] == layer}, {e for e in ve if e[0] == layer}))
            taus.append(_kendall(reference.A[layer][reference.slot(c)], variant.A[layer][variant.slot(c)]))
        rows.append(Row(name, layer, float(np.mean(nodes)), float(np.mean(edges)), float(np.mean(taus)),
                        len(classes)))
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
    lines = ["| variant | node Jaccard | edge Jaccard | Kendall tau (A) |", "|---|---|---|---|"]
    for name in dict.fromkeys(r.variant for r in rows):
        mine = [r for r in rows if r.variant == name]
        lines.append(f"| {name} | {np.mean([r.node_jaccard for r in mine]):.3f} | "
                     f"{np.mean([r.edge_jaccard for r in mine]):.3f} | "
                     f"{np.mean([r.kendall_tau for r in mine]):.3f} |")
    md_path = atomic.write_text(out_dir / "ablations.md", "\n".join(lines) + "\n")
    return csv_path, md_path


def plot(rows: Sequence[Row], out_dir: Path) -> Path:
    """Node Jaccard per layer for every variant (one line each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r.layer for r in rows))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in dict.fromkeys(r.variant for r in rows):
        by_layer = {r.layer: r.node_jaccard for r in rows if r.variant == name}
        ys = [by_layer[layer] for layer in layers]
        ax.plot(range(len(layers)), ys, marker="o", ms=3, label=name)
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Jaccard of kept nodes vs SUMMIT default")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = out_dir / "ablations-node-jaccard.png"
    with atomic.writing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def run_variants(model: str, data: str, out_dir: Path, variants: Sequence[str], stability: Sequence[int],
                 max_images_per_class: int | None, batch_size: int) -> list[tuple[str, Path]]:
    """Aggregate every variant (cached: an existing file is reused) and return ``(name, path)`` pairs."""
    from summit_tf.aggregation import aggregate
    from summit_tf.aggregation.config import AggregateConfig

    base = dict(model=model, data=data, batch_size=batch_size, max_images_per_class=max_images_per_class)
    jobs = [(name, {**base, **VARIANTS[name]}) for name in variants]
    jobs += [(f"images-{n}", {**base, "max_images_per_class": n}) for n in stability
             if max_images_per_class is None or n < max_images_per_class]
    done = []
    for name, settings in jobs:
        path = out_dir / "aggregates" / f"{name}.h5"
        if not path.exists():
            aggregate(AggregateConfig(out=str(path), **settings))
        done.append((name, path))
    return done


FLAGS = flags.FlagValues()
flags.DEFINE_list("aggregates", None, "aggregates files; the first is the reference", flag_values=FLAGS)
flags.DEFINE_string("model", "mobilenet_v1", "model spec (with --data)", flag_values=FLAGS)
flags.DEFINE_string("data", None, "data spec: run every variant on it", flag_values=FLAGS)
flags.DEFINE_string("out_dir", "runs/ablations", "output folder", flag_values=FLAGS)
flags.DEFINE_list("variants", list(VARIANTS), "variants to run (with --data)", flag_values=FLAGS)
flags.DEFINE_list("stability", [str(n) for n in STABILITY], "images per class for the stability study",
                  flag_values=FLAGS)
flags.DEFINE_integer("max_images_per_class", None, "cap for every variant (the reference uses it too)",
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "images per batch", flag_values=FLAGS)


def main(argv: list[str]) -> int:
    from summit_tf import store
    from summit_tf.cli import fail, parse

    parsed = parse(FLAGS, argv, __doc__ or "")
    if isinstance(parsed, int):
        return parsed
    out_dir = Path(FLAGS.out_dir)
    try:
        if FLAGS.aggregates:
            runs = [(Path(p).stem, Path(p)) for p in FLAGS.aggregates]
        elif FLAGS.data:
            unknown = [v for v in FLAGS.variants if v not in VARIANTS]
            if unknown:
                return fail(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
            variants = [REFERENCE, *[v for v in FLAGS.variants if v != REFERENCE]]
            runs = run_variants(FLAGS.model, FLAGS.data, out_dir, variants,
                                [int(n) for n in FLAGS.stability], FLAGS.max_images_per_class,
                                FLAGS.batch_size)
        else:
            return fail("give --aggregates=ref.h5,... or --data=SPEC (with --model)")
        with store.load(runs[0][1]) as reference:
            rows = []
            for name, path in runs:
                with store.load(path) as variant:
                    rows += compare(reference, variant, name)
        csv_path, md_path = write_tables(rows, out_dir)
        png = plot(rows, out_dir)
    except (ValueError, FileNotFoundError, KeyError) as e:
        return fail(str(e))
    print(md_path.read_text())
    print(f"wrote {csv_path}, {md_path}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
